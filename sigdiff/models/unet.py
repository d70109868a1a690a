"""The U-Net denoiser for signals `(B, C, L)` and images `(B, C, H, W)`, from one file.

Ho et al. 2020 (DDPM U-Net) with the improvements of Dhariwal & Nichol 2021 (scale-shift
conditioning, attention at coarse resolutions). `dims` chooses 1D or 2D convolutions.
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
    Downsample,
    NoiseEmbedding,
    ResBlock,
    SelfAttention,
    Upsample,
    check_dims,
    check_input,
    conv_nd,
    crop_to,
    group_norm,
    pad_to_multiple,
    zero_,
)


@dataclass(frozen=True)
class UNetConfig:
    """Constructor arguments of `UNet`; `dataclasses.asdict` and `UNetConfig(**d)` round-trip.

    `attention_levels` lists the resolution levels (0 = full resolution) with self-attention;
    the middle block always has one. `num_classes=0` means unconditional; otherwise labels lie in
    `[0, num_classes]`, `num_classes` being "no label". GroupNorm uses `gcd(norm_groups, C)` groups.
    """

    in_channels: int = 1
    out_channels: int = 1
    base_channels: int = 64
    channel_mults: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 2
    attention_levels: tuple[int, ...] = (2,)
    dropout: float = 0.0
    num_classes: int = 0
    embedding: str = "positional"
    dims: int = 1
    head_channels: int = 32
    norm_groups: int = 32

    def __post_init__(self) -> None:
        # JSON turns tuples into lists: restore them so Config(**asdict(c)) == c.
        for name in ("channel_mults", "attention_levels"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        check_dims(self.dims)
        if self.embedding not in EMBEDDINGS:
            raise choice_error("embedding", self.embedding, EMBEDDINGS)
        positive = (
            "in_channels",
            "out_channels",
            "base_channels",
            "num_res_blocks",
            "head_channels",
            "norm_groups",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"UNetConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not self.channel_mults or min(self.channel_mults) < 1:
            raise ValueError(
                f"channel_mults must be non-empty and positive, got {self.channel_mults}"
            )
        levels = range(len(self.channel_mults))
        if any(a not in levels for a in self.attention_levels):
            raise ValueError(
                f"attention_levels {self.attention_levels} outside the levels 0..{len(levels) - 1}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {self.num_classes}")

    @property
    def multiple(self) -> int:
        """Spatial sizes are padded to this multiple: 2 ** (number of downsamplings)."""
        return 2 ** (len(self.channel_mults) - 1)

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


class UNet(nn.Module):
    """U-Net denoiser `F(x, c_noise, cond) -> (B, C_out, *S)` (Ho et al. 2020; Dhariwal & Nichol 2021).

    Any length (or image size) is accepted: the input is zero-padded to `config.multiple` and the
    output cropped back. The output convolution is zero-initialised, so the untrained network
    returns exactly zero.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = cfg = config
        dims, groups = cfg.dims, cfg.norm_groups
        emb_dim = 4 * cfg.base_channels
        self.embed = NoiseEmbedding(emb_dim, kind=cfg.embedding, num_classes=cfg.num_classes)
        self.conv_in = conv_nd(dims, cfg.in_channels, cfg.base_channels, 3, padding=1)

        def res(c_in: int, c_out: int) -> ResBlock:
            return ResBlock(dims, c_in, c_out, emb_dim, dropout=cfg.dropout, groups=groups)

        def attn(c: int) -> SelfAttention:
            return SelfAttention(c, head_channels=cfg.head_channels, groups=groups)

        widths = [cfg.base_channels * m for m in cfg.channel_mults]
        self.down = nn.ModuleList()
        skips, ch = [cfg.base_channels], cfg.base_channels
        for level, width in enumerate(widths):
            for _ in range(cfg.num_res_blocks):
                stage = nn.ModuleList([res(ch, width)])
                if level in cfg.attention_levels:
                    stage.append(attn(width))
                self.down.append(stage)
                ch = width
                skips.append(ch)
            if level < len(widths) - 1:
                self.down.append(nn.ModuleList([Downsample(dims, ch)]))
                skips.append(ch)

        self.mid = nn.ModuleList([res(ch, ch), attn(ch), res(ch, ch)])

        self.up = nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            for i in range(cfg.num_res_blocks + 1):
                stage = nn.ModuleList([res(ch + skips.pop(), width)])
                ch = width
                if level in cfg.attention_levels:
                    stage.append(attn(width))
                if level > 0 and i == cfg.num_res_blocks:
                    stage.append(Upsample(dims, ch))
                self.up.append(stage)

        self.norm_out = group_norm(ch, groups)
        self.conv_out = zero_(conv_nd(dims, ch, cfg.out_channels, 3, padding=1))

    @staticmethod
    def _run(stage: nn.Module, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for layer in stage.children():
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
        return h

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
        emb = F.silu(self.embed(c_noise, cond))  # (B, 4·base)
        h, sizes = pad_to_multiple(x, cfg.multiple, cfg.dims)  # (B, C, *S_padded)
        h = self.conv_in(h)
        hs = [h]
        for stage in self.down:
            h = self._run(stage, h, emb)
            hs.append(h)
        h = self._run(self.mid, h, emb)
        for stage in self.up:
            h = self._run(stage, torch.cat([h, hs.pop()], dim=1), emb)  # (B, C + C_skip, *S)
        h = self.conv_out(F.silu(self.norm_out(h)))
        return crop_to(h, sizes)
