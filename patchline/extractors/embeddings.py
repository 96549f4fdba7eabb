"""Images → patch embeddings, batch by batch: preprocess, backbone features, `embed`.

The extractor is any callable taking (N, 3, S, S) float32 normalized images and returning a dict
layer name → (N, C, h, w) float32 features: the MindSpore backbone for training, the exported
ONNX models in the pipeline. Everything after the extractor is shared.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence, Union

import numpy as np
from tqdm import tqdm

from patchline.core.embed import embed
from patchline.core.preprocess import check_pixels, load_image, preprocess
from patchline.settings import LineSettings

Extractor = Callable[[np.ndarray], Mapping[str, np.ndarray]]
ImageItem = Union[str, Path, np.ndarray]


def as_image(item: ImageItem) -> np.ndarray:
    """A file path or an in-memory image → (H, W) uint8 gray or (H, W, 3) uint8 RGB."""
    if isinstance(item, np.ndarray):
        return check_pixels(item)
    return load_image(item)


def iter_features(
    items: Sequence[ImageItem],
    extractor: Extractor,
    settings: LineSettings,
    progress: str | None = None,
) -> Iterator[tuple[int, Mapping[str, np.ndarray], float]]:
    """Yield (first item index, {layer: (n, C, h, w) float32 backbone features}, CPU seconds the
    batch's preprocessing took) per batch of `settings.batch_size`.

    progress: a tqdm description, or None for no progress bar.
    """
    bar = tqdm(total=len(items), desc=progress, unit="img", disable=progress is None, leave=False)
    try:
        for start in range(0, len(items), settings.batch_size):
            chunk = [as_image(i) for i in items[start : start + settings.batch_size]]
            began = time.process_time()
            batch = np.stack([preprocess(i, settings.resize, settings.imagesize, settings.resize_type) for i in chunk])
            seconds = time.process_time() - began
            yield start, extractor(batch), seconds
            bar.update(len(chunk))
    finally:
        bar.close()


def iter_embeddings(
    items: Sequence[ImageItem],
    extractor: Extractor,
    settings: LineSettings,
    progress: str | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first item index, (n, h, w, D) float32 embeddings) per batch of `settings.batch_size`.

    progress: a tqdm description, or None for no progress bar.
    """
    for start, features, _ in iter_features(items, extractor, settings, progress):
        yield start, embed(features, settings.layers, settings.patchsize, settings.target_dim)
