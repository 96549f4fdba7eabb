"""Synthetic defects with exact masks.

KINDS (cut-paste, scratch, blob) are bold: they choose a line's aggregation from normal images
only (no test labels) and build the tests' datasets with known answers. SUBTLE_KINDS (a thin
crack, a dark region, a texture change, a small spot) are faint and small, so that the proxy
`patchline tune` ranks settings by does not saturate at AUROC 1.0.
"""

from __future__ import annotations

import cv2
import numpy as np

from patchline.core.preprocess import to_rgb

KINDS = ("cut_paste", "scratch", "blob")
SUBTLE_KINDS = ("crack", "dark_region", "texture_change", "spot")


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


def _irregular_region(h: int, w: int, radius: float, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int]]:
    """(H, W) float32 soft mask 0..1 of a lumpy disc of about `radius` pixels, and its centre."""
    cx, cy = int(rng.uniform(0.15, 0.85) * w), int(rng.uniform(0.15, 0.85) * h)
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    radii = radius * rng.uniform(0.6, 1.3, size=angles.size)
    points = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1).round().astype(np.int32)
    hard = np.zeros((h, w), dtype=np.uint8)
    cv2.fillPoly(hard, [points], 255)
    soft = cv2.GaussianBlur(hard.astype(np.float32) / 255.0, (0, 0), sigmaX=max(1.0, radius / 4))
    return soft, (cx, cy)


def crack(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A one-pixel dark crack that wanders and branches once, 15–35 % of the shorter side long.

    image: (H, W, 3) uint8. Returns (defect image, mask (H, W) bool).
    """
    h, w = image.shape[:2]
    side = min(h, w)
    mask8 = np.zeros((h, w), dtype=np.uint8)
    x, y = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
    angle = rng.uniform(0, 2 * np.pi)
    steps = int(rng.uniform(0.15, 0.35) * side / 3) + 2
    points, branch_at = [(x, y)], steps // 2
    for i in range(steps):
        angle += rng.normal(0, 0.35)
        x, y = x + 3 * np.cos(angle), y + 3 * np.sin(angle)
        points.append((x, y))
        if i == branch_at:
            bx, by, ba = x, y, angle + rng.choice([-1, 1]) * rng.uniform(0.5, 1.2)
            branch = [(bx, by)] + [(bx + 3 * k * np.cos(ba), by + 3 * k * np.sin(ba)) for k in range(1, steps // 3 + 2)]
            cv2.polylines(mask8, [np.array(branch).round().astype(np.int32)], False, 255, thickness=1)
    cv2.polylines(mask8, [np.array(points).round().astype(np.int32)], False, 255, thickness=1)
    mask = mask8 > 0
    out = image.astype(np.float32)
    out[mask] *= rng.uniform(0.35, 0.6)
    return np.clip(out, 0, 255).astype(np.uint8), mask


def dark_region(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A soft-edged irregular region 20–40 % darker (an inactive area, a shadow), 5–12 % of the side across.

    image: (H, W, 3) uint8. Returns (defect image, mask (H, W) bool: where it is darker by half or more).
    """
    h, w = image.shape[:2]
    soft, _ = _irregular_region(h, w, rng.uniform(0.05, 0.12) * min(h, w), rng)
    factor = 1.0 - rng.uniform(0.2, 0.4) * soft
    out = image.astype(np.float32) * factor[..., None]
    return np.clip(out, 0, 255).astype(np.uint8), soft >= 0.5


def texture_change(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """An irregular region whose texture differs: smoothed away, or grainier (finer noise), same mean.

    image: (H, W, 3) uint8. Returns (defect image, mask (H, W) bool).
    """
    h, w = image.shape[:2]
    soft, _ = _irregular_region(h, w, rng.uniform(0.06, 0.14) * min(h, w), rng)
    source = image.astype(np.float32)
    if rng.random() < 0.5:
        changed = cv2.GaussianBlur(source, (0, 0), sigmaX=float(rng.uniform(2.0, 4.0)))
    else:
        changed = source + rng.normal(0, rng.uniform(10, 20), size=(h, w, 1)).astype(np.float32)
    out = source * (1 - soft[..., None]) + changed * soft[..., None]
    return np.clip(out, 0, 255).astype(np.uint8), soft >= 0.5


def spot(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A small round spot 6–12 px across (about one stride-8 patch), darker or brighter by 30–60 levels.

    image: (H, W, 3) uint8. Returns (defect image, mask (H, W) bool).
    """
    h, w = image.shape[:2]
    radius = rng.uniform(3, 6)
    cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
    yy, xx = np.mgrid[0:h, 0:w]
    distance = np.hypot(xx - cx, yy - cy)
    soft = np.clip(radius + 0.5 - distance, 0.0, 1.0).astype(np.float32)
    shift = rng.choice([-1.0, 1.0]) * rng.uniform(30, 60)
    out = image.astype(np.float32) + shift * soft[..., None]
    return np.clip(out, 0, 255).astype(np.uint8), soft >= 0.5


GENERATORS = {"cut_paste": cut_paste, "scratch": scratch, "blob": blob, "crack": crack,
              "dark_region": dark_region, "texture_change": texture_change, "spot": spot}


def make_defect(image: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic defect of `kind` (KINDS or SUBTLE_KINDS) on an (H, W) gray or (H, W, 3) uint8 image →
    ((H, W, 3) uint8 image, (H, W) bool mask); a gray image is edited as its three-channel copy."""
    return GENERATORS[kind](to_rgb(image), rng)
