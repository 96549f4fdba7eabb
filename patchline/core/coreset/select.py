"""The coreset entry training and the tests both call: ratio → indices."""

from __future__ import annotations

import operator

import numpy as np

from patchline.core.coreset.greedy import greedy_k_center
from patchline.core.coreset.projection import RandomProjection
from patchline.errors import ConfigError


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
