"""Coreset selection for the memory bank: greedy k-center on a random projection.

PatchCore keeps only a subset of the training patch embeddings: the points picked by the
greedy k-center rule (Gonzalez) computed on a Johnson-Lindenstrauss projection of the
features. This module provides

* :class:`RandomProjection` -- a fixed Gaussian projection applied batch by batch, so the
  full feature matrix (possibly a disk ``np.memmap``) is never held twice in RAM;
* :func:`plain_greedy_k_center` -- the straightforward reference: every step measures the
  distance from the newly chosen point to all points;
* :func:`greedy_k_center` -- the same selection, made fast by lazy evaluation: only the points
  that compete for the next pick are kept up to date, and a PCA lower bound skips the pairs
  that provably cannot lower a point's minimum;
* :func:`select_coreset` -- projection + seeded start + :func:`greedy_k_center`.

Exactness. Both greedy functions measure a point's squared distance with one per-point kernel
(faiss ``fvec_L2sqr_ny``: direct differences ``sum((x - c)**2)`` in float32), whose value for a
row does not depend on which other rows are in the call. The fast path only ever skips rows
a pair (point, center) when a lower bound proves the kernel's float32 value could not lower
the point's minimum (margins cover float32/float64 rounding), and breaks ties on the lowest
index, so both functions return identical indices.
"""

from __future__ import annotations

import math
import operator
import sys

import faiss
import numpy as np
from tqdm import tqdm

from patchline.errors import ConfigError

__all__ = [
    "RandomProjection",
    "greedy_k_center",
    "plain_greedy_k_center",
    "select_coreset",
    "select_from_projection",
]

# faiss has special multi-row kernels for a few tiny dimensions (2, 4, 8, ...) whose per-row
# rounding depends on the row's position in the call; zero columns up to this width keep
# every dimension on the per-row generic kernel (zeros add exactly nothing).
_MIN_DIM = 16
# Rows per call of the distance kernel: keeps the scratch buffer small.
_KERNEL_ROWS = 65536
# Mark for selected points: below any squared distance, so np.minimum never
# raises it and argmax never picks it again.
_TAKEN = np.float32(-1.0)


class RandomProjection:
    """Fixed Gaussian (Johnson-Lindenstrauss) projection ``R^in_dim -> R^out_dim``.

    The matrix has i.i.d. N(0, 1/out_dim) entries drawn from ``seed``, so squared distances
    are preserved in expectation. Rows are projected independently and the result for a row
    does not depend on how the input is batched (tiny batches are zero-padded so the BLAS
    call always takes its blocked path), so features can be projected as they are extracted.

    When ``in_dim <= out_dim`` there is nothing to gain: the projection is the identity and
    ``out_dim`` becomes ``in_dim`` (features pass through, converted to float32).
    """

    # BLAS picks a different (differently rounded) kernel for matrices of very few rows.
    _MIN_ROWS = 64

    def __init__(self, in_dim: int, out_dim: int = 128, seed: int = 0):
        in_dim = operator.index(in_dim)
        out_dim = operator.index(out_dim)
        if in_dim < 1 or out_dim < 1:
            raise ValueError(f"projection dimensions must be positive, got {in_dim} -> {out_dim}")
        self.in_dim = in_dim
        self.seed = seed
        if in_dim <= out_dim:
            self.out_dim = in_dim
            self.matrix = None
        else:
            self.out_dim = out_dim
            rng = np.random.default_rng(seed)
            m = rng.standard_normal((in_dim, out_dim), dtype=np.float32)
            m *= np.float32(1.0 / math.sqrt(out_dim))
            self.matrix = m

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Project ``x`` (n, in_dim), any real dtype, to (n, out_dim) float32."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"expected features of shape (n, {self.in_dim}), got {x.shape}")
        x = x.astype(np.float32, copy=False)
        if self.matrix is None:
            return x
        if 0 < x.shape[0] < self._MIN_ROWS:
            padded = np.zeros((self._MIN_ROWS, self.in_dim), np.float32)
            padded[: x.shape[0]] = x
            return (padded @ self.matrix)[: x.shape[0]]
        return x @ self.matrix


# --------------------------------------------------------------------------- distance kernel


