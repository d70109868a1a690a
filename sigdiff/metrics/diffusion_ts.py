"""Diffusion-TS's four benchmark metrics (Yuan & Qiao, "Diffusion-TS: Interpretable Diffusion for
General Time Series Generation", ICLR 2024), rewritten from the definitions in their repository
(Y-debug-sys/Diffusion-TS: Utils/discriminative_metric.py, predictive_metric.py, context_fid.py,
cross_correlation.py, Models/ts2vec/, Experiments/metric_*.ipynb). Arrays are sigdiff's (N, C, L);
their code works on (N, L, C) and so does this module internally. Lower is better for all four.

- discriminative score: |accuracy − 0.5| of a post-hoc GRU classifier (TimeGAN's) trained on 80%
  of the real and 80% of the synthetic records and tested on the other 20% of each.
- predictive score: MAE on the real records of a GRU trained on the synthetic records to predict
  the last channel one step ahead from the other channels (train on synthetic, test on real).
- Context-FID: Fréchet distance between TS2Vec embeddings (max-pooled over the whole series) of
  real and synthetic records, the encoder trained on the real records given.
- correlational score: Σ over channel pairs |corr_real − corr_fake| / 10 of the lag-0 cross-
  correlations, each set standardised per channel over (records, time).

Their facts, kept: GRU hidden = ⌊C/2⌋ (2 for Sines), one GRU layer + dense (the issue's
"2-layer" reads the GRU and its dense head as two layers), Adam lr 1e-3, batch 128; 2,000
iterations (discriminative) and 5,000 (predictive), each batch a fresh draw without replacement;
sigmoid output and L1 loss for the predictor, MAE averaged over all real records. TS2Vec: hidden
64, depth 10 (11 dilated blocks, dilation 2^i, kernel 3, GELU, residual), output 320, binomial
(p = 0.5) timestamp masking and dropout 0.1 in training, AdamW lr 1e-3, batch 8, n_iters = 200 if
N·L·C ≤ 100,000 else 600, the two overlapping random crops of their `fit`, the hierarchical
contrastive loss (α = 0.5, temporal_unit 0), embeddings from the SWA average of all iterates
(`AveragedModel`), `encoding_window='full_series'`. Their notebooks use the *training* data as
"real", pass `fake[:len(real)]`, run 5 iterations and print mean ± (95% t half-width over 5 runs:
`display_scores` = sem · t(0.975, 4)) — that half-width is the "±" of their tables. Their
correlational score draws N/5 records with replacement from each set per iteration.

Where we chose (what they do in brackets):
- no MinMax normalisation here [their Sines metrics run on the raw [0, 1] data; TimeGAN's own
  scripts MinMax-scale]: pass data in [0, 1] (the predictor's sigmoid needs it).
- GRU initialisation: Glorot-uniform over each of PyTorch's stacked (3H, ·) weight matrices [TF1
  GRUCell: over its (D + H, 2H) gate and (D + H, H) candidate kernels], gate biases 1, candidate
  bias 0 [as TF1]; PyTorch's GRU applies the reset gate after the recurrent matmul [TF1: before].
- the predictive test set is all real records [theirs too; "idx[:no]" is all of them].
- Context-FID's encoding batch is 256 [8]: eval mode without masks, so results do not depend on it.
- every random draw comes from generators seeded by `seed` [global NumPy/TF/torch state].
- `diffusion_ts_report` repeats each metric with seeds spawned from `seed` and reports mean, std
  and their ± (t half-width for the number of repeats).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg, stats
from torch import nn

from ._checks import as_signals, check_same_layout

GRU_LR = 1e-3  # tf1.train.AdamOptimizer() default
GRU_BATCH = 128
DISCRIMINATIVE_ITERS = 2000
PREDICTIVE_ITERS = 5000
TRAIN_RATE = 0.8  # metric_utils.train_test_divide
TS2VEC_DIMS = {"output_dims": 320, "hidden_dims": 64, "depth": 10}
TS2VEC_BATCH = 8
TS2VEC_LR = 1e-3
TS2VEC_SMALL = 100_000  # n_iters = 200 if data.size <= this else 600 (TS2Vec.fit)
ENCODE_BATCH = 256
CORR_NORM = 10.0  # CrossCorrelLoss: loss / 10
CORR_SUBSET = 5  # metric_pytorch.ipynb: N / iterations records per draw, iterations = 5
METRICS = ("discriminative", "predictive", "context_fid", "correlational")


def _to_nlc(x: object, *, name: str, metric: str) -> np.ndarray:
    """Validate (N, C, L) signals and return them as their (N, L, C) float32 layout."""
    arr = as_signals(x, name=name, metric=metric)
    if arr.ndim != 3:
        raise ValueError(f"{metric}: {name} must be signals (N, C, L); got {arr.shape}")
    return np.ascontiguousarray(arr.transpose(0, 2, 1))  # (N, C, L) -> (N, L, C)


def _pair(real: object, fake: object, metric: str, *, min_records: int = 2,
          ) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs validated, same (C, L), at least `min_records` each; returned as (N, L, C)."""
    r = _to_nlc(real, name="real", metric=metric)
    f = _to_nlc(fake, name="fake", metric=metric)
    check_same_layout(r.transpose(0, 2, 1), f.transpose(0, 2, 1), names=("real", "fake"),
                      metric=metric)
    for name, arr in (("real", r), ("fake", f)):
        if len(arr) < min_records:
            raise ValueError(f"{metric}: {name} needs at least {min_records} records; got {len(arr)}")
    return r, f


