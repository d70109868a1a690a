"""Building blocks shared by the denoiser networks, rank-agnostic (1D signals and 2D images).

Every block works on `(B, C, *spatial)` tensors, where `spatial` is `(L,)` for signals and
`(H, W)` for images; `dims` picks the convolution class and is the only thing that differs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sigdiff._utils import append_dims, choice_error

#: Frequency scale of the random Fourier features (Tancik et al. 2020; Song et al. 2021 use 16).
FOURIER_SCALE = 16.0
#: Longest period of the sinusoidal embedding (Vaswani et al. 2017; Ho et al. 2020).
MAX_POSITIONS = 10_000
#: Embedding types accepted by `NoiseEmbedding`.
EMBEDDINGS = ("fourier", "positional")
#: Dimensionalities the blocks support.
SUPPORTED_DIMS = (1, 2)


def check_dims(dims: int) -> None:
    """Raise for a dimensionality other than 1 (signals) or 2 (images)."""
    if dims not in SUPPORTED_DIMS:
        raise choice_error("dims", str(dims), [str(d) for d in SUPPORTED_DIMS])


def conv_nd(
    dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int = 0,
) -> nn.Module:
    """`nn.Conv1d` or `nn.Conv2d`, chosen by `dims`."""
    check_dims(dims)
    cls = nn.Conv1d if dims == 1 else nn.Conv2d
    return cls(in_channels, out_channels, kernel_size, stride=stride, padding=padding)


def zero_(module: nn.Module) -> nn.Module:
    """Zero every parameter of `module` in place and return it (zero-init output layers)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    """GroupNorm with `gcd(groups, channels)` groups, so any width is accepted."""
    return nn.GroupNorm(math.gcd(groups, channels), channels)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Scale-shift (FiLM / adaLN) conditioning: `x · (1 + scale) + shift`, broadcasting `(B, C)`.

    For channel-first tensors `(B, C, *S)` pass `shift`/`scale` as `(B, C, 1, ...)`; for tokens
    `(B, N, D)` pass them as `(B, 1, D)` (Perez et al. 2018; Peebles & Xie 2023, adaLN).
    """
    return torch.addcmul(shift, x, 1 + scale)


def pad_to_multiple(
    x: torch.Tensor, multiple: int, dims: int
) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Zero-pad the last `dims` axes of `x` at the end to a multiple; return it and the old sizes."""
    sizes = tuple(x.shape[-dims:])
    pad: list[int] = []
    for n in reversed(sizes):  # F.pad lists the last axis first
        pad += [0, (-n) % multiple]
    if any(pad):
        x = F.pad(x, pad)
    return x, sizes


def crop_to(x: torch.Tensor, sizes: tuple[int, ...]) -> torch.Tensor:
    """Crop the trailing spatial axes of `x` back to `sizes` (undoes `pad_to_multiple`)."""
    first = x.ndim - len(sizes)
    for axis, n in enumerate(sizes):
        x = x.narrow(first + axis, 0, n)
    return x