def _sq_dists(rows: np.ndarray, c: np.ndarray, out: np.ndarray) -> None:
    """out[i] = sum((rows[i] - c)**2), float32; rows (k, d) and c (d,) C-contiguous."""
    k, d = rows.shape
    if k:
        faiss.fvec_L2sqr_ny(faiss.swig_ptr(out), faiss.swig_ptr(c), faiss.swig_ptr(rows), d, k)


def _padded_dim(d: int) -> int:
    return max(d, _MIN_DIM)


def _check_args(points, n_select, start) -> tuple[int, int, int, int]:
    if not hasattr(points, "shape") or len(points.shape) != 2:
        raise ValueError("points must be a 2-D array (N, d)")
    n, d = points.shape
    if n < 1 or d < 1:
        raise ValueError(f"points must be non-empty, got shape {points.shape}")
    n_select = operator.index(n_select)
    start = operator.index(start)
    if not 1 <= n_select <= n:
        raise ValueError(f"n_select must be in [1, {n}], got {n_select}")
    if not 0 <= start < n:
        raise ValueError(f"start must be in [0, {n}), got {start}")
    return n, d, n_select, start


def _work_copy(points) -> np.ndarray:
    """float32 (N, padded d) C-contiguous copy of ``points``, zero columns beyond d.

    Copies in chunks so a memmap or non-float32 input is never converted whole.
    Raises ValueError on non-finite values (they would break the argmax).
    """
    n, d = points.shape
    w = np.zeros((n, _padded_dim(d)), np.float32)
    for a in range(0, n, _KERNEL_ROWS):
        b = min(n, a + _KERNEL_ROWS)
        chunk = points[a:b]
        chunk = np.asarray(chunk, dtype=np.float32)
        if not _all_finite(chunk):
            raise ValueError("points contain NaN or infinite values")
        w[a:b, :d] = chunk
    return w


def _all_finite(points: np.ndarray) -> bool:
    return all(np.isfinite(points[a:a + _KERNEL_ROWS]).all()
               for a in range(0, points.shape[0], _KERNEL_ROWS))


def _progress_bar(total: int, enabled: bool):
    return tqdm(total=total, disable=not enabled, file=sys.stderr, desc="coreset",
                unit="pt", mininterval=0.5, dynamic_ncols=True)


# --------------------------------------------------------------------------- reference


def plain_greedy_k_center(points: np.ndarray, n_select: int, start: int = 0,
                          progress: bool = False) -> np.ndarray:
    """Reference greedy k-center: each step measures the new center against every point.

    points: (N, d) float32 (other real dtypes are converted). Selects ``start`` first, then
    repeatedly the point farthest (squared L2) from the selected set, lowest index on ties;
    selected points are never picked twice. Returns (n_select,) int64 indices in pick order.
    O(N * d) work per step; see :func:`greedy_k_center` for the fast, identical version.
    """
    n, _, n_select, start = _check_args(points, n_select, start)
    w = _work_copy(points)
    selected = np.empty(n_select, np.int64)
    mind = np.empty(n, np.float32)
    dist = np.empty(n, np.float32)
    selected[0] = start
    _sq_dists(w, w[start], mind)
    mind[start] = _TAKEN
    with _progress_bar(n_select, progress) as bar:
        bar.update(1)
        for step in range(1, n_select):
            j = int(np.argmax(mind))
            selected[step] = j
            mind[j] = _TAKEN
            _sq_dists(w, w[j], dist)
            np.minimum(mind, dist, out=mind)
            bar.update(1)
    return selected


# --------------------------------------------------------------------------- fast path


