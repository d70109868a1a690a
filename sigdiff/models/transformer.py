"""The transformer denoiser: DiT with adaLN-Zero (Peebles & Xie 2023), for signals and images.

A signal `(B, C, L)` is cut into patches along time; an image `(B, C, H, W)` into `p × p` patches.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sigdiff._utils import choice_error
from sigdiff.models.layers import (
    EMBEDDINGS,
    MAX_POSITIONS,
    AdaLNZero,
    NoiseEmbedding,
    check_dims,
    check_input,
    conv_nd,
    crop_to,
    modulate,
    pad_to_multiple,
    zero_,
)

#: Positional embeddings: fixed sinusoids for any grid, or learned and interpolated to new grids.
POS_EMBEDDINGS = ("sincos", "learned")


@dataclass(frozen=True)
class DiTConfig:
    """Constructor arguments of `DiT`; `dataclasses.asdict` and `DiTConfig(**d)` round-trip.

    `input_size` is the configured length (1D) or (height, width) (2D); an int is repeated over
    the `dims` axes. Other sizes are accepted at run time (see `DiT`). `hidden_size` must be
    divisible by `num_heads` and by `2 · dims` (the sinusoidal positional embedding).
    """

    in_channels: int = 1
    out_channels: int = 1
    input_size: tuple[int, ...] = (256,)
    patch_size: int = 8
    hidden_size: int = 256
    depth: int = 6
    num_heads: int = 4
    mlp_ratio: float = 4.0
    num_classes: int = 0
    embedding: str = "positional"
    pos_embed: str = "sincos"
    dims: int = 1

    def __post_init__(self) -> None:
        check_dims(self.dims)
        size = self.input_size
        sizes = (size,) * self.dims if isinstance(size, int) else tuple(int(n) for n in size)
        object.__setattr__(self, "input_size", sizes)
        if len(sizes) != self.dims or min(sizes) < 1:
            raise ValueError(f"input_size {sizes} must hold {self.dims} positive sizes")
        if self.embedding not in EMBEDDINGS:
            raise choice_error("embedding", self.embedding, EMBEDDINGS)
        if self.pos_embed not in POS_EMBEDDINGS:
            raise choice_error("pos_embed", self.pos_embed, POS_EMBEDDINGS)
        for name in (
            "in_channels",
            "out_channels",
            "patch_size",
            "hidden_size",
            "depth",
            "num_heads",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"DiTConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads or self.hidden_size % (2 * self.dims):
            raise ValueError(
                f"hidden_size {self.hidden_size} must be divisible by num_heads={self.num_heads} "
                f"and by 2·dims={2 * self.dims}"
            )
        if self.mlp_ratio <= 0 or self.num_classes < 0:
            raise ValueError("mlp_ratio must be > 0 and num_classes >= 0")

    @property
    def grid(self) -> tuple[int, ...]:
        """Token grid of the configured input size (each axis padded to the patch multiple)."""
        return tuple(-(-n // self.patch_size) for n in self.input_size)

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def sincos_embedding(
    dim: int, grid: tuple[int, ...], *, device: torch.device | None = None
) -> torch.Tensor:
    """Fixed sinusoidal positions (Vaswani et al. 2017) on a token grid -> (1, dim, *grid).

    Each axis gets `dim / len(grid)` channels (half cosines, half sines), as in DiT's 2D embedding.
    """
    per_axis = dim // len(grid)
    half = per_axis // 2
    freqs = (1.0 / MAX_POSITIONS) ** (torch.arange(half, dtype=torch.float32, device=device) / half)
    parts = []
    for axis, n in enumerate(grid):
        pos = torch.arange(n, dtype=torch.float32, device=device)
        phase = freqs[:, None] * pos[None, :]  # (half, n)
        emb = torch.cat([phase.cos(), phase.sin()])  # (per_axis, n)
        shape = [1] * len(grid)
        shape[axis] = n
        parts.append(emb.reshape(per_axis, *shape).expand(per_axis, *grid))
    return torch.cat(parts)[None]  # (1, dim, *grid)


class DiTBlock(nn.Module):
    """Transformer block with adaLN-Zero conditioning (Peebles & Xie 2023, Fig. 3)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim)
        )
        self.ada = AdaLNZero(dim, 6)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        h = F.scaled_dot_product_attention(*qkv.unbind(0))  # (B, heads, N, D/heads)
        return self.proj(h.transpose(1, 2).reshape(b, n, d))  # (B, N, D)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c)  # each (B, 1, D)
        x = x + gate1 * self.attention(modulate(self.norm1(x), shift1, scale1))
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


