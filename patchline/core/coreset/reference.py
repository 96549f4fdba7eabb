"""Reference greedy k-center: the plain rule the fast path must reproduce index for index."""

from __future__ import annotations

import numpy as np

from patchline.core.coreset.kernel import TAKEN, check_args, progress_bar, sq_dists, work_copy


def plain_greedy_k_center(points: np.ndarray, n_select: int, start: int = 0,
                          progress: bool = False) -> np.ndarray:
    """Reference greedy k-center: each step measures the new center against every point.

    points: (N, d) float32 (other real dtypes are converted). Selects ``start`` first, then
    repeatedly the point farthest (squared L2) from the selected set, lowest index on ties;
    selected points are never picked twice. Returns (n_select,) int64 indices in pick order.
    O(N * d) work per step; see :func:`greedy_k_center` for the fast, identical version.
    """
    n, _, n_select, start = check_args(points, n_select, start)
    w = work_copy(points)
    selected = np.empty(n_select, np.int64)
    mind = np.empty(n, np.float32)
    dist = np.empty(n, np.float32)
    selected[0] = start
    sq_dists(w, w[start], mind)
    mind[start] = TAKEN
    with progress_bar(n_select, progress) as bar:
        bar.update(1)
        for step in range(1, n_select):
            j = int(np.argmax(mind))
            selected[step] = j
            mind[j] = TAKEN
            sq_dists(w, w[j], dist)
            np.minimum(mind, dist, out=mind)
            bar.update(1)
    return selected
