"""The symmetries a line may declare: flips and turns that leave a good part good.

A solar cell flipped left to right is still a good cell; a bank that also holds the patches of its
training images' symmetric copies knows more of what good looks like without more images. Only
square-preserving operations are offered, so a copy has the shape of its original.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

SYMMETRIES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "hflip": lambda image: image[:, ::-1],
    "vflip": lambda image: image[::-1],
    "rot180": lambda image: image[::-1, ::-1],
}


def check_symmetries(names: Sequence[str]) -> tuple[str, ...]:
    """The names, each known and given once, as a tuple in the given order; ValueError otherwise."""
    names = tuple(names)
    unknown = [n for n in names if n not in SYMMETRIES]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"symmetries must be distinct names from {', '.join(SYMMETRIES)}, got {list(names)!r}")
    return names


def symmetric_copy(image: np.ndarray, name: str) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 image → the same image flipped or turned as `name` says (contiguous)."""
    return np.ascontiguousarray(SYMMETRIES[name](image))
