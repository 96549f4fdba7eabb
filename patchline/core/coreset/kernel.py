"""The one per-point distance kernel both greedy functions use, and the shared argument checks."""

from __future__ import annotations

import operator
import sys

import faiss
import numpy as np
from tqdm import tqdm

# faiss has special multi-row kernels for a few tiny dimensions (2, 4, 8, ...) whose per-row
# rounding depends on the row's position in the call; zero columns up to this width keep
# every dimension on the per-row generic kernel (zeros add exactly nothing).
MIN_DIM = 16
# Rows per call of the distance kernel: keeps the scratch buffer small.
KERNEL_ROWS = 65536
# Mark for selected points: below any squared distance, so np.minimum never
# raises it and argmax never picks it again.
TAKEN = np.float32(-1.0)



def sq_dists(rows: np.ndarray, c: np.ndarray, out: np.ndarray) -> None:
    """out[i] = sum((rows[i] - c)**2), float32; rows (k, d) and c (d,) C-contiguous."""
    k, d = rows.shape
    if k:
        faiss.fvec_L2sqr_ny(faiss.swig_ptr(out), faiss.swig_ptr(c), faiss.swig_ptr(rows), d, k)


def padded_dim(d: int) -> int:
    return max(d, MIN_DIM)


def check_args(points, n_select, start) -> tuple[int, int, int, int]:
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


def work_copy(points) -> np.ndarray:
    """float32 (N, padded d) C-contiguous copy of ``points``, zero columns beyond d.

    Copies in chunks so a memmap or non-float32 input is never converted whole.
    Raises ValueError on non-finite values (they would break the argmax).
    """
    n, d = points.shape
    w = np.zeros((n, padded_dim(d)), np.float32)
    for a in range(0, n, KERNEL_ROWS):
        b = min(n, a + KERNEL_ROWS)
        chunk = points[a:b]
        chunk = np.asarray(chunk, dtype=np.float32)
        if not all_finite(chunk):
            raise ValueError("points contain NaN or infinite values")
        w[a:b, :d] = chunk
    return w


def all_finite(points: np.ndarray) -> bool:
    return all(np.isfinite(points[a:a + KERNEL_ROWS]).all()
               for a in range(0, points.shape[0], KERNEL_ROWS))


def progress_bar(total: int, enabled: bool):
    return tqdm(total=total, disable=not enabled, file=sys.stderr, desc="coreset",
                unit="pt", mininterval=0.5, dynamic_ncols=True)
