"""Fréchet distance on learned features (the role TS2Vec plays in Context-FID, Jeha et al. 2022).

A small convolutional encoder (1D for signals, 2D for images: the same three layers) is trained
self-supervised on the real data with a SimCLR
contrastive loss (Chen et al. 2020; NT-Xent over jittered, rescaled and shifted views). It is cached
per dataset under a key hashing the data, the configuration and the training seed, as safetensors
plus a JSON card recording that seed. The Fréchet distance between Gaussians fitted to the
features follows Heusel et al. 2017.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from scipy import linalg
from torch import nn

from .._utils import append_dims, make_generator


@dataclass(frozen=True)
class EncoderConfig:
    """Encoder width, feature size and self-supervised training budget."""

    width: int = 32
    features: int = 64
    epochs: int = 30
    batch_size: int = 128
    lr: float = 3e-3
    temperature: float = 0.2
    jitter: float = 0.05  # noise std, in units of the per-channel data std
    scale: float = 0.1  # std of the random amplitude factor around 1
    max_shift: float = 0.1  # largest circular shift, as a fraction of the length


class Encoder(nn.Module):
    """(B, C, L) or (B, C, H, W) -> (B, features): three strided convolutions (`dims` = 1 or 2)
    and global average pooling."""

    def __init__(self, channels: int, *, width: int, features: int, dims: int = 1) -> None:
        super().__init__()
        def conv_nd(d: int, c_in: int, c_out: int, k: int, *, stride: int = 1,
                    padding: int = 0) -> nn.Module:  # metrics know nothing of the denoisers
            conv = nn.Conv1d if d == 1 else nn.Conv2d
            return conv(c_in, c_out, k, stride=stride, padding=padding)

        self.net = nn.Sequential(
            conv_nd(dims, channels, width, 7, stride=2, padding=3), nn.GELU(),
            conv_nd(dims, width, 2 * width, 5, stride=2, padding=2), nn.GELU(),
            conv_nd(dims, 2 * width, 2 * width, 3, padding=1), nn.GELU(),
        )
        self.out = nn.Linear(2 * width, features)
        self.head = nn.Sequential(nn.Linear(features, features), nn.GELU(),
                                  nn.Linear(features, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(x).flatten(2).mean(dim=-1))  # (B, features)


def default_cache_dir() -> Path:
    """$SIGDIFF_CACHE/encoders, else ~/.cache/sigdiff/encoders."""
    root = os.environ.get("SIGDIFF_CACHE", str(Path.home() / ".cache" / "sigdiff"))
    return Path(root) / "encoders"


def _cache_key(data: np.ndarray, cfg: EncoderConfig, seed: int) -> str:
    h = hashlib.sha256(np.ascontiguousarray(data, dtype=np.float32).tobytes())
    h.update(json.dumps({"cfg": asdict(cfg), "seed": seed, "shape": data.shape}).encode())
    return h.hexdigest()[:20]


def _augment(x: torch.Tensor, cfg: EncoderConfig, g: torch.Generator) -> torch.Tensor:
    """Jitter, rescale, and shift circularly along every spatial axis (time, or height and width)."""
    noise = torch.randn(x.shape, generator=g) * cfg.jitter
    amp = 1.0 + cfg.scale * append_dims(torch.randn((x.shape[0],), generator=g), x.ndim)
    axes = tuple(range(2, x.ndim))
    shifts = tuple(int(torch.randint(-int(cfg.max_shift * x.shape[a]),
                                     int(cfg.max_shift * x.shape[a]) + 1, (1,), generator=g))
                   for a in axes)
    return torch.roll(x * amp + noise, shifts=shifts, dims=axes)


def _nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent loss (Chen et al. 2020, eq. 1) over 2B views."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2B, D)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    b = len(z1)
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(b)])
    return F.cross_entropy(sim, target)


def train_encoder(data: np.ndarray, *, cfg: EncoderConfig, seed: int) -> Encoder:
    """Train the encoder contrastively on standardised `data` (N, C, L) or (N, C, H, W); seeded
    throughout."""
    g = make_generator(seed)
    with torch.random.fork_rng(devices=[]):  # weight init draws from a seeded, private state
        torch.manual_seed(seed)
        enc = Encoder(data.shape[1], width=cfg.width, features=cfg.features, dims=data.ndim - 2)
    x = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
    opt = torch.optim.Adam(enc.parameters(), lr=cfg.lr)
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x) - 1, cfg.batch_size):
            batch = x[perm[i: i + cfg.batch_size]]
            if len(batch) < 2:
                continue
            v1, v2 = _augment(batch, cfg, g), _augment(batch, cfg, g)
            loss = _nt_xent(enc.head(enc(v1)), enc.head(enc(v2)), cfg.temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return enc.eval()


@dataclass(frozen=True)
class FeatureExtractor:
    """A trained encoder plus the per-channel standardisation it was trained with."""

    encoder: Encoder
    mean: np.ndarray  # (C, 1) or (C, 1, 1)
    std: np.ndarray
    seed: int
    key: str

    @torch.no_grad()
    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = torch.from_numpy(((x - self.mean) / self.std).astype(np.float32))
        return self.encoder(z).numpy().astype(np.float64)  # (N, features)


def load_or_train(
    data: np.ndarray, *, seed: int = 0, cfg: EncoderConfig | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> FeatureExtractor:
    """The encoder for this dataset: loaded from the cache, else trained and cached."""
    cfg = cfg or EncoderConfig()
    axes = (0, *range(2, data.ndim))  # all but the channel axis
    mean = data.mean(axis=axes, keepdims=True)[0]  # (C, 1) or (C, 1, 1)
    std = data.std(axis=axes, keepdims=True)[0] + 1e-8
    key = _cache_key(data, cfg, seed)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    weights, card = folder / f"{key}.safetensors", folder / f"{key}.json"
    enc = Encoder(data.shape[1], width=cfg.width, features=cfg.features, dims=data.ndim - 2)
    if weights.exists():
        enc.load_state_dict(load_file(weights))
        enc.eval()
    else:
        enc = train_encoder((data - mean) / std, cfg=cfg, seed=seed)
        folder.mkdir(parents=True, exist_ok=True)
        save_file(enc.state_dict(), weights)
        card.write_text(json.dumps({"seed": seed, "config": asdict(cfg), "n": len(data),
                                    "channels": data.shape[1],
                                    "length": data.shape[2] if data.ndim == 3 else None,
                                    "spatial_shape": list(data.shape[2:])}))
    return FeatureExtractor(encoder=enc, mean=mean, std=std, seed=seed, key=key)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½) between Gaussians fitted to features (N, D)."""
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(cov_a @ cov_b)
    covmean = np.real(covmean)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2.0 * covmean))


def frechet_learned(
    reference: np.ndarray, candidate: np.ndarray, *, fit_on: np.ndarray, seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
) -> float:
    """Fréchet distance between `reference` and `candidate` in the encoder trained on `fit_on`."""
    extractor = load_or_train(fit_on, seed=seed, cache_dir=cache_dir)
    return frechet_distance(extractor(reference), extractor(candidate))
