"""How a bank is searched for one batch of frames: the policy, apart from how the bank is stored.

Exact nearest-patch search (search.py) when nothing says which image score is wanted, or the bank
has no graph index. With an aggregation and a graph index, the pruned ladder (pruned_search.py):
the aggregation's image score equals exact search's, the other patches keep upper bounds — graph
bounds at least, on images scoring above the threshold, wherever they may reach MAP_FLOOR × the
pixel threshold (those frames' anomaly maps are drawn).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from patchline.core.pruned_search import MAP_FLOOR, PrunedPatchSearch
from patchline.core.search import NearestPatchSearch


@dataclass(frozen=True)
class BankSearch:
    """The searches a bank offers (exact always, pruned with a graph index) and the choice between them."""

    exact: NearestPatchSearch
    pruned: PrunedPatchSearch | None = None

    def patch_scores(self, embeddings: np.ndarray, aggregation: str | None = None,
                     threshold: float | None = None, pixel_threshold: float | None = None) -> np.ndarray:
        """(N, H, W, D) float32 embeddings → (N, H, W) float32 distances to the nearest bank patch
        (exact, or bounds that keep `aggregation`'s image score exact; see the module doc)."""
        if aggregation is not None and self.pruned is not None:
            floor = MAP_FLOOR * pixel_threshold if pixel_threshold is not None else 0.0
            return self.pruned.patch_scores(embeddings, aggregation, threshold, floor)
        return self.exact.patch_scores(embeddings)
