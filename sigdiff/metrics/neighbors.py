"""Exact k-nearest neighbours (Euclidean) on large sets in bounded memory, on CPU or GPU.

Screening: distances are screened in float32 with the expansion |q|² + |r|² − 2 q·r, one (query
chunk × reference chunk) block at a time, keeping a running top-(k + margin) per query; the
surviving candidates are then re-measured exactly in float64 and sorted. The margin absorbs
float32 rounding, so the result equals brute force unless more than `margin` references tie
within rounding error of the k-th distance (where the distances themselves then agree to that
error). Among exactly tied references the lowest index comes first (a stable brute-force sort).

Clusters (`method="clusters"`, the default on large sets; a filter-and-refine search after
Korn et al. 1996 and Seidl & Kriegel 1998). Each series x is summarised by its coordinates on the
reference set's p leading principal axes V and the norm of what they leave out,
a(x) = (Vᵀ(x − μ), ‖(I − VVᵀ)(x − μ)‖). By Pythagoras and the reverse triangle inequality
‖a(q) − a(r)‖ ≤ ‖q − r‖, and for references grouped into clusters with centre c and radius R
(in that summary space) ‖q − r‖ ≥ ‖a(q) − c‖ − R for every member r. Per block of queries that
share clusters, τ (per query) is the k-th screened distance among the members of the queries' own
clusters plus its float32 rounding allowance, an upper bound on the true k-th neighbour distance;
every cluster whose bound is
at most τ for some query of the block is screened as above, and no reference of another cluster
can be among the k nearest: the answer equals screening everything. On signals whose energy
sits in a few components (ECG beats: 98% in 16) about a tenth of the references are screened
(`benchmarks/metrics_speed.py`); on white noise nothing would be ruled out, so `auto` screens
everything when the p axes hold less than half of the energy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ._checks import check_k

REFINE_MARGIN = 8  # extra float32 candidates re-measured exactly in float64
DEFAULT_MEMORY_MB = 64  # bound on one distance block (larger blocks were no faster on CPU)
CLUSTER_MIN_PAIRS = 4_000_000  # `auto` screens every pair below this many
CLUSTER_DIMS = 16  # principal axes in the summary a(x) (ECG5000 beats: 98% of the energy)
CLUSTER_MIN_ENERGY = 0.5  # `auto` screens everything when the axes hold less of the energy
CLUSTER_SIZE = 200  # references per cluster on average (fastest of 50-1000 on the benchmark)
CLUSTER_FIT_ROWS = 4096  # evenly spaced reference rows the axes and clusters are fitted on
CLUSTER_ITERS = 6  # Lloyd iterations
CLUSTER_QUERY_MIN = 64  # queries per block at least (blocks share a home cluster when they can)


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
    method: str = "auto",
) -> Neighbors:
    """Exact k nearest neighbours of each row of `queries` (N, D) among `reference` (M, D).

    `exclude_self=True` is for `queries is reference`: record i never counts as its own neighbour.
    Peak memory is about `memory_mb` for the distance block plus the inputs. `method`:
    "screen" (every pair), "clusters" (only the clusters the bound cannot rule out) or
    "auto" (clusters from `CLUSTER_MIN_PAIRS` pairs up, when the leading axes hold at least
    `CLUSTER_MIN_ENERGY` of the references' energy); all give the same answer.
    """
    q_np = np.asarray(queries).reshape(len(queries), -1)
    r_np = np.asarray(reference).reshape(len(reference), -1)
    check_k(k, len(r_np), name="reference", metric="nearest neighbours", self_excluded=exclude_self)
    if method not in ("auto", "clusters", "screen"):
        raise ValueError(f"knn: unknown method {method!r}; use 'auto', 'clusters' or 'screen'")
    clusters = method == "clusters" or (
        method == "auto" and len(q_np) * len(r_np) >= CLUSTER_MIN_PAIRS)
    dev = resolve_device(device)
    shift = r_np.mean(axis=0, dtype=np.float64)  # centring: less rounding
    kc = min(k + REFINE_MARGIN, len(r_np) - int(exclude_self))
    ref_chunk = _chunk_rows(query_chunk, memory_mb)
    if clusters:
        axes, captured = _principal_axes(r_np, shift)
        if method == "clusters" or captured >= CLUSTER_MIN_ENERGY:  # else bounds rule out little
            index = _ClusterIndex.build(r_np, shift, axes)
            return _knn_clusters(q_np, r_np, index, k=k, kc=kc, exclude_self=exclude_self,
                                 device=dev, ref_chunk=ref_chunk, query_chunk=query_chunk)
    return _knn_screen(q_np, r_np, shift, k=k, kc=kc, exclude_self=exclude_self, device=dev,
                       ref_chunk=ref_chunk, query_chunk=query_chunk)


def _knn_screen(
    q_np: np.ndarray, r_np: np.ndarray, shift: np.ndarray, *, k: int, kc: int,
    exclude_self: bool, device: torch.device, ref_chunk: int, query_chunk: int,
) -> Neighbors:
    """Every pair screened, query chunk by query chunk."""
    shift32 = shift.astype(np.float32)
    ref = torch.from_numpy(r_np.astype(np.float32) - shift32).to(device)  # (M, D)
    ref_sq = (ref * ref).sum(dim=1)  # (M,)
    out_d = np.empty((len(q_np), k))
    out_i = np.empty((len(q_np), k), dtype=np.int64)
    for start in range(0, len(q_np), query_chunk):
        stop = min(start + query_chunk, len(q_np))
        q = torch.from_numpy(q_np[start:stop].astype(np.float32) - shift32).to(device)  # (b, D)
        own = torch.arange(start, stop, device=device) if exclude_self else None
        cand = _screen(q, ref, ref_sq, kc=kc, ref_chunk=ref_chunk, self_cols=own)[1]
        out_d[start:stop], out_i[start:stop] = _refine(q_np[start:stop], r_np, cand, k)
    return Neighbors(distances=out_d, indices=out_i)


def _knn_clusters(
    q_np: np.ndarray, r_np: np.ndarray, index: _ClusterIndex, *, k: int, kc: int,
    exclude_self: bool, device: torch.device, ref_chunk: int, query_chunk: int,
) -> Neighbors:
    """Only the clusters the bound cannot rule out screened, block of queries by block."""
    shift32 = index.centre.astype(np.float32)
    ref = torch.from_numpy(r_np[index.order].astype(np.float32) - shift32).to(device)  # by cluster
    ref_sq = (ref * ref).sum(dim=1)
    ref_sq_max = float(ref_sq.max())
    q_emb = index.embed(q_np)
    home = _nearest(q_emb, index.centroids)
    q_order = np.argsort(home, kind="stable")  # blocks of queries that share clusters
    position = np.argsort(index.order)  # reference i sits at position[i] in cluster order
    out_d = np.empty((len(q_np), k))
    out_i = np.empty((len(q_np), k), dtype=np.int64)

    def solve(rows: np.ndarray) -> None:
        q = torch.from_numpy(q_np[rows].astype(np.float32) - shift32).to(device)
        own = position[rows] if exclude_self else None
        # τ: an upper bound on each query's k-th neighbour distance, from its own clusters
        seeds = index.seed_clusters(home[rows], need=kc + 1)
        val, cand = _candidates(q, ref, ref_sq, index.members(seeds), index.order, own, kc=kc,
                                ref_chunk=ref_chunk)
        tau = _upper_kth(val, q, ref_sq_max, k)
        rest = np.setdiff1d(index.clusters_within(q_emb[rows], tau), seeds, assume_unique=True)
        if len(rest):  # the only other clusters that can hold a query's k nearest
            more_val, more = _candidates(q, ref, ref_sq, index.members(rest), index.order, own,
                                         kc=kc, ref_chunk=ref_chunk)
            val, cand = np.concatenate([val, more_val], 1), np.concatenate([cand, more], 1)
            keep = np.argsort(val, axis=1, kind="stable")[:, :kc]  # as one screen would
            cand = np.take_along_axis(cand, keep, axis=1)
        out_d[rows], out_i[rows] = _refine(q_np[rows], r_np, cand, k)

    blocks = _query_blocks(home[q_order], q_order, cap=query_chunk)
    _run_blocks(solve, blocks, device)
    return Neighbors(distances=out_d, indices=out_i)


def _run_blocks(solve: Callable[[np.ndarray], None], blocks: list[np.ndarray],
                device: torch.device) -> None:
    """Query blocks are small (tens to a thousand queries against a few thousand references),
    too small for torch's intra-op threads to pay; on CPU they run side by side instead, one
    block per thread with single-threaded ops (each block writes only its own rows, so the
    answer does not depend on the order)."""
    workers = torch.get_num_threads() if device.type == "cpu" else 1
    if workers <= 1 or len(blocks) < 2:
        for rows in blocks:
            solve(rows)
        return
    from concurrent.futures import ThreadPoolExecutor

    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(solve, blocks))
    finally:
        torch.set_num_threads(workers)


def _query_blocks(home_sorted: np.ndarray, q_order: np.ndarray, *, cap: int) -> list[np.ndarray]:
    """Queries (sorted by home cluster) cut into blocks: one home cluster per block (split above
    `cap` queries), small neighbouring ones merged up to `CLUSTER_QUERY_MIN` queries."""
    cuts = np.flatnonzero(np.diff(home_sorted)) + 1
    bounds = [0, *cuts.tolist(), len(home_sorted)]
    blocks: list[np.ndarray] = []
    start = 0
    for b in bounds[1:]:
        if b - start >= CLUSTER_QUERY_MIN or b == len(home_sorted):
            for s in range(start, b, cap):  # one home cluster may exceed the cap
                blocks.append(q_order[s : min(s + cap, b)])
            start = b
    return blocks


def _candidates(
    q: torch.Tensor, ref: torch.Tensor, ref_sq: torch.Tensor, cols: np.ndarray,
    order: np.ndarray, own: np.ndarray | None, *, kc: int, ref_chunk: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Screening values and reference indices (b, ≤ kc) of each query's kc nearest among the
    references at positions `cols` (ascending) of the cluster-ordered `ref`; `own`: each query's
    own position (never a candidate) or None."""
    self_cols = None
    n_own = 0
    if own is not None:
        at = np.searchsorted(cols, own)
        hit = (at < len(cols)) & (cols[np.minimum(at, len(cols) - 1)] == own)
        n_own = int(hit.any())
        self_cols = torch.from_numpy(np.where(hit, at, -1)).to(q.device)
    val, cand = _screen(q, ref, ref_sq, kc=min(kc, len(cols) - n_own), ref_chunk=ref_chunk,
                        self_cols=self_cols, cols=cols)
    return val, order[cols[cand]]


def _upper_kth(val: np.ndarray, q: torch.Tensor, ref_sq_max: float, k: int) -> np.ndarray:
    """An upper bound on each query's k-th neighbour distance from the k-th smallest screening
    value: k references have d² ≤ value + |q|² + the float32 error of the expansion, which is
    below (D + 2) u (|q|² + |r|²) (u: float32 unit roundoff); we add twice that."""
    q_sq = (q * q).sum(dim=1).double().cpu().numpy()
    err = 2 * (q.shape[1] + 2) * float(np.finfo(np.float32).eps) * (q_sq + ref_sq_max)
    return np.sqrt(np.maximum(val[:, k - 1].astype(np.float64) + q_sq + err, 0.0))


def _principal_axes(r: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, float]:
    """The p leading principal axes V (D, p) of the references (fitted on evenly spaced rows)
    and the share of those rows' energy about μ they hold."""
    fit = torch.from_numpy(r[:: max(1, len(r) // CLUSTER_FIT_ROWS)]).double()
    fit = fit - torch.from_numpy(centre)
    evals, evecs = torch.linalg.eigh(fit.T @ fit)  # ascending: the last axes lead
    p = min(CLUSTER_DIMS, r.shape[1])
    total = float(evals.clamp(min=0).sum())
    captured = float(evals.flip(0)[:p].clamp(min=0).sum()) / total if total > 0 else 1.0
    return evecs.flip(1)[:, :p].contiguous().numpy(), captured


def _embed(x: np.ndarray, centre: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """a(x) = (Vᵀ(x − μ), ‖(I − VVᵀ)(x − μ)‖): (n, p + 1), float64, in bounded chunks."""
    out = torch.empty((len(x), axes.shape[1] + 1), dtype=torch.float64)
    v, mu = torch.from_numpy(axes), torch.from_numpy(centre)
    for s in range(0, len(x), 8192):
        xc = torch.from_numpy(x[s : s + 8192]).double() - mu
        coords = xc @ v
        out[s : s + 8192, :-1] = coords
        out[s : s + 8192, -1] = torch.linalg.vector_norm(xc - coords @ v.T, dim=1)
    return out.numpy()


def _centroid_distances(emb: np.ndarray, centroids: np.ndarray
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared distances ‖a − c‖² to every centroid (n, C) by the float64 expansion, and a bound
    on their rounding error (n, C)."""
    e, c = torch.from_numpy(emb), torch.from_numpy(centroids)
    a2 = (e * e).sum(dim=1)[:, None]
    c2 = (c * c).sum(dim=1)[None]
    d2 = torch.addmm(a2 + c2, e, c.T, alpha=-2.0)
    return d2, 64 * float(np.finfo(np.float64).eps) * (a2 + c2)


def _nearest(emb: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of each row's nearest centroid (n,)."""
    return np.concatenate(
        [_centroid_distances(emb[s : s + 4096], centroids)[0].argmin(dim=1).numpy()
         for s in range(0, len(emb), 4096)] or [np.zeros(0, np.int64)])


@dataclass(frozen=True)
class _ClusterIndex:
    """References grouped into clusters in the summary space a(x) (see the module docstring)."""

    centre: np.ndarray  # μ (D,)
    axes: np.ndarray  # V (D, p), orthonormal columns
    centroids: np.ndarray  # (C, p + 1)
    radius: np.ndarray  # (C,) max ‖a(r) − c‖ over the cluster's members
    order: np.ndarray  # (M,) reference indices grouped by cluster (stable)
    offsets: np.ndarray  # (C + 1,) cluster c holds order[offsets[c]:offsets[c + 1]]

    @classmethod
    def build(cls, r: np.ndarray, centre: np.ndarray, axes: np.ndarray) -> _ClusterIndex:
        emb = _embed(r, centre, axes)
        n_clusters = max(1, len(r) // CLUSTER_SIZE)
        centroids = _kmeans(emb[:: max(1, len(r) // CLUSTER_FIT_ROWS)], n_clusters)
        label = _nearest(emb, centroids)
        order = np.argsort(label, kind="stable")
        offsets = np.concatenate([[0], np.cumsum(np.bincount(label, minlength=n_clusters))])
        spread = np.linalg.norm(emb - centroids[label], axis=1)
        radius = np.zeros(n_clusters)
        np.maximum.at(radius, label, spread)
        return cls(centre, axes, centroids, radius, order, offsets)

    def embed(self, x: np.ndarray) -> np.ndarray:
        return _embed(x, self.centre, self.axes)

    def seed_clusters(self, home: np.ndarray, *, need: int) -> np.ndarray:
        """The queries' own clusters, plus the largest others until they hold `need` members."""
        chosen = np.unique(home)
        size = np.diff(self.offsets)
        if size[chosen].sum() < need:
            rest = np.setdiff1d(np.argsort(-size, kind="stable"), chosen, assume_unique=True)
            short = need - size[chosen].sum()
            extra = rest[: int(np.searchsorted(np.cumsum(size[rest]), short)) + 1]
            chosen = np.union1d(chosen, extra)
        return chosen

    def clusters_within(self, emb: np.ndarray, tau: np.ndarray) -> np.ndarray:
        """Clusters whose lower bound ‖a(q) − c‖ − R is at most τ for some query (with a float64
        rounding allowance on the distance and the radius): the only ones that can hold a query's
        k nearest."""
        d2, err = _centroid_distances(emb, self.centroids)
        lower = (d2 - err).clamp_(min=0).sqrt_() - torch.from_numpy(self.radius * (1 + 1e-12))
        return torch.nonzero((lower <= torch.from_numpy(tau)[:, None]).any(dim=0)).ravel().numpy()

    def members(self, clusters: np.ndarray) -> np.ndarray:
        """Positions (ascending) in cluster order of the members of `clusters` (ascending)."""
        starts, sizes = self.offsets[clusters], np.diff(self.offsets)[clusters]
        # each member's position: its cluster's start + its rank inside the cluster
        first = np.repeat(np.cumsum(sizes) - sizes, sizes)
        return np.repeat(starts, sizes) + np.arange(int(sizes.sum())) - first


def _kmeans(x: np.ndarray, n_clusters: int, iters: int = CLUSTER_ITERS) -> np.ndarray:
    """Lloyd's k-means from evenly spaced rows (deterministic; any clustering keeps the search
    exact, a good one only makes it faster)."""
    xt = torch.from_numpy(x)
    centroids = xt[torch.linspace(0, len(x) - 1, n_clusters).long()].clone()
    for _ in range(iters):
        label = torch.cdist(xt, centroids).argmin(dim=1)
        count = torch.bincount(label, minlength=n_clusters)
        sums = torch.zeros_like(centroids).index_add_(0, label, xt)
        filled = count > 0
        centroids[filled] = sums[filled] / count[filled, None]
    return centroids.numpy()


def _screen(
    q: torch.Tensor, ref: torch.Tensor, ref_sq: torch.Tensor, *, kc: int, ref_chunk: int,
    self_cols: torch.Tensor | None, cols: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The kc nearest references by float32 screening, merged over chunks: their screening
    values |r|² − 2 q·r (b, kc), ascending, and indices (b, kc) into `ref` (or into `cols`, the
    rows of `ref` to screen, gathered a chunk at a time, when given).

    `self_cols` (b,): the column of each query's own record (any value outside the columns when
    it is not there); those pairs never count.
    """
    n = len(ref) if cols is None else len(cols)
    sel = None if cols is None else torch.from_numpy(cols).to(q.device)
    best_d = torch.full((len(q), 0), float("inf"), device=q.device)
    best_i = torch.zeros((len(q), 0), dtype=torch.long, device=q.device)
    rows = torch.arange(len(q), device=q.device)
    for r0 in range(0, n, ref_chunk):
        r1 = min(r0 + ref_chunk, n)
        block = ref[r0:r1] if sel is None else ref[sel[r0:r1]]
        block_sq = ref_sq[r0:r1] if sel is None else ref_sq[sel[r0:r1]]
        # (b, r): |r|² − 2 q·r ranks references like |q − r|² (|q|² is constant per row); fused
        d2 = torch.addmm(block_sq, q, block.T, alpha=-2.0)
        if self_cols is not None:
            at = self_cols - r0
            hit = (at >= 0) & (at < r1 - r0)
            d2[rows[hit], at[hit]] = float("inf")
        block_d, block_pos = torch.topk(d2, min(kc, r1 - r0), dim=1, largest=False)
        del d2
        all_d = torch.cat([best_d, block_d], dim=1)  # (b, <= 2 kc): merge the small lists
        all_i = torch.cat([best_i, block_pos + r0], dim=1)
        best_d, pos = torch.topk(all_d, min(kc, all_d.shape[1]), dim=1, largest=False)
        best_i = torch.gather(all_i, 1, pos)
    return best_d.cpu().numpy(), best_i.cpu().numpy()


def _refine(
    q: np.ndarray, ref: np.ndarray, cand: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact float64 distances to the candidates, sorted (ties: lowest index); keep the first k."""
    cand = np.sort(cand, axis=1)
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