def _default_pool_rows(n: int) -> int:
    # Per-step cost grows with the pool, rebuild frequency falls with it; N/16 measured best
    # on 50k-200k mildly clustered points (see bench/coreset.py).
    return int(min(n, max(1024, min(16384, n // 16))))


def _principal_direction(sample: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Top principal axis of ``sample`` (m, d) by power iteration (approximate is fine)."""
    x = sample.astype(np.float64)
    x -= x.mean(axis=0)
    v = rng.standard_normal(x.shape[1])
    for _ in range(8):
        v = x.T @ (x @ v)
        norm = np.linalg.norm(v)
        if norm == 0.0:  # all sample points equal: any direction splits as well as another
            return rng.standard_normal(x.shape[1])
        v /= norm
    return v


def _balanced_partition(points, block_rows: int) -> np.ndarray:
    """Order of the N rows in which consecutive ``block_rows`` rows form spatially tight blocks.

    Recursive median split along the top principal axis (a balanced PCA tree), so every block
    but the last is full and neighbouring blocks are near each other in the order. Only used
    to group nearby points into tiles: it affects speed, never the selection.
    """
    n = points.shape[0]
    n_blocks = -(-n // block_rows)
    order = np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(0x5EED)
    stack = [(0, n, n_blocks)]
    while stack:
        s, e, nb = stack.pop()
        ids = order[s:e]
        if nb == 1:
            ids.sort()
            continue
        m = e - s
        sample_ids = ids if m <= 512 else np.sort(rng.choice(ids, 512, replace=False))
        v = _principal_direction(np.asarray(points[sample_ids], np.float32), rng).astype(np.float32)
        proj = np.empty(m, np.float32)
        for a in range(0, m, 16384):
            proj[a:a + 16384] = np.asarray(points[ids[a:a + 16384]], np.float32) @ v
        left = (nb // 2) * block_rows
        order[s:e] = ids[np.argpartition(proj, left)]
        stack.append((s + left, e, nb - nb // 2))
        stack.append((s, s + left, nb // 2))
    return order


class _LowDimBound:
    """Cheap lower bounds of squared distances from a q-dim orthonormal (PCA) projection.

    For orthonormal rows Q, |Q(x - c)| <= |x - c|, so a pair whose projected distance already
    exceeds a point's current minimum cannot lower it and needs no exact measurement. The
    projection is fitted on a sample; its quality only affects speed, never the result.
    """

    # Rounding slack, relative to the projected squared norms: float32 GEMM over q <= 32 terms
    # errs by < (q + 2) * 2**-24 ~ 2e-6 of them; keep a 5x margin.
    _SLACK = 1e-5

    def __init__(self, w: np.ndarray, n_rows: int, q: int = 32, seed: int = 0):
        d = w.shape[1]
        q = min(q, d)
        rng = np.random.default_rng(seed)
        # sample and chunks scale with N so the temporaries stay a small share of the points
        chunk = max(256, min(4096, n_rows // 16))
        sample = np.sort(rng.choice(n_rows, min(n_rows, chunk), replace=False))
        xs = np.asarray(w[sample], np.float64)
        self.mean = xs.mean(axis=0)
        xs -= self.mean
        _, vecs = np.linalg.eigh(xs.T @ xs)
        self.basis = np.ascontiguousarray(vecs[:, ::-1][:, :q])  # (d, q), orthonormal columns
        self.y = np.empty((n_rows, q), np.float32)
        spread = 0.0
        for a in range(0, n_rows, chunk):
            # centred and in float64, so storing float32 costs only ~1e-7 of |y|
            xc = np.asarray(w[a:a + chunk], np.float64)
            xc -= self.mean
            self.y[a:a + chunk] = xc @ self.basis
            spread = max(spread, float(np.einsum("nd,nd->n", xc, xc).max()))
        # float64 error of y itself: ~d * 1e-16 of |x - mean|; 1e-12 of the largest bounds it.
        self.abs_err = 1e-12 * math.sqrt(spread) + 1e-30
        self.y_sq = np.einsum("nq,nq->n", self.y, self.y)
        # position in a balanced PCA tree of y: sorting by it makes tiles of nearby points
        self.rank = np.empty(n_rows, np.int32)
        self.rank[_balanced_partition(self.y, 1024)] = np.arange(n_rows, dtype=np.int32)
        # the same in squared distances: |y_x - y_c| <= 2 sqrt(spread), and (a - e)^2 >= a^2 - 2ae
        self.abs_slack = 8.0 * self.abs_err * (math.sqrt(spread) + self.abs_err)
        # Catch-up tiles: a tile pair can hold ~40 bytes of temporaries per pair (bound matrix,
        # candidate indices, distances); keep that near 1/4 of the points matrix.
        self.tile = int(min(2048, max(256, math.sqrt(n_rows * d / 40))))
        # A float32 sum of d squared differences (the exact kernel) errs by < (d + 2) * 2**-24.
        self.kernel_rel = 2.0 * (d + 2) * 2.0 ** -24

    def _ball(self, ids: np.ndarray) -> tuple[np.ndarray, float]:
        """Center (q,) float64 and radius of the rows ``ids`` in the projected space, the
        radius widened by the float32 storage error of y (<= 2**-24 |y| per point), so that
        |x - c| >= |mid_x - mid_c| - rad_x - rad_c holds for the unrounded projection."""
        y = self.y[ids]
        mid = y.mean(axis=0, dtype=np.float64)
        rad = math.sqrt(float(((y - mid) ** 2).sum(axis=1, dtype=np.float64).max()))
        rad += 1.01e-7 * math.sqrt(float(self.y_sq[ids].max())) + self.abs_err
        return mid, rad

    def catch_up(self, w: np.ndarray, rows: np.ndarray, center_ids: np.ndarray,
                 vals: np.ndarray) -> None:
        """vals[i] = min(vals[i], min_j |w[rows[i]] - w[center_ids[j]]|^2), exact kernel values.

        rows, center_ids int64; vals (len(rows),) float32 updated in place. A pair is skipped
        only when L * (1 - kernel_rel) > vals[i] for a rigorous lower bound L of the true
        squared distance, so the kernel's own float32 value could not have been smaller.
        """
        tile = self.tile
        keep = 1.0 - self._SLACK
        # Tiles of nearby points and nearby centers let whole tile pairs be skipped at once.
        r_order = np.argsort(self.rank[rows], kind="stable")
        rows_s = rows[r_order]
        vals_s = vals[r_order]
        cen_s = center_ids[np.argsort(self.rank[center_ids], kind="stable")]
        c_tiles = []
        for c0 in range(0, cen_s.size, tile):
            cids = cen_s[c0:c0 + tile]
            yc = self.y[cids]
            # [yc, -|yc|^2 keep / 2, 1] so one GEMM gives yx.yc - half_c - half_x
            aug = np.empty((yc.shape[1] + 2, cids.size), np.float32)
            aug[:-2] = yc.T
            aug[-2] = -0.5 * keep * self.y_sq[cids]
            aug[-1] = 1.0
            c_tiles.append((cids, aug) + self._ball(cids))
        for r0 in range(0, rows_s.size, tile):
            rids = rows_s[r0:r0 + tile]
            v = vals_s[r0:r0 + tile]
            yx = self.y[rids]
            mid_x, rad_x = self._ball(rids)
            v_max = float(v.max())
            lhs = np.empty((rids.size, yx.shape[1] + 2), np.float32)
            lhs[:, :-2] = yx
            lhs[:, -2] = 1.0
            pts = None
            for cids, aug, mid_c, rad_c in c_tiles:
                # Whole tile pair: every |x - c| >= |mid_x - mid_c| - rad_x - rad_c.
                gap = np.sqrt(((mid_x - mid_c) ** 2).sum()) - rad_x - rad_c
                if gap > 0 and gap * gap > 1e-30 \
                        and gap * gap * (1.0 - 1e-6) * (1.0 - self.kernel_rel) > v_max:
                    continue
                # L = |yx|^2 + |yc|^2 - 2 yx.yc - slack (|yx|^2 + |yc|^2); candidate iff
                # L (1 - rel) <= v. v is inflated by the slack too: the GEMM's own rounding
                # also scales with this term.
                v_eff = np.maximum(v, np.float32(1e-30)) * np.float32(keep ** -1 / (1.0 - self.kernel_rel))
                v_eff += np.float32(self.abs_slack)
                lhs[:, -1] = 0.5 * (v_eff - keep * self.y_sq[rids])
                cand = np.flatnonzero(lhs @ aug >= 0)
                if cand.size == 0:
                    continue
                pi, cj = np.divmod(cand, cids.size)
                if pts is None:
                    pts = np.ascontiguousarray(w[rids])
                cen = np.ascontiguousarray(w[cids])
                dist = np.empty(pi.size, np.float32)
                faiss.pairwise_indexed_L2sqr(
                    w.shape[1], pi.size, faiss.swig_ptr(pts), faiss.swig_ptr(pi),
                    faiss.swig_ptr(cen), faiss.swig_ptr(cj), faiss.swig_ptr(dist))
                # pi is sorted: reduce each row's candidates at once
                firsts = np.flatnonzero(np.diff(pi, prepend=-1))
                hit = pi[firsts]
                v[hit] = np.minimum(v[hit], np.minimum.reduceat(dist, firsts))
        vals[r_order] = vals_s


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
    n, _, n_select, start = _check_args(points, n_select, start)
    pool_rows = _default_pool_rows(n) if pool_rows is None else operator.index(pool_rows)
    if pool_rows < 1:
        raise ValueError(f"pool_rows must be positive, got {pool_rows}")
    w = points
    if not (type(points) in (np.ndarray, np.memmap) and points.dtype == np.float32
            and points.flags.c_contiguous and points.shape[1] == _padded_dim(points.shape[1])
            and _all_finite(points)):
        w = _work_copy(points)

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
    bound = _LowDimBound(w, n)
    selected = np.empty(n_select, np.int64)
    selected[0] = start
    # stale[x]: exact minimum over selected[:seen[x]], an upper bound of the true minimum.
    stale = np.empty(n, np.float32)
    _sq_dists(w, np.ascontiguousarray(w[start]), stale)
    stale[start] = _TAKEN
    seen = np.ones(n, np.int32)
    n_centers = 1

    pool = np.empty(0, np.int64)          # sorted indices, so argmax's first hit is the lowest
    pool_vals = np.empty(0, np.float32)   # exact minima of the pool
    pool_w = np.empty((0, w.shape[1]), np.float32)
    outside = np.float32(np.inf)          # max stale minimum outside the pool
    k = min(pool_rows, n)

    with _progress_bar(n_select, progress) as bar:
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
            pool_vals[best] = _TAKEN
            n_centers += 1
            _sq_dists(pool_w, pool_w[best], dist)
            np.minimum(pool_vals, dist, out=pool_vals)
            bar.update(1)
    return selected


# --------------------------------------------------------------------------- convenience


def select_coreset(features, ratio: float, projection_dim: int = 128, seed: int = 0,
                   progress: bool = False, batch_rows: int = 65536) -> np.ndarray:
    """Indices of the PatchCore coreset of ``features``.

    features: (N, D) array or ``np.memmap``, any real dtype; read ``batch_rows`` rows at a time
    and projected with ``RandomProjection(D, projection_dim, seed)`` into one (N, out_dim)
    float32 matrix. The start point is drawn from ``seed``. Selects
    ``max(1, round(ratio * N))`` points with :func:`greedy_k_center`.
    Returns (n_select,) int64 row indices of ``features`` in pick order.
    Raises ConfigError when ratio is not in (0, 1].
    """
    try:
        ratio_f = float(ratio)
    except (TypeError, ValueError):
        raise ConfigError(f"coreset ratio must be a number in (0, 1], got {ratio!r}.") from None
    if isinstance(ratio, bool) or not 0.0 < ratio_f <= 1.0:  # also rejects NaN
        raise ConfigError(f"coreset ratio must be in (0, 1] (a fraction of the patches), got {ratio!r}.")
    if not hasattr(features, "shape") or len(features.shape) != 2 or features.shape[0] < 1:
        raise ValueError("features must be a non-empty 2-D array (N, D)")
    batch_rows = operator.index(batch_rows)
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be positive, got {batch_rows}")
    n, dim = features.shape
    projection = RandomProjection(dim, projection_dim, seed)
    projected = np.empty((n, projection.out_dim), np.float32)
    for a in range(0, n, batch_rows):
        projected[a:a + batch_rows] = projection(features[a:a + batch_rows])
    return select_from_projection(projected, ratio_f, seed, progress)


def select_from_projection(projected: np.ndarray, ratio: float, seed: int = 0, progress: bool = False) -> np.ndarray:
    """The coreset rule on already projected features: what `select_coreset` and training both run.

    projected: (N, d) float32 (e.g. `RandomProjection` output, filled while features are extracted).
    Selects ``max(1, round(ratio * N))`` points by :func:`greedy_k_center` from a start drawn from
    ``seed``. Returns (n_select,) int64 row indices in pick order.
    """
    n = projected.shape[0]
    n_select = min(n, max(1, round(float(ratio) * n)))
    start = int(np.random.default_rng(seed).integers(n))
    return greedy_k_center(projected, n_select, start=start, progress=progress)