class DiT(nn.Module):
    """Diffusion transformer `F(x, c_noise, cond) -> like x` (Peebles & Xie 2023), 1D or 2D patches.

    Any size is accepted: each spatial axis is zero-padded to a multiple of `patch_size` and the
    output cropped back. Sinusoidal positions are computed for the actual token grid; learned ones
    (initialised to the sinusoids) are linearly interpolated when the grid differs from the
    configured one. adaLN-Zero and the zero-initialised final layer make the initial output zero.
    """

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.config = cfg = config
        dim = cfg.hidden_size
        self.patch = conv_nd(cfg.dims, cfg.in_channels, dim, cfg.patch_size, stride=cfg.patch_size)
        self.pos = (
            nn.Parameter(sincos_embedding(dim, cfg.grid)) if cfg.pos_embed == "learned" else None
        )
        self.embed = NoiseEmbedding(dim, kind=cfg.embedding, num_classes=cfg.num_classes)
        self.blocks = nn.ModuleList(
            DiTBlock(dim, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth)
        )
        self.norm_out = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada_out = AdaLNZero(dim, 2)
        self.out = zero_(nn.Linear(dim, cfg.out_channels * cfg.patch_size**cfg.dims))

    def positions(self, grid: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """Positional embedding for a token grid -> (1, N, D)."""
        if self.pos is None:
            pos = sincos_embedding(self.config.hidden_size, grid, device=device)
        elif tuple(self.pos.shape[2:]) == grid:
            pos = self.pos
        else:
            mode = "linear" if self.config.dims == 1 else "bilinear"
            pos = F.interpolate(self.pos, size=grid, mode=mode, align_corners=False)
        return pos.flatten(2).transpose(1, 2)  # (1, N, D)

    def unpatchify(self, tokens: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
        """(B, N, C·p^dims) -> (B, C, *padded size), patches laid out as (C, p, ...)."""
        cfg, d = self.config, self.config.dims
        p = cfg.patch_size
        x = tokens.reshape(tokens.shape[0], *grid, cfg.out_channels, *(p,) * d)  # (B, *G, C, *p)
        # (B, C, G1, p, G2, p, ...): interleave the grid axes with their patch axes
        perm = [0, d + 1] + [a for i in range(d) for a in (1 + i, d + 2 + i)]
        x = x.permute(*perm)
        return x.reshape(x.shape[0], cfg.out_channels, *(g * p for g in grid))

    def forward(
        self, x: torch.Tensor, c_noise: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`x` (B, C, L) or (B, C, H, W); `c_noise` (B,); `cond` (B,) long or None -> like `x`."""
        cfg = self.config
        c_noise = check_input(
            x,
            c_noise,
            cond,
            in_channels=cfg.in_channels,
            dims=cfg.dims,
            num_classes=cfg.num_classes,
        )
        h, sizes = pad_to_multiple(x, cfg.patch_size, cfg.dims)  # (B, C, *S_padded)
        h = self.patch(h)  # (B, D, *G)
        grid = tuple(h.shape[2:])
        h = h.flatten(2).transpose(1, 2) + self.positions(grid, h.device)  # (B, N, D)
        c = self.embed(c_noise, cond)  # (B, D)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.ada_out(c)
        h = self.out(modulate(self.norm_out(h), shift, scale))  # (B, N, C·p^dims)
        return crop_to(self.unpatchify(h, grid), sizes)
