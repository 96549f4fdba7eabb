"""The fixed Gaussian projection the coreset is selected on."""

from __future__ import annotations

import math
import operator

import numpy as np


class RandomProjection:
    """Fixed Gaussian (Johnson-Lindenstrauss) projection ``R^in_dim -> R^out_dim``.

    The matrix has i.i.d. N(0, 1/out_dim) entries drawn from ``seed``, so squared distances
    are preserved in expectation. Rows are projected independently and the result for a row
    does not depend on how the input is batched, so features can be projected as they are
    extracted: the product is accumulated in float64 and rounded to float32, because BLAS
    kernels pick their blocking (and so their float32 rounding) by matrix shape and CPU.

    When ``in_dim <= out_dim`` there is nothing to gain: the projection is the identity and
    ``out_dim`` becomes ``in_dim`` (features pass through, converted to float32).
    """

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
            self._matrix64 = m.astype(np.float64)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Project ``x`` (n, in_dim), any real dtype, to (n, out_dim) float32."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"expected features of shape (n, {self.in_dim}), got {x.shape}")
        x = x.astype(np.float32, copy=False)
        if self.matrix is None:
            return x
        # float64 rounding differences between kernels stay far below float32's last bit
        return (x.astype(np.float64) @ self._matrix64).astype(np.float32)