def _torch_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


# ---------------------------------------------------------------------------------------------
# Post-hoc GRUs (TimeGAN's discriminative and predictive scores)


class PostHocGRU(nn.Module):
    """One GRU layer (hidden ⌊C/2⌋, tanh) and a dense layer to one output, per step or last."""

    def __init__(self, in_dims: int, hidden: int, *, generator: torch.Generator) -> None:
        super().__init__()
        self.gru = nn.GRU(in_dims, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)
        g = dict(self.gru.named_parameters())
        with torch.no_grad():  # TF1 GRUCell / dense initialisation, drawn from `generator`
            for w in (g["weight_ih_l0"], g["weight_hh_l0"], self.head.weight):
                bound = float(np.sqrt(6.0 / (w.shape[0] + w.shape[1])))  # Glorot uniform
                w.copy_(torch.rand(tuple(w.shape), generator=generator) * 2 * bound - bound)
            g["bias_ih_l0"].zero_()
            g["bias_ih_l0"][: 2 * hidden] = 1.0  # reset and update gates start open
            g["bias_hh_l0"].zero_()
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, D) -> per-step logits (B, T, 1) and last-step logit (B,)."""
        out, last = self.gru(x)  # (B, T, H), (1, B, H)
        return self.head(out), self.head(last[0])[:, 0]


def _batch(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """TimeGAN's `batch_generator`: the first `size` of a fresh permutation."""
    return rng.permutation(n)[:size]


