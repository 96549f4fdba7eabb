"""Fast greedy k-center (lazy evaluation, exact): identical picks to the reference."""

from __future__ import annotations

import operator

import faiss
import numpy as np

from patchline.core.coreset.bound import LowDimBound
from patchline.core.coreset.kernel import TAKEN, all_finite, check_args, padded_dim, progress_bar, sq_dists, work_copy


def _default_pool_rows(n: int) -> int:
    # Per-step cost grows with the pool, rebuild frequency falls with it; N/16 measured best
    # on 50k-200k mildly clustered points (see bench/coreset.py).
    return int(min(n, max(1024, min(16384, n // 16))))



def greedy_k_center(points: np.ndarray, n_select: int, start: int = 0, progress: bool = False,
                    *, pool_rows: int | None = None) -> np.ndarray:
    """Greedy k-center selection, identical to :func:`plain_greedy_k_center` but faster.

    points: (N, d) float32, C-contiguous, ``np.memmap`` allowed (used in place; other dtypes,
    layouts or d < 16 are first copied in chunks to one float32 working matrix). Besides that
    copy, memory is O(N) (~40 % of the points matrix for d = 128: a 32-dim projection, the
    minima, a pool), so peak stays below 2x the input. Returns (n_select,) int64 indices in pick order: ``start`` first,
    then each step the point with the largest squared L2 distance to the selected set
    (lowest index on ties). ``pool_rows`` tunes speed only.

    How (lazy evaluation, exact): a point's minimum only ever decreases, so a minimum that
    has not seen the latest centers is an upper bound of the true one. Only a pool of the
    ~``pool_rows`` points with the largest minima is kept exact (one kernel call over the
    pool per step). The pool's best point is the true argmax while its value is strictly
    above every stale minimum outside the pool; when it is not, the pool is rebuilt, and only
    the points competing for it catch up on the centers they have not seen. Points that are
    well covered are never measured again.
    """
    n, _, n_select, start = check_args(points, n_select, start)
    pool_rows = _default_pool_rows(n) if pool_rows is None else operator.index(pool_rows)
    if pool_rows < 1:
        raise ValueError(f"pool_rows must be positive, got {pool_rows}")
    w = points
    if not (type(points) in (np.ndarray, np.memmap) and points.dtype == np.float32
            and points.flags.c_contiguous and points.shape[1] == padded_dim(points.shape[1])
            and all_finite(points)):
        w = work_copy(points)

    # Thousands of small faiss calls follow: an OpenMP region per call costs milliseconds
    # when the cores are busy, so this thread runs them serially (the setting is per thread).
    omp_threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return _greedy_lazy(w, n, n_select, start, pool_rows, progress)
    finally:
        faiss.omp_set_num_threads(omp_threads)


def _greedy_lazy(w: np.ndarray, n: int, n_select: int, start: int, pool_rows: int,
                 progress: bool) -> np.ndarray:
    bound = LowDimBound(w, n)
    selected = np.empty(n_select, np.int64)
    selected[0] = start
    # stale[x]: exact minimum over selected[:seen[x]], an upper bound of the true minimum.
    stale = np.empty(n, np.float32)
    sq_dists(w, np.ascontiguousarray(w[start]), stale)
    stale[start] = TAKEN
    seen = np.ones(n, np.int32)
    n_centers = 1

    pool = np.empty(0, np.int64)          # sorted indices, so argmax's first hit is the lowest
    pool_vals = np.empty(0, np.float32)   # exact minima of the pool
    pool_w = np.empty((0, w.shape[1]), np.float32)
    outside = np.float32(np.inf)          # max stale minimum outside the pool
    k = min(pool_rows, n)

    with progress_bar(n_select, progress) as bar:
        bar.update(1)
        for step in range(1, n_select):
            best = int(np.argmax(pool_vals)) if pool.size else -1
            if best < 0 or not pool_vals[best] > outside:
                # Rebuild: write the pool back, then bring the current top k up to date
                # until the top k no longer changes.
                stale[pool] = pool_vals
                seen[pool] = n_centers
                while True:
                    kth = np.partition(stale, n - k)[n - k]
                    pool = np.flatnonzero(stale >= kth)  # ties with the k-th all join
                    behind = pool[seen[pool] < n_centers]
                    if behind.size == 0:
                        break
                    # Points last refreshed together missed the same centers.
                    behind = behind[np.argsort(seen[behind], kind="stable")]
                    firsts = np.flatnonzero(np.diff(seen[behind], prepend=-1))
                    for g0, g1 in zip(firsts, np.append(firsts[1:], behind.size)):
                        ids = behind[g0:g1]
                        vals = stale[ids]
                        bound.catch_up(w, ids, selected[seen[ids[0]]:n_centers], vals)
                        stale[ids] = vals
                    seen[behind] = n_centers
                pool_vals = stale[pool]
                pool_w = np.ascontiguousarray(w[pool])
                dist = np.empty(pool.size, np.float32)
                saved = stale[pool]
                stale[pool] = -np.inf
                outside = stale.max()
                stale[pool] = saved
                best = int(np.argmax(pool_vals))
            selected[step] = pool[best]
            pool_vals[best] = TAKEN
            n_centers += 1
            sq_dists(pool_w, pool_w[best], dist)
            np.minimum(pool_vals, dist, out=pool_vals)
            bar.update(1)
    return selected
