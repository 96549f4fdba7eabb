"""The one embedding path: backbone layer features → patch embeddings.

Training, evaluation and the pipeline's post-process all call `embed`; nothing else turns
layer features into the vectors a bank stores or is queried with.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np


def local_average(features: np.ndarray, patchsize: int) -> np.ndarray:
    """Mean over each position's patchsize × patchsize neighbourhood, zero-padded at the border.

    features: (N, C, H, W) float32. Returns (N, C, H, W) float32. patchsize 1 returns the input.
    Zero padding with a fixed divisor matches PatchCore's unfold-and-average, so border patches
    are damped exactly as in the reference method.
    """
    if patchsize == 1:
        return features
    pad = (patchsize - 1) // 2
    n, c, h, w = features.shape
    padded = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=np.float32)
    padded[:, :, pad : pad + h, pad : pad + w] = features
    # Separable box sum: rows then columns, each a sum of `patchsize` shifted views.
    rows = padded[:, :, 0:h, :].copy()
    for dy in range(1, patchsize):
        rows += padded[:, :, dy : dy + h, :]
    out = rows[:, :, :, 0:w].copy()
    for dx in range(1, patchsize):
        out += rows[:, :, :, dx : dx + w]
    out *= np.float32(1.0 / (patchsize * patchsize))
    return out


@lru_cache(maxsize=32)
def _bilinear_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) float32 weights of 1-D bilinear resampling with half-pixel centres (align_corners=False)."""
    matrix = np.zeros((dst, src), dtype=np.float32)
    scale = src / dst
    for i in range(dst):
        x = max((i + 0.5) * scale - 0.5, 0.0)
        x0 = min(int(np.floor(x)), src - 1)
        x1 = min(x0 + 1, src - 1)
        frac = x - x0
        matrix[i, x0] += 1.0 - frac
        matrix[i, x1] += frac
    return matrix


def bilinear_resize(features: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (N, C, H, W) float32 to (N, C, size[0], size[1]), align_corners=False."""
    n, c, h, w = features.shape
    if (h, w) == tuple(size):
        return features
    ry = _bilinear_matrix(h, size[0])
    rx = _bilinear_matrix(w, size[1])
    out = np.matmul(features.reshape(n * c, h, w), rx.T)  # (NC, H, W')
    out = np.matmul(ry, out)  # (NC, H', W')
    return out.reshape(n, c, size[0], size[1])


@lru_cache(maxsize=32)
def _channel_pool_matrix(channels: int, dim: int) -> np.ndarray:
    """(channels, dim) float32 averaging matrix of 1-D adaptive average pooling."""
    matrix = np.zeros((channels, dim), dtype=np.float32)
    for j in range(dim):
        start = (j * channels) // dim
        end = -((-(j + 1) * channels) // dim)
        matrix[start:end, j] = 1.0 / (end - start)
    return matrix


def reduce_channels(embeddings: np.ndarray, dim: int) -> np.ndarray:
    """Adaptive average pooling of the last axis: (..., C) float32 → (..., dim) float32."""
    channels = embeddings.shape[-1]
    if dim == channels:
        return embeddings
    if dim > channels:
        raise ValueError(f"target dim {dim} is larger than the {channels} feature channels")
    return embeddings @ _channel_pool_matrix(channels, dim)


def embed(
    features: Mapping[str, np.ndarray],
    layers: Sequence[str],
    patchsize: int = 3,
    target_dim: int | None = None,
) -> np.ndarray:
    """Turn layer features into patch embeddings on the first layer's grid.

    features: layer name → (N, C_l, H_l, W_l) float32 (e.g. "layer2" at stride 8, "layer3" at 16).
    layers: which layers to use, in order; the first one's grid is the patch grid.
    Returns (N, H, W, D) float32 C-contiguous, D = sum(C_l) or target_dim when given.
    """
    grid = features[layers[0]].shape[2:]
    parts = []
    for layer in layers:
        x = np.asarray(features[layer], dtype=np.float32)
        x = local_average(x, patchsize)
        parts.append(bilinear_resize(x, grid))
    stacked = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    patches = np.ascontiguousarray(stacked.transpose(0, 2, 3, 1))
    if target_dim is not None:
        patches = np.ascontiguousarray(reduce_channels(patches, target_dim))
    return patches


def embedding_dim(layer_channels: Mapping[str, int], layers: Sequence[str], target_dim: int | None) -> int:
    """The D that `embed` produces for these layers' channel counts."""
    return target_dim if target_dim is not None else sum(layer_channels[layer] for layer in layers)
