"""Exact k-nearest neighbours (Euclidean) on large sets in bounded memory, on CPU or GPU.

Distances are screened in float32 with the expansion |q|² + |r|² − 2 q·r, one (query chunk ×
reference chunk) block at a time, keeping a running top-(k + margin) per query; the surviving
candidates are then re-measured exactly in float64 and sorted. The margin absorbs float32 rounding,
so the result equals brute force unless more than `margin` references tie within rounding error
of the k-th distance (where the distances themselves then agree to that error).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ._checks import check_k

REFINE_MARGIN = 8  # extra float32 candidates re-measured exactly in float64
DEFAULT_MEMORY_MB = 64  # bound on one distance block (larger blocks were no faster on CPU)


@dataclass(frozen=True)
class Neighbors:
    """The k nearest references of each query: `distances` ascending (N, k), `indices` (N, k)."""

    distances: np.ndarray
    indices: np.ndarray


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' means CUDA when available, else CPU; anything else is passed to torch."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _chunk_rows(n_cols: int, memory_mb: float, bytes_per: int = 4) -> int:
    return max(1, int(memory_mb * 2**20 // (bytes_per * max(n_cols, 1))))


def knn(
    queries: np.ndarray,
    reference: np.ndarray,
    *,
    k: int = 2,
    exclude_self: bool = False,
    device: str | torch.device = "cpu",
    memory_mb: float = DEFAULT_MEMORY_MB,
    query_chunk: int = 1024,
) -> Neighbors:
    """Exact k nearest neighbours of each row of `queries` (N, D) among `reference` (M, D).

    `exclude_self=True` is for `queries is reference`: record i never counts as its own neighbour.
    Peak memory is about `memory_mb` for the distance block plus the inputs.
    """
    q_np = np.asarray(queries).reshape(len(queries), -1)
    r_np = np.asarray(reference).reshape(len(reference), -1)
    check_k(k, len(r_np), name="reference", metric="nearest neighbours", self_excluded=exclude_self)
    dev = resolve_device(device)
    shift = r_np.mean(axis=0, dtype=np.float64).astype(np.float32)  # centring: less rounding
    ref = torch.from_numpy(r_np.astype(np.float32) - shift).to(dev)  # (M, D)
    ref_sq = (ref * ref).sum(dim=1)  # (M,)
    kc = min(k + REFINE_MARGIN, len(r_np) - int(exclude_self))
    ref_chunk = _chunk_rows(query_chunk, memory_mb)
    out_d = np.empty((len(q_np), k))
    out_i = np.empty((len(q_np), k), dtype=np.int64)
    for start in range(0, len(q_np), query_chunk):
        stop = min(start + query_chunk, len(q_np))
        q = torch.from_numpy(q_np[start:stop].astype(np.float32) - shift).to(dev)  # (b, D)
        cand = _screen(q, ref, ref_sq, kc=kc, ref_chunk=ref_chunk,
                       self_offset=start if exclude_self else None)
        out_d[start:stop], out_i[start:stop] = _refine(q_np[start:stop], r_np, cand, k)
    return Neighbors(distances=out_d, indices=out_i)


def _screen(
    q: torch.Tensor, ref: torch.Tensor, ref_sq: torch.Tensor, *, kc: int, ref_chunk: int,
    self_offset: int | None,
) -> np.ndarray:
    """Indices (b, kc) of the kc nearest references by float32 screening, merged over chunks."""
    best_d = torch.full((len(q), 0), float("inf"), device=q.device)
    best_i = torch.zeros((len(q), 0), dtype=torch.long, device=q.device)
    rows = torch.arange(len(q), device=q.device)
    for r0 in range(0, len(ref), ref_chunk):
        r1 = min(r0 + ref_chunk, len(ref))
        # (b, r): |r|² − 2 q·r ranks references like |q − r|² (|q|² is constant per row); fused
        d2 = torch.addmm(ref_sq[r0:r1], q, ref[r0:r1].T, alpha=-2.0)
        if self_offset is not None:
            cols = rows + self_offset - r0
            hit = (cols >= 0) & (cols < r1 - r0)
            d2[rows[hit], cols[hit]] = float("inf")
        block_d, block_pos = torch.topk(d2, min(kc, r1 - r0), dim=1, largest=False)
        del d2
        all_d = torch.cat([best_d, block_d], dim=1)  # (b, <= 2 kc): merge the small lists
        all_i = torch.cat([best_i, block_pos + r0], dim=1)
        best_d, pos = torch.topk(all_d, min(kc, all_d.shape[1]), dim=1, largest=False)
        best_i = torch.gather(all_i, 1, pos)
    return best_i.cpu().numpy()


def _refine(
    q: np.ndarray, ref: np.ndarray, cand: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact float64 distances to the candidates, sorted; keep the first k."""
    diff = ref[cand].astype(np.float64) - q[:, None, :].astype(np.float64)  # (b, kc, D)
    d = np.sqrt((diff * diff).sum(axis=2))  # (b, kc)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, axis=1), np.take_along_axis(cand, order, axis=1)


def distance_blocks(
    a: np.ndarray, b: np.ndarray, *, memory_mb: float = DEFAULT_MEMORY_MB,
    device: str | torch.device = "cpu",
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield (row slice of `a`, float64 Euclidean distance block (rows, len(b))) in bounded memory.

    Distances use the float64 expansion |a|² + |b|² − 2 a·b (relative error ~1e-15).
    """
    dev = resolve_device(device)
    a2 = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b_t = torch.from_numpy(np.asarray(b, dtype=np.float64).reshape(len(b), -1)).to(dev)
    rows = _chunk_rows(len(b_t), memory_mb, bytes_per=8)
    for start in range(0, len(a2), rows):
        sl = slice(start, min(start + rows, len(a2)))
        a_t = torch.from_numpy(a2[sl]).to(dev)
        yield sl, torch.cdist(a_t, b_t, compute_mode="use_mm_for_euclid_dist").cpu().numpy()
