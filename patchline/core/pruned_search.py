"""Fast bank search whose image scores stay exact: a graph index for every patch, exact search
for the patches that decide the image score.

A navigable small-world graph (faiss IndexHNSWFlat over the bank patches projected by their
PCA) finds, for each query patch, a near bank patch, visiting `ef_search` candidates. That patch
is a real bank patch, so its distance is an upper bound of the exact nearest-patch distance.
`max` and `topk<N>` depend only on the largest patch scores; so the queries with the largest
upper bounds are searched exactly, in growing rounds, until the N-th largest exact score is at
least every remaining upper bound: then no other patch can enter the top N and the image score
equals exact search's (up to float rounding). The other patches keep their upper bounds (they
only shape the anomaly map of a defect). `mean` and `var` depend on every patch, so they are
searched exactly throughout.
"""

from __future__ import annotations

import faiss
import numpy as np

from patchline.core.scoring import patch_scores_from_distances, topk_size
from patchline.core.search import NearestPatchSearch

FIRST_ROUND_EXTRA = 4      # exact queries beyond N in the first round; each later round doubles
LOW_DIM = 64               # dims of the PCA lower bound that prunes the exact search
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


class PrunedPatchSearch:
    """Patch scores with exact image scores for max / topk<N>, from a graph index plus exact rounds."""

    def __init__(self, exact: NearestPatchSearch, index: faiss.Index, ef_search: int):
        """exact: the bank's exact search; index: build_hnsw's index over the same vectors (same order)."""
        if index.ntotal != len(exact.vectors) or index.d != exact.dim:
            raise ValueError(f"the graph index holds {index.ntotal} × {index.d} vectors, the bank "
                             f"{len(exact.vectors)} × {exact.dim}")
        self.exact = exact
        self.index = index  # owns the graph below: keep it alive
        self.mean, self.basis, self.graph = _projection(index)
        self.ef_search = int(ef_search)
        self.graph.hnsw.efSearch = self.ef_search
        self.refine = LowDimExactSearch(exact.vectors, self.mean, self.basis)
        self.dim = exact.dim
        self.exact_queries = 0  # queries searched exactly so far (for benchmarks)

    def upper_bounds(self, queries: np.ndarray) -> np.ndarray:
        """(n, D) float32 queries → (n,) float32 squared distances to the patch the graph finds
        nearest in the projected space, measured in full (≥ the exact nearest distance)."""
        _, found = self.graph.search(np.ascontiguousarray((queries - self.mean) @ self.basis), 1)
        found = found[:, 0]
        bounds = np.full(len(queries), np.inf, dtype=np.float32)
        hit = found >= 0
        bounds[hit] = self.exact.distances_to(queries[hit], found[hit])
        return bounds

    def squared_distances(self, queries: np.ndarray, decisive: int | None) -> np.ndarray:
        """(n, D) float32 queries of one image → (n, 1) float32 squared distances whose
        `decisive` largest values are exact (all exact when decisive is None)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if decisive is None:
            self.exact_queries += len(queries)
            return self.exact.squared_distances(queries)
        dist = self.upper_bounds(queries)
        order = np.argsort(-dist, kind="stable")
        done, batch = 0, decisive + FIRST_ROUND_EXTRA
        while done < len(order):
            take = order[done : done + batch]
            upper = np.where(np.isfinite(dist[take]), dist[take] * (1 + ROUNDING), np.float32(np.inf))
            dist[take] = self.refine.squared_distances(queries[take], upper)
            self.exact_queries += len(take)
            done += len(take)
            if done >= len(order):
                break
            refined = dist[order[:done]]
            kth = np.partition(refined, len(refined) - decisive)[len(refined) - decisive]
            if kth >= dist[order[done]] * (1 + ROUNDING):  # no other patch can reach the top `decisive`
                break
            batch *= 2
        return dist[:, None]

    def patch_scores(self, embeddings: np.ndarray, aggregation: str | None = None) -> np.ndarray:
        """(N, H, W, D) float32 embeddings → (N, H, W) float32 patch scores; for `aggregation`
        max / topk<N> each image's score from them equals exact search's, other patches are
        upper bounds; exact everywhere for mean / var / None."""
        n, h, w, d = embeddings.shape
        flat = embeddings.reshape(n, h * w, d)
        decisive = decisive_count(aggregation, h * w)
        squared = np.concatenate([self.squared_distances(flat[i], decisive) for i in range(n)])
        return patch_scores_from_distances(squared, (h, w))
