"""Fast bank search whose image scores stay exact: cheap upper bounds for every patch, dearer
ones only where they could change the image score, exact search for the patches that decide it.

The distance from a query patch to *any* bank patch is an upper bound of its exact nearest-patch
distance. `max` and `topk<N>` depend only on the N largest patch scores, so a patch needs an
exact score only when it is among them, and a tight bound only when its bound is above the N-th
largest exact score. Each patch climbs a ladder of tiers, each dearer and tighter than the last,
only as far as that rule asks:

0. coarse: a graph search for every `GRID_STRIDE`-th patch of the grid (rows and columns); every
   patch is then measured against the bank patches those searches found (neighbouring patches
   have near neighbours: one small matrix product);
1. graph: its own search in the navigable small-world graph (faiss IndexHNSWFlat over the bank's
   PCA projection, `ef_search` candidates visited), the `CANDIDATES` best re-measured in full;
2. tight: the same with `TIGHT_EF` candidates visited, `TIGHT_CANDIDATES` re-measured;
3. exact: every bank patch its PCA lower bound cannot rule out (LowDimExactSearch).

The top N patches by bound climb until they are exact; then every patch whose bound is still
above the N-th largest exact score climbs one tier, until none is. No other patch can then enter
the top N, so the image score equals exact search's (up to float rounding). The other patches
keep their bounds; on a defect's frame every patch whose bound reaches MAP_FLOOR × the pixel
threshold is searched at least through the graph, so its anomaly map (and the region cut from it
at the pixel threshold) is drawn from graph bounds. `mean` and `var` depend on every patch, so they are
searched exactly throughout.
"""

from __future__ import annotations

import faiss
import numpy as np

from patchline.core.scoring import aggregate, is_defect, patch_scores_from_distances, topk_size
from patchline.core.search import NearestPatchSearch

LOW_DIM = 64               # dims of the PCA lower bound that prunes the exact search
GRID_STRIDE = 2            # coarse tier: every 2nd patch of each row and column is searched in the graph
CANDIDATES = 4             # graph tier: nearest graph results re-measured in full dims (PCA order ≠ full order)
TIGHT_EF = 64              # tight tier: candidates visited
TIGHT_CANDIDATES = 8       # tight tier: results re-measured in full dims
CLIMB_WIDTH = 8            # the next patches by bound climb beside the top ones (not into the exact tier)
COARSE_CLIMB_WIDTH = 32    # … and this many more, if still coarse, into the graph tier (a graph query is cheap,
                           # a round of the ladder is not: on ELPV mono's 34,574 × 152 bank a good cell took
                           # 19 rounds with 8, 8 with 32)
MAP_FLOOR = 0.5            # of the pixel threshold: a defect frame's patches bounded below it keep coarse bounds
HNSW_M = 8                 # graph links per vector
HNSW_EF_CONSTRUCTION = 40  # candidates while linking (build time only)
ROUNDING = 1e-5            # relative slack between faiss's and numpy's float32 distances