def discriminative_score(real: object, fake: object, *, seed: int,
                         iterations: int = DISCRIMINATIVE_ITERS, batch_size: int = GRU_BATCH,
                         ) -> float:
    """TimeGAN's discriminative score |acc − 0.5| (discriminative_metric.py): a post-hoc GRU
    trained to tell real (1) from synthetic (0) on 80/20 splits of each, accuracy on the 20%."""
    r, f = _pair(real, fake, "discriminative_score", min_records=5)
    rng = np.random.default_rng(seed)
    split = []
    for arr in (r, f):  # train_test_divide: a separate permutation for each set
        idx = rng.permutation(len(arr))
        cut = int(len(arr) * TRAIN_RATE)
        split.append((torch.from_numpy(arr[idx[:cut]]), torch.from_numpy(arr[idx[cut:]])))
    (r_tr, r_te), (f_tr, f_te) = split
    dims = r.shape[2]
    net = PostHocGRU(dims, max(dims // 2, 1), generator=_torch_generator(seed))
    opt = torch.optim.Adam(net.parameters(), lr=GRU_LR)
    for _ in range(iterations):
        xr = r_tr[_batch(rng, len(r_tr), batch_size)]
        xf = f_tr[_batch(rng, len(f_tr), batch_size)]
        lr_, lf = net(xr)[1], net(xf)[1]
        loss = (F.binary_cross_entropy_with_logits(lr_, torch.ones_like(lr_))
                + F.binary_cross_entropy_with_logits(lf, torch.zeros_like(lf)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        correct = (net(r_te)[1] > 0).sum() + (net(f_te)[1] <= 0).sum()  # sigmoid > 0.5
    return abs(float(correct) / (len(r_te) + len(f_te)) - 0.5)


def predictive_score(real: object, fake: object, *, seed: int,
                     iterations: int = PREDICTIVE_ITERS, batch_size: int = GRU_BATCH) -> float:
    """TimeGAN's predictive score (predictive_metric.py): a GRU trained on `fake` to predict the
    last channel at step t+1 from the other channels up to t (sigmoid output, L1 loss), MAE on
    every `real` record. Data should lie in [0, 1]."""
    r, f = _pair(real, fake, "predictive_score", min_records=1)
    dims = r.shape[2]
    if dims < 2 or r.shape[1] < 2:
        raise ValueError(f"predictive_score: needs C ≥ 2 channels and L ≥ 2 steps; got C = {dims}"
                         f", L = {r.shape[1]}")
    rng = np.random.default_rng(seed)
    net = PostHocGRU(dims - 1, max(dims // 2, 1), generator=_torch_generator(seed))
    opt = torch.optim.Adam(net.parameters(), lr=GRU_LR)
    x_f, y_f = torch.from_numpy(f[:, :-1, :-1]), torch.from_numpy(f[:, 1:, -1:])  # (N, L-1, C-1)
    for _ in range(iterations):
        idx = _batch(rng, len(f), batch_size)
        loss = (torch.sigmoid(net(x_f[idx])[0]) - y_f[idx]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = torch.sigmoid(net(torch.from_numpy(r[:, :-1, :-1]))[0])  # (N, L-1, 1)
    return float((pred - torch.from_numpy(r[:, 1:, -1:])).abs().mean())


# ---------------------------------------------------------------------------------------------
# TS2Vec (Yue et al., AAAI 2022) as Diffusion-TS vendors it, for Context-FID


class _ConvBlock(nn.Module):
    """Residual block of two same-padded dilated convolutions with GELU (dilated_conv.py)."""

    def __init__(self, c_in: int, c_out: int, dilation: int, *, final: bool) -> None:
        super().__init__()
        # same padding: receptive field 2·dilation + 1 is odd for kernel 3, so nothing is trimmed
        self.conv1 = nn.Conv1d(c_in, c_out, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(c_out, c_out, 3, padding=dilation, dilation=dilation)
        self.projector = nn.Conv1d(c_in, c_out, 1) if c_in != c_out or final else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.projector is None else self.projector(x)
        return self.conv2(F.gelu(self.conv1(F.gelu(x)))) + residual


class TSEncoder(nn.Module):
    """TS2Vec's encoder: input projection, timestamp mask, dilated conv stack, dropout 0.1."""

    def __init__(self, in_dims: int, *, output_dims: int = 320, hidden_dims: int = 64,
                 depth: int = 10) -> None:
        super().__init__()
        self.input_fc = nn.Linear(in_dims, hidden_dims)
        widths = [hidden_dims] * depth + [output_dims]
        self.blocks = nn.Sequential(*[
            _ConvBlock(widths[i - 1] if i else hidden_dims, w, 2**i, final=i == len(widths) - 1)
            for i, w in enumerate(widths)])
        self.dropout = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, D), mask (B, T) of kept timestamps or None -> (B, T, output_dims)."""
        h = self.input_fc(x)  # (B, T, hidden)
        if mask is not None:
            h = h * mask[..., None]
        return self.dropout(self.blocks(h.transpose(1, 2))).transpose(1, 2)


def _instance_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """TS2Vec's instance-wise contrast: each record's two views against the batch, per step."""
    b = z1.size(0)
    if b == 1:
        return z1.new_tensor(0.0)
    z = torch.cat([z1, z2], dim=0).transpose(0, 1)  # (T, 2B, D)
    return _contrast(z, b)


def _temporal_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """TS2Vec's temporal contrast: each step's two views against the record's other steps."""
    t = z1.size(1)
    if t == 1:
        return z1.new_tensor(0.0)
    return _contrast(torch.cat([z1, z2], dim=1), t)  # (B, 2T, D)


def _contrast(z: torch.Tensor, n: int) -> torch.Tensor:
    """InfoNCE over the 2n items of the middle axis, item i positive with item i + n (losses.py)."""
    sim = z @ z.transpose(1, 2)  # (G, 2n, 2n)
    logits = torch.tril(sim, diagonal=-1)[:, :, :-1] + torch.triu(sim, diagonal=1)[:, :, 1:]
    logits = -F.log_softmax(logits, dim=-1)  # self-similarity dropped: (G, 2n, 2n − 1)
    i = torch.arange(n)
    return (logits[:, i, n + i - 1].mean() + logits[:, n + i, i].mean()) / 2


def hierarchical_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, *,
                                  alpha: float = 0.5) -> torch.Tensor:
    """TS2Vec's loss: instance and temporal contrast at every scale of a max-pool-by-2 pyramid."""
    loss, depth = z1.new_tensor(0.0), 0
    while z1.size(1) > 1:
        loss = loss + alpha * _instance_loss(z1, z2) + (1 - alpha) * _temporal_loss(z1, z2)
        depth += 1
        z1 = F.max_pool1d(z1.transpose(1, 2), kernel_size=2).transpose(1, 2)
        z2 = F.max_pool1d(z2.transpose(1, 2), kernel_size=2).transpose(1, 2)
    if z1.size(1) == 1:
        loss = loss + alpha * _instance_loss(z1, z2)
        depth += 1
    return loss / depth


def _crops(rng: np.random.Generator, length: int, batch: int,
           ) -> tuple[int, tuple[np.ndarray, int], tuple[np.ndarray, int]]:
    """TS2Vec.fit's two overlapping random crops: crop_l, and (per-record start, length) of the
    view ending with the shared segment and of the view starting with it."""
    crop_l = int(rng.integers(2, length + 1))
    left = int(rng.integers(length - crop_l + 1))
    right = left + crop_l
    eleft = int(rng.integers(left + 1))
    eright = int(rng.integers(right, length + 1))
    offset = rng.integers(-eleft, length - eright + 1, size=batch)
    return crop_l, (offset + eleft, right - eleft), (offset + left, eright - left)


def _take(x: torch.Tensor, start: np.ndarray, n: int) -> torch.Tensor:
    """Per-record windows x[b, start_b : start_b + n] (take_per_row)."""
    idx = torch.from_numpy(start[:, None] + np.arange(n))
    return x[torch.arange(len(x))[:, None], idx]


def fit_ts2vec(data: np.ndarray, *, seed: int, n_iters: int | None = None,
               batch_size: int = TS2VEC_BATCH) -> nn.Module:
    """Train TS2Vec on `data` (N, L, C) as TS2Vec.fit does; returns the SWA-averaged encoder."""
    gen = _torch_generator(seed)
    rng = np.random.default_rng(seed)
    iters = n_iters if n_iters is not None else (200 if data.size <= TS2VEC_SMALL else 600)
    x_all, bs, done = torch.from_numpy(data), min(batch_size, len(data)), 0
    with torch.random.fork_rng(devices=[]):  # init and dropout use the global generator:
        torch.manual_seed(seed)  # seeded here, restored on exit
        net = TSEncoder(data.shape[2], **TS2VEC_DIMS)
        swa = torch.optim.swa_utils.AveragedModel(net)
        opt = torch.optim.AdamW(net.parameters(), lr=TS2VEC_LR)
        while done < iters:
            order = rng.permutation(len(data))  # DataLoader(shuffle=True, drop_last=True)
            for k in range(0, len(order) - bs + 1, bs):
                if done >= iters:
                    break
                crop_l, *views = _crops(rng, x_all.size(1), bs)
                x = x_all[order[k:k + bs]]  # (B, L, C)
                out = []
                for start, n in views:
                    v = _take(x, start, n)
                    keep = torch.rand(v.shape[:2], generator=gen) < 0.5  # binomial mask, p 0.5
                    out.append(net(v, keep))
                loss = hierarchical_contrastive_loss(out[0][:, -crop_l:], out[1][:, :crop_l])
                opt.zero_grad()
                loss.backward()
                opt.step()
                swa.update_parameters(net)
                done += 1
    return swa


def encode_full_series(net: nn.Module, data: np.ndarray) -> np.ndarray:
    """Embeddings max-pooled over time (`encoding_window='full_series'`): (N, L, C) -> (N, D)."""
    net.eval()
    with torch.no_grad():
        out = [net(torch.from_numpy(data[k:k + ENCODE_BATCH])).amax(dim=1)
               for k in range(0, len(data), ENCODE_BATCH)]
    return torch.cat(out).double().numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """‖μa − μb‖² + tr(Σa + Σb − 2 (Σa Σb)^½) of two sets of vectors (N, D) (calculate_fid)."""
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean = linalg.sqrtm(cov_a @ cov_b)
    covmean = np.real(covmean)  # discard the imaginary round-off, as they do
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2.0 * covmean))


def context_fid(real: object, fake: object, *, seed: int, n_iters: int | None = None) -> float:
    """Context-FID (context_fid.py): Fréchet distance of TS2Vec full-series embeddings, the
    encoder trained on `real` only (Jeha et al. 2022, as Diffusion-TS computes it)."""
    r, f = _pair(real, fake, "context_fid", min_records=2)
    net = fit_ts2vec(r, seed=seed, n_iters=n_iters)
    return frechet_distance(encode_full_series(net, r), encode_full_series(net, f))


# ---------------------------------------------------------------------------------------------
# Correlational score


def cross_correlations(x: np.ndarray) -> np.ndarray:
    """Lag-0 cross-correlations of (N, L, C) over the lower triangle (diagonal included) of the
    channel pairs, each channel standardised over (records, time) with ddof 1 (cacf_torch)."""
    z = (x - x.mean(axis=(0, 1), keepdims=True)) / x.std(axis=(0, 1), ddof=1, keepdims=True)
    rows, cols = np.tril_indices(x.shape[2])
    return (z[..., rows] * z[..., cols]).mean(axis=(0, 1))  # (C(C+1)/2,)


def correlational_score(real: object, fake: object) -> float:
    """Diffusion-TS's correlational score (CrossCorrelLoss): Σ |corr_real − corr_fake| / 10."""
    r, f = _pair(real, fake, "correlational_score", min_records=1)
    return float(np.abs(cross_correlations(f.astype(np.float64))
                        - cross_correlations(r.astype(np.float64))).sum() / CORR_NORM)


# ---------------------------------------------------------------------------------------------
# The protocol


def correlational_draw(real: np.ndarray, fake: np.ndarray, *, seed: int) -> float:
    """One iteration of their notebook: N/5 records drawn with replacement from each set."""
    rng = np.random.default_rng(seed)
    size = max(len(real) // CORR_SUBSET, 1)
    r = real[rng.integers(0, len(real), size)]
    f = fake[rng.integers(0, len(fake), size)]
    return correlational_score(r, f)


def _runners(it: dict[str, int]) -> dict[str, Callable[[np.ndarray, np.ndarray, int], float]]:
    """Each metric as f(real, fake, seed); `it` overrides training lengths by metric name."""
    return {
        "discriminative": lambda r, f, s: discriminative_score(
            r, f, seed=s, iterations=it.get("discriminative", DISCRIMINATIVE_ITERS)),
        "predictive": lambda r, f, s: predictive_score(
            r, f, seed=s, iterations=it.get("predictive", PREDICTIVE_ITERS)),
        "context_fid": lambda r, f, s: context_fid(r, f, seed=s, n_iters=it.get("context_fid")),
        "correlational": lambda r, f, s: correlational_draw(r, f, seed=s),
    }


def repeat_seeds(seed: int, repeats: int) -> list[int]:
    """One independent seed per metric repeat, spawned from `seed` (numpy SeedSequence)."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(repeats)]


def summarise(values: Sequence[float]) -> dict[str, object]:
    """Mean, std (ddof 1) and their "±": the 95% t half-width, sem · t(0.975, n − 1)."""
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    std = float(v.std(ddof=1)) if n > 1 else float("nan")
    half = float(std / np.sqrt(n) * stats.t.ppf(0.975, n - 1)) if n > 1 else float("nan")
    return {"mean": float(v.mean()), "std": std, "ci95_half": half, "n": n,
            "values": [float(x) for x in v]}


def diffusion_ts_report(real: object, fake: object, *, seed: int, repeats: int = 5,
                        metrics: Sequence[str] = METRICS,
                        iterations: dict[str, int] | None = None) -> dict[str, dict[str, object]]:
    """The four metrics of `fake` against `real`, each repeated `repeats` times with seeds spawned
    from `seed`, as mean / std / 95% t half-width (their tables' "±"). `fake` is cut to
    len(real) as in their notebooks. `iterations` overrides training lengths (tests only)."""
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"diffusion_ts_report: unknown metrics {unknown}; valid: {list(METRICS)}")
    if repeats < 1:
        raise ValueError(f"diffusion_ts_report: repeats must be ≥ 1; got {repeats}")
    r = as_signals(real, name="real", metric="diffusion_ts_report")
    f = as_signals(fake, name="fake", metric="diffusion_ts_report")[: len(r)]
    seeds = repeat_seeds(seed, repeats)
    runners = _runners(dict(iterations or {}))
    return {m: summarise([runners[m](r, f, s) for s in seeds]) for m in metrics}
