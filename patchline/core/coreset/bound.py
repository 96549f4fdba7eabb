"""PCA lower bounds that let the fast greedy skip pairs which cannot lower a minimum."""

from __future__ import annotations

import math

import faiss
import numpy as np


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


class LowDimBound:
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

    def _center_tiles(self, cen_s: np.ndarray, keep: float) -> list[tuple]:
        """(center ids, augmented matrix, ball middle, ball radius) per tile of rank-sorted centers:
        [yc, -|yc|^2 keep / 2, 1] so that one GEMM gives yx.yc - half_c - half_x."""
        tiles = []
        for c0 in range(0, cen_s.size, self.tile):
            cids = cen_s[c0:c0 + self.tile]
            yc = self.y[cids]
            aug = np.empty((yc.shape[1] + 2, cids.size), np.float32)
            aug[:-2] = yc.T
            aug[-2] = -0.5 * keep * self.y_sq[cids]
            aug[-1] = 1.0
            tiles.append((cids, aug) + self._ball(cids))
        return tiles

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
        c_tiles = self._center_tiles(center_ids[np.argsort(self.rank[center_ids], kind="stable")], keep)
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