class PositionalEmbedding(nn.Module):
    """Sinusoidal embedding of a scalar (Vaswani et al. 2017; the timestep embedding of Ho et al. 2020)."""

    freqs: torch.Tensor

    def __init__(self, num_channels: int, *, max_positions: int = MAX_POSITIONS) -> None:
        super().__init__()
        half = num_channels // 2
        freqs = (1.0 / max_positions) ** (torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        phase = c.float()[:, None] * self.freqs[None, :]  # (B, half)
        return torch.cat([phase.cos(), phase.sin()], dim=1)  # (B, num_channels)


class FourierEmbedding(nn.Module):
    """Random Fourier features of a scalar (Tancik et al. 2020; Song et al. 2021, NCSN++).

    The frequencies are drawn once from the global RNG at construction and stored as a buffer, so
    a checkpoint restores them; meant for `c_noise` of order one, such as `ln(σ)/4`.
    """

    freqs: torch.Tensor

    def __init__(self, num_channels: int, *, scale: float = FOURIER_SCALE) -> None:
        super().__init__()
        self.register_buffer("freqs", torch.randn(num_channels // 2) * scale)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        phase = (2 * math.pi) * c.float()[:, None] * self.freqs[None, :]  # (B, half)
        return torch.cat([phase.cos(), phase.sin()], dim=1)  # (B, num_channels)


class NoiseEmbedding(nn.Module):
    """Embeds `c_noise` (and an optional class label) into one conditioning vector `(B, dim)`.

    `c_noise` goes through a Fourier or sinusoidal embedding and a two-layer MLP (Ho et al. 2020);
    a class label `cond` in `[0, num_classes]` adds a learned embedding, where index `num_classes`
    is the "no label" class used by classifier-free guidance (Ho & Salimans 2022).
    """

    def __init__(self, dim: int, *, kind: str, num_classes: int = 0) -> None:
        super().__init__()
        if kind not in EMBEDDINGS:
            raise choice_error("embedding", kind, EMBEDDINGS)
        freq_channels = max(dim // 4, 16)
        self.fourier: nn.Module = (
            FourierEmbedding(freq_channels)
            if kind == "fourier"
            else PositionalEmbedding(freq_channels)
        )
        self.mlp = nn.Sequential(nn.Linear(freq_channels, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.num_classes = num_classes
        self.label = nn.Embedding(num_classes + 1, dim) if num_classes > 0 else None

    def forward(self, c_noise: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        emb = self.mlp(self.fourier(c_noise))  # (B, dim)
        if self.label is not None:
            if cond is None:  # unconditional call: the "no label" class
                cond = torch.full_like(c_noise, self.num_classes, dtype=torch.long)
            emb = emb + self.label(cond)
        return emb


class ResBlock(nn.Module):
    """Residual block with GroupNorm, SiLU and scale-shift conditioning (Dhariwal & Nichol 2021)."""

    def __init__(
        self,
        dims: int,
        in_channels: int,
        out_channels: int,
        emb_dim: int,
        *,
        dropout: float = 0.0,
        groups: int = 32,
    ) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels, groups)
        self.conv1 = conv_nd(dims, in_channels, out_channels, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_channels)
        self.norm2 = group_norm(out_channels, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_(conv_nd(dims, out_channels, out_channels, 3, padding=1))
        self.skip = (
            nn.Identity()
            if in_channels == out_channels
            else conv_nd(dims, in_channels, out_channels, 1)
        )

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """`x` (B, C_in, *S), `emb` (B, D) already passed through SiLU -> (B, C_out, *S)."""
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = append_dims(self.emb(emb), h.ndim).chunk(2, dim=1)  # (B, C_out, 1, ...)
        h = F.silu(modulate(self.norm2(h), shift, scale))
        return self.skip(x) + self.conv2(self.dropout(h))


class SelfAttention(nn.Module):
    """Multi-head self-attention over the flattened spatial positions, residual, zero-init output."""

    def __init__(self, channels: int, *, head_channels: int = 32, groups: int = 32) -> None:
        super().__init__()
        self.heads = max(channels // head_channels, 1)
        if channels % self.heads:
            raise ValueError(f"{channels} channels do not split into {self.heads} heads")
        self.norm = group_norm(channels, groups)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = zero_(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *spatial = x.shape
        h = self.norm(x.reshape(b, c, -1))  # (B, C, N)
        q, k, v = (
            self.qkv(h).reshape(b, 3, self.heads, c // self.heads, -1).transpose(-1, -2).unbind(1)
        )
        h = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, C/heads)
        h = self.proj(h.transpose(-1, -2).reshape(b, c, -1))  # (B, C, N)
        return x + h.reshape(b, c, *spatial)


class Downsample(nn.Module):
    """Halve every spatial axis with a strided 3-wide convolution."""

    def __init__(self, dims: int, channels: int) -> None:
        super().__init__()
        self.conv = conv_nd(dims, channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Double every spatial axis: nearest-neighbour repeat, then a 3-wide convolution."""

    def __init__(self, dims: int, channels: int) -> None:
        super().__init__()
        self.conv = conv_nd(dims, channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class AdaLNZero(nn.Module):
    """adaLN-Zero: regress `chunks` shift/scale/gate vectors from the conditioning, zero-initialised.

    Zero init makes every gated residual branch start as the identity (Peebles & Xie 2023, §3.2).
    """

    def __init__(self, dim: int, chunks: int) -> None:
        super().__init__()
        self.chunks = chunks
        self.linear = zero_(nn.Linear(dim, chunks * dim))

    def forward(self, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """`c` (B, D) -> `chunks` tensors of shape (B, 1, D), ready to broadcast over tokens."""
        return tuple(self.linear(F.silu(c))[:, None, :].chunk(self.chunks, dim=-1))


def check_input(
    x: torch.Tensor,
    c_noise: torch.Tensor,
    cond: torch.Tensor | None,
    *,
    in_channels: int,
    dims: int,
    num_classes: int,
) -> torch.Tensor:
    """Validate a network's inputs with errors that name the expected shapes; return `c_noise` as (B,)."""
    axes = "(B, C, L)" if dims == 1 else "(B, C, H, W)"
    if x.ndim != dims + 2 or x.shape[1] != in_channels:
        raise ValueError(
            f"expected x of shape {axes} with C={in_channels} ({dims + 2} dims), got {tuple(x.shape)}"
        )
    if any(n == 0 for n in x.shape[2:]):
        raise ValueError(f"x has an empty spatial axis: {tuple(x.shape)}")
    b = x.shape[0]
    if c_noise.ndim == 0:
        c_noise = c_noise.expand(b)
    if c_noise.shape != (b,):
        raise ValueError(f"expected c_noise of shape (B,) = ({b},), got {tuple(c_noise.shape)}")
    if cond is not None:
        if num_classes == 0:
            raise ValueError("cond given to an unconditional network (num_classes=0)")
        if cond.shape != (b,) or cond.dtype != torch.long:
            raise ValueError(
                f"expected cond of shape (B,) = ({b},) and dtype long, got {tuple(cond.shape)} {cond.dtype}"
            )
        if cond.device.type == "cpu" and bool(((cond < 0) | (cond > num_classes)).any()):
            raise ValueError(
                f"cond labels must lie in [0, {num_classes}] ({num_classes} = no label)"
            )
    return c_noise
