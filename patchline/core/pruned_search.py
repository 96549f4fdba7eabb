"""Fast bank search whose image scores stay exact: an IVF index for every patch, exact search
for the patches that decide the image score.

An inverted-file index (faiss IndexIVFFlat) finds, for each query patch, the nearest bank patch
among the `nprobe` closest clusters. That patch is a real bank patch, so its distance is an
upper bound of the exact nearest-patch distance. `max` and `topk<N>` depend only on the largest
patch scores; so the queries with the largest upper bounds are searched exactly, in growing
rounds, until the N-th largest exact score is at least every remaining upper bound: then no
other patch can enter the top N and the image score equals exact search's (up to float
rounding). The other patches keep their upper bounds (they only shape the anomaly map of a
defect). `mean` and `var` depend on every patch, so they are searched exactly throughout.
"""

from __future__ import annotations

import math
import re

import faiss
import numpy as np

from patchline.core.scoring import patch_scores_from_distances
from patchline.core.search import NearestPatchSearch

_TOPK = re.compile(r"^topk([1-9][0-9]*)$")
FIRST_ROUND_EXTRA = 8  # exact queries beyond N in the first round; each later round doubles


def default_nlist(n_patches: int) -> int:
    """Clusters for a bank of `n_patches`: about 4·√n, with at least 39 training points each."""
    return max(1, min(n_patches // 39, int(round(4 * math.sqrt(n_patches)))))


def build_ivf(vectors: np.ndarray, nlist: int, seed: int = 0) -> faiss.Index:
    """Train an IndexIVFFlat (L2) with `nlist` clusters on the (M, D) float32 bank and add it."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(vectors.shape[1]), vectors.shape[1], nlist, faiss.METRIC_L2)
    index.cp.seed = seed
    index.train(vectors)
    index.add(vectors)
    return index


def decisive_count(aggregation: str | None, n_patches: int) -> int | None:
    """How many of the largest patch scores decide `aggregation` (max: 1, topk<N>: N), or None
    when every patch does (mean, var, or no aggregation given)."""
    if aggregation == "max":
        return 1
    match = _TOPK.match(aggregation or "")
    return min(int(match.group(1)), n_patches) if match else None


class PrunedPatchSearch:
    """Patch scores with exact image scores for max / topk<N>, from an IVF index plus exact rounds."""

    def __init__(self, exact: NearestPatchSearch, ivf: faiss.Index, nprobe: int):
        """exact: the bank's exact search; ivf: an IndexIVFFlat over the same vectors (same order)."""
        if ivf.ntotal != len(exact.vectors) or ivf.d != exact.dim:
            raise ValueError(f"the IVF index holds {ivf.ntotal} × {ivf.d} vectors, the bank "
                             f"{len(exact.vectors)} × {exact.dim}")
        self.exact = exact
        self.ivf = ivf
        self.nprobe = int(nprobe)
        faiss.extract_index_ivf(ivf).nprobe = self.nprobe
        self.dim = exact.dim
        self.exact_queries = 0  # queries searched exactly so far (for benchmarks)

    def upper_bounds(self, queries: np.ndarray) -> np.ndarray:
        """(n, D) float32 queries → (n,) float32 squared distances to the IVF's nearest patch
        (≥ the exact nearest distance; inf where the probed clusters were empty)."""
        _, found = self.ivf.search(queries, 1)
        found = found[:, 0]
        bounds = np.full(len(queries), np.inf, dtype=np.float32)
        hit = found >= 0
        # recomputed as the exact search computes its final distances, so bound ≥ exact holds
        diff = queries[hit] - self.exact.vectors[found[hit]]
        bounds[hit] = np.einsum("ij,ij->i", diff, diff)
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
            dist[take] = self.exact.squared_distances(queries[take])[:, 0]
            self.exact_queries += len(take)
            done += len(take)
            if done >= len(order):
                break
            refined = dist[order[:done]]
            kth = np.partition(refined, len(refined) - decisive)[len(refined) - decisive]
            if kth >= dist[order[done]]:  # every other patch is bounded below the top `decisive`
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
