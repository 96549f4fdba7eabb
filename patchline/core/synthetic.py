"""Synthetic defects with exact masks: cut-paste, scratch and blob.

Used to choose a line's aggregation from normal images only (no test labels), and by the tests
to build MVTec-layout datasets with known answers.
"""

from __future__ import annotations

import cv2
import numpy as np

from patchline.core.preprocess import to_rgb

KINDS = ("cut_paste", "scratch", "blob")


def cut_paste(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Paste a rotated, brightness-shifted rectangle cut from elsewhere in the image.

    image: (H, W, 3) uint8. Returns (defect image (H, W, 3) uint8, mask (H, W) bool).
    """
    h, w = image.shape[:2]
    side = min(h, w)
    ph, pw = (int(rng.uniform(0.08, 0.2) * side) for _ in range(2))
    sy, sx = rng.integers(0, h - ph), rng.integers(0, w - pw)
    patch = image[sy : sy + ph, sx : sx + pw].astype(np.float32)
    patch = np.rot90(patch, k=int(rng.integers(1, 4)))
    patch = patch * rng.uniform(0.6, 1.4) + rng.uniform(-30, 30)
    ph, pw = patch.shape[:2]
    ty, tx = rng.integers(0, h - ph), rng.integers(0, w - pw)
    out = image.copy()
    out[ty : ty + ph, tx : tx + pw] = np.clip(patch, 0, 255).astype(np.uint8)
    mask = np.zeros((h, w), dtype=bool)
    mask[ty : ty + ph, tx : tx + pw] = True
    return out, mask


def scratch(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw a thin bent line darker or brighter than its surroundings.

    image: (H, W, 3) uint8. Returns (defect image, mask (H, W) bool).
    """
    h, w = image.shape[:2]
    side = min(h, w)
    length = rng.uniform(0.2, 0.5) * side
    angle = rng.uniform(0, np.pi)
    cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
    t = np.linspace(-0.5, 0.5, 8)
    bend = rng.uniform(-0.1, 0.1) * side * (1 - (2 * t) ** 2)
    xs = cx + t * length * np.cos(angle) - bend * np.sin(angle)
    ys = cy + t * length * np.sin(angle) + bend * np.cos(angle)
    points = np.stack([xs, ys], axis=1).round().astype(np.int32)
    mask8 = np.zeros((h, w), dtype=np.uint8)
    cv2.polylines(mask8, [points], False, 255, thickness=max(2, int(side * rng.uniform(0.008, 0.02))))
    mask = mask8 > 0
    mean = float(image[mask].mean()) if mask.any() else 128.0
    value = 20.0 if mean > 110 else 235.0
    out = image.copy()
    out[mask] = np.uint8(value)
    return out, mask


def blob(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Shift an irregular elliptical region's intensity and add noise (a stain or dent).

    image: (H, W, 3) uint8. Returns (defect image, mask (H, W) bool).
    """
    h, w = image.shape[:2]
    side = min(h, w)
    mask8 = np.zeros((h, w), dtype=np.uint8)
    center = (int(rng.uniform(0.2, 0.8) * w), int(rng.uniform(0.2, 0.8) * h))
    axes = (int(rng.uniform(0.04, 0.12) * side), int(rng.uniform(0.04, 0.12) * side))
    cv2.ellipse(mask8, center, axes, float(rng.uniform(0, 180)), 0, 360, 255, thickness=-1)
    mask = mask8 > 0
    shift = rng.choice([-1.0, 1.0]) * rng.uniform(40, 80)
    noise = rng.normal(0, 12, size=(int(mask.sum()), 1))
    out = image.astype(np.float32)
    out[mask] = out[mask] + shift + noise
    return np.clip(out, 0, 255).astype(np.uint8), mask


GENERATORS = {"cut_paste": cut_paste, "scratch": scratch, "blob": blob}


def make_defect(image: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic defect of `kind` (see KINDS) on an (H, W) gray or (H, W, 3) uint8 image →
    ((H, W, 3) uint8 image, (H, W) bool mask); a gray image is edited as its three-channel copy."""
    return GENERATORS[kind](to_rgb(image), rng)