def build_hnsw(vectors: np.ndarray) -> faiss.Index:
    """The bank's search index: its PCA to LOW_DIM dims (orthonormal, so projected distances are
    lower bounds) followed by an IndexHNSWFlat (HNSW_M links) over the projected patches, in the
    bank's order. One faiss file holds both."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    d = vectors.shape[1]
    pca = faiss.PCAMatrix(d, min(LOW_DIM, d))
    pca.train(vectors)
    graph = faiss.IndexHNSWFlat(pca.d_out, HNSW_M)
    graph.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index = faiss.IndexPreTransform(pca, graph)
    index.add(vectors)
    return index


def _projection(index: faiss.Index) -> tuple[np.ndarray, np.ndarray, faiss.IndexHNSW]:
    """(mean (D,), basis (D, q), graph) of an index made by build_hnsw: projected = (x − mean) @ basis.
    The graph belongs to `index`: keep `index` alive while the graph is used."""
    pre = faiss.downcast_index(index)
    pca = faiss.downcast_VectorTransform(pre.chain.at(0))
    basis = faiss.vector_to_array(pca.A).reshape(pca.d_out, pca.d_in).T.astype(np.float32)
    return faiss.vector_to_array(pca.mean).astype(np.float32), np.ascontiguousarray(basis), faiss.downcast_index(pre.index)


def decisive_count(aggregation: str | None, n_patches: int) -> int | None:
    """How many of the largest patch scores decide `aggregation` (max: 1, topk<N>: N), or None
    when every patch does (mean, var, or no aggregation given)."""
    if aggregation == "max":
        return 1
    size = topk_size(aggregation)
    return min(size, n_patches) if size else None


class LowDimExactSearch:
    """Exact nearest distances for a few queries, measuring only the bank patches a PCA lower
    bound cannot rule out.

    For the orthonormal PCA basis P, |P(q − b)| ≤ |q − b|: a patch whose projected distance
    already exceeds a known upper bound of the query's nearest distance cannot be the nearest.
    The survivors are measured directly; the nearest patch always survives (margins cover float
    rounding), so the result is exact. The basis is the search index's PCA (fitted on the bank at
    training); its quality only changes speed.
    """

    def __init__(self, vectors: np.ndarray, mean: np.ndarray, basis: np.ndarray):
        """vectors: (M, D) float32 bank patches; mean (D,) and orthonormal basis (D, q) of the PCA."""
        self.vectors = vectors
        self.mean = mean
        self.basis = basis
        self.projected = np.ascontiguousarray((vectors - mean) @ basis)  # (M, q): tall × small is BLAS's fast shape
        self.projected_norms = np.einsum("ij,ij->i", self.projected, self.projected)
        self.max_norm = float(self.projected_norms.max())

    def squared_distances(self, queries: np.ndarray, upper: np.ndarray) -> np.ndarray:
        """(n, D) float32 queries and (n,) upper bounds of their nearest squared distances →
        (n,) float32 exact nearest squared distances."""
        pq = (queries - self.mean) @ self.basis
        pq_norms = np.einsum("ij,ij->i", pq, pq)
        lower = self.projected @ pq.T  # (M, n): projected squared distances, up to the ||pq||² term
        lower *= -2.0
        lower += self.projected_norms[:, None]
        # expansion rounding: relative to the squared norms involved; 1e-4 is ~100x float32 error
        limit = upper - pq_norms + 1e-4 * (pq_norms + self.max_norm) + 1e-6
        rows, cols = np.nonzero(lower <= limit)  # every (patch, query) pair the bound keeps
        diff = self.vectors[rows] - queries[cols]
        out = np.full(len(queries), np.inf, dtype=np.float32)
        np.minimum.at(out, cols, np.einsum("ij,ij->i", diff, diff))
        return out


COARSE, GRAPH, TIGHT, EXACT = 0, 1, 2, 3


class PrunedPatchSearch:
    """Patch scores with exact image scores for max / topk<N>, from the tier ladder above."""

    def __init__(self, exact: NearestPatchSearch, index: faiss.Index, ef_search: int):
        """exact: the bank's exact search; index: build_hnsw's index over the same vectors (same order);
        ef_search: candidates the graph tier visits per query."""
        if index.ntotal != len(exact.vectors) or index.d != exact.dim:
            raise ValueError(f"the graph index holds {index.ntotal} × {index.d} vectors, the bank "
                             f"{len(exact.vectors)} × {exact.dim}")
        self.exact = exact
        self.index = index  # owns the graph below: keep it alive
        self.mean, self.basis, self.graph = _projection(index)
        self.ef_search = int(ef_search)
        self.refine = LowDimExactSearch(exact.vectors, self.mean, self.basis)
        self.dim = exact.dim
        self.exact_queries = 0  # queries searched exactly so far (for benchmarks)
        self.graph_queries = 0  # queries searched through the graph so far (for benchmarks)

    def graph_bounds(self, queries: np.ndarray, ef: int | None = None, candidates: int = CANDIDATES
                     ) -> tuple[np.ndarray, np.ndarray]:
        """(n, D) float32 queries → ((n,) float32 squared distances, (n,) int64 bank rows) of the
        nearest of the `candidates` patches the graph finds visiting `ef` (default ef_search)
        candidates, measured in full: each distance ≥ the exact nearest distance."""
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(int(ef or self.ef_search), candidates)
        projected = np.ascontiguousarray((queries - self.mean) @ self.basis)
        _, found = self.graph.search(projected, candidates, params=params)
        missing = found[:, 0] < 0  # the graph found nothing (only an empty bank): no bound
        found = np.maximum(np.where(found < 0, found[:, :1], found), 0)  # fewer results: repeat the first
        self.graph_queries += len(queries)
        diff = queries[:, None, :] - self.exact.vectors[found]
        squared = np.einsum("ijk,ijk->ij", diff, diff)
        best = squared.argmin(axis=1)
        rows = np.arange(len(queries))
        dist, nearest = squared[rows, best], found[rows, best]
        dist[missing] = np.inf
        return dist, nearest

    def upper_bounds(self, queries: np.ndarray) -> np.ndarray:
        """(n, D) float32 queries → (n,) float32 graph-tier squared distances (≥ exact)."""
        return self.graph_bounds(np.ascontiguousarray(queries, dtype=np.float32))[0]

    def _coarse(self, queries: np.ndarray, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Tier 0 for one image's (H*W, D) queries: (squared bounds, tiers)."""
        h, w = grid
        s = GRID_STRIDE
        tiers = np.full(h * w, COARSE, dtype=np.int8)
        if s <= 1 or h * w <= 4 * s * s:
            dist, _ = self.graph_bounds(queries)
            tiers[:] = GRAPH
            return dist, tiers
        rows = (np.arange(s // 2, h, s)[:, None] * w + np.arange(s // 2, w, s)[None, :]).ravel()
        dist_rows, found = self.graph_bounds(queries[rows])
        # every patch against the few bank patches those searches found
        dist = NearestPatchSearch(self.exact.vectors[np.unique(found)]).squared_distances(queries)[:, 0]
        dist[rows] = np.minimum(dist[rows], dist_rows)
        tiers[rows] = GRAPH
        return dist, tiers

    def _climb(self, queries: np.ndarray, dist: np.ndarray, tiers: np.ndarray, which: np.ndarray) -> None:
        """Move the patches `which` one tier up (grouped by tier), tightening their bounds in place."""
        groups = [(tier, which[tiers[which] == tier]) for tier in (COARSE, GRAPH, TIGHT)]  # before any climbs
        for tier, rows in groups:
            if not len(rows):
                continue
            if tier == COARSE:
                tighter, _ = self.graph_bounds(queries[rows])
            elif tier == GRAPH:
                tighter, _ = self.graph_bounds(queries[rows], TIGHT_EF, TIGHT_CANDIDATES)
            else:
                tighter = self.refine.squared_distances(queries[rows], dist[rows] * (1 + ROUNDING))
                self.exact_queries += len(rows)
            dist[rows] = np.minimum(dist[rows], tighter)
            tiers[rows] = tier + 1

    def squared_distances(self, queries: np.ndarray, aggregation: str | None, grid: tuple[int, int],
                          threshold: float | None = None, map_floor: float = 0.0) -> np.ndarray:
        """(H*W, D) float32 queries of one image on its (H, W) patch grid → (H*W, 1) float32 squared
        distances whose `aggregation` equals exact search's (all exact for mean / var / None).

        threshold: the line's image threshold; when the image score exceeds it, every patch whose
        score may reach `map_floor` is searched at least through the graph (its anomaly map is drawn)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        decisive = decisive_count(aggregation, len(queries))
        if decisive is None:
            self.exact_queries += len(queries)
            return self.exact.squared_distances(queries)
        dist, tiers = self._coarse(queries, grid)
        while True:
            top = np.argpartition(-dist, decisive - 1)[:decisive] if decisive < len(dist) else np.arange(len(dist))
            if (tiers[top] == EXACT).all():
                kth = dist[top].min()
                # a patch could still enter the top `decisive` only if its bound reaches the N-th exact score
                rising = np.nonzero((tiers < EXACT) & (dist * (1 + ROUNDING) >= kth))[0]
                if not len(rising):
                    break
            else:
                # the top climb, and with them the next CLIMB_WIDTH by bound, short of the exact tier:
                # patches of similar bounds then climb in one call, not one call each (measured:
                # 34 → 7 calls per frame on a 1,960 × 512 bank, 1.3× faster, same exact queries)
                k = min(len(dist), decisive + CLIMB_WIDTH + COARSE_CLIMB_WIDTH)
                near = np.argpartition(-dist, k - 1)[:k] if k < len(dist) else np.arange(len(dist))
                near = near[np.argsort(-dist[near])]
                width = decisive + CLIMB_WIDTH
                rising = np.union1d(np.union1d(top[tiers[top] < EXACT], near[:width][tiers[near[:width]] < TIGHT]),
                                    near[width:][tiers[near[width:]] == COARSE])
            self._climb(queries, dist, tiers, rising)
        if threshold is not None and is_defect(
                aggregate(patch_scores_from_distances(dist[:, None], grid), aggregation)[0], threshold):
            self._climb(queries, dist, tiers, np.nonzero((tiers == COARSE) & (dist >= np.float32(map_floor) ** 2))[0])
        return dist[:, None]

    def patch_scores(self, embeddings: np.ndarray, aggregation: str | None = None,
                     threshold: float | None = None, map_floor: float = 0.0) -> np.ndarray:
        """(N, H, W, D) float32 embeddings → (N, H, W) float32 patch scores; for `aggregation`
        max / topk<N> each image's score from them equals exact search's, other patches are
        upper bounds; exact everywhere for mean / var / None. threshold, map_floor: see squared_distances."""
        n, h, w, d = embeddings.shape
        flat = embeddings.reshape(n, h * w, d)
        squared = np.concatenate([self.squared_distances(flat[i], aggregation, (h, w), threshold, map_floor)
                                  for i in range(n)])
        return patch_scores_from_distances(squared, (h, w))

