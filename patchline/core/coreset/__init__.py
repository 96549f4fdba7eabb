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

from patchline.core.coreset.greedy import greedy_k_center
from patchline.core.coreset.projection import RandomProjection
from patchline.core.coreset.reference import plain_greedy_k_center
from patchline.core.coreset.select import select_coreset, select_from_projection

__all__ = [
    "RandomProjection",
    "greedy_k_center",
    "plain_greedy_k_center",
    "select_coreset",
    "select_from_projection",
]
