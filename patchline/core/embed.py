"""The one embedding path: backbone layer features → patch embeddings.

Training, evaluation and the pipeline's post-process all call `embed`; nothing else turns
layer features into the vectors a bank stores or is queried with.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Mapping, Sequence

import cv2
import numpy as np

from patchline.errors import ConfigError


CV_CHANNELS = 512  # OpenCV filters take at most 512 channels per image


def _box_mean_hwc(x: np.ndarray, patchsize: int) -> np.ndarray:
    """(H, W, C ≤ 512) float32 C-contiguous → its patchsize × patchsize neighbourhood mean,
    zero-padded, fixed divisor (OpenCV's box sum, then one scale)."""
    if patchsize == 1:
        return x
    summed = cv2.boxFilter(x, -1, (patchsize, patchsize), normalize=False, borderType=cv2.BORDER_CONSTANT)
    summed = summed.reshape(x.shape)
    summed *= np.float32(1.0 / (patchsize * patchsize))
    return summed


def _resize_hwc(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, C ≤ 512) float32 C-contiguous → (size[0], size[1], C) bilinear, half-pixel centres
    (align_corners=False)."""
    if x.shape[:2] == tuple(size):
        return x
    return cv2.resize(x, (size[1], size[0]), interpolation=cv2.INTER_LINEAR).reshape(size[0], size[1], x.shape[2])


def _layer_patches(features: np.ndarray, patchsize: int, grid: tuple[int, int], out: np.ndarray) -> None:
    """One image's (C, H, W) layer features → local means on the grid, written into out (gh, gw, C).

    Works on ≤ 512-channel slices (OpenCV's limit), each transposed once to channels-last and
    filtered without further temporaries: on these VMs fresh megabyte buffers cost more in page
    faults than the filtering itself (measured on one thread, wide_resnet's 512 + 1024 channels:
    8.0 ms with numpy shifts and matrix products, 5.8 with OpenCV and scratch buffers, 1.4 so)."""
    for s in range(0, features.shape[0], CV_CHANNELS):
        x = np.ascontiguousarray(features[s : s + CV_CHANNELS].transpose(1, 2, 0), dtype=np.float32)
        out[:, :, s : s + x.shape[2]] = _resize_hwc(_box_mean_hwc(x, patchsize), grid)


def local_average(features: np.ndarray, patchsize: int) -> np.ndarray:
    """Mean over each position's patchsize × patchsize neighbourhood, zero-padded at the border.

    features: (N, C, H, W) float32. Returns (N, C, H, W) float32. patchsize 1 returns the input.
    Zero padding with a fixed divisor matches PatchCore's unfold-and-average, so border patches
    are damped exactly as in the reference method.
    """
    if patchsize == 1:
        return features
    n, c, h, w = features.shape
    out = np.empty((n, h, w, c), dtype=np.float32)
    for i in range(n):
        _layer_patches(features[i], patchsize, (h, w), out[i])
    return out.transpose(0, 3, 1, 2)


def bilinear_resize(features: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (N, C, H, W) float32 to (N, C, size[0], size[1]), align_corners=False."""
    n, c, h, w = features.shape
    if (h, w) == tuple(size):
        return features
    out = np.empty((n, size[0], size[1], c), dtype=np.float32)
    for i in range(n):
        _layer_patches(features[i], 1, tuple(size), out[i])
    return out.transpose(0, 3, 1, 2)


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
        raise ConfigError(f"target_dim {dim} is larger than the {channels} channels of the chosen layers; "
                          f"use at most {channels}, or leave target_dim unset.")
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
    grid = tuple(features[layers[0]].shape[2:])
    dims = [features[layer].shape[1] for layer in layers]
    n = features[layers[0]].shape[0]
    patches = np.empty((n, grid[0], grid[1], sum(dims)), dtype=np.float32)
    for i in range(n):  # channels-last from the start: the layout OpenCV filters and the bank want
        start = 0
        for layer, channels in zip(layers, dims):
            _layer_patches(features[layer][i], patchsize, grid, patches[i, :, :, start : start + channels])
            start += channels
    if target_dim is not None:
        patches = np.ascontiguousarray(reduce_channels(patches, target_dim))
    return patches


def embedding_dim(layer_channels: Mapping[str, int], layers: Sequence[str], target_dim: int | None) -> int:
    """The D that `embed` produces for these layers' channel counts."""
    return target_dim if target_dim is not None else sum(layer_channels[layer] for layer in layers)
