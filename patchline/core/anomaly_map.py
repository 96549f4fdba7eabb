"""Anomaly maps (patch grid → crop-sized, smoothed) and the defect region they outline."""

from __future__ import annotations

import cv2
import numpy as np

SIGMA = 4.0


def anomaly_map(patch_scores: np.ndarray, imagesize: int, sigma: float = SIGMA) -> np.ndarray:
    """(H, W) or (N, H, W) float32 patch scores → (…, imagesize, imagesize) float32 map.

    Bilinear upsampling (half-pixel centres) then a Gaussian of `sigma` pixels, as in PatchCore.
    """
    if patch_scores.ndim == 3:
        return np.stack([anomaly_map(p, imagesize, sigma) for p in patch_scores])
    up = cv2.resize(patch_scores.astype(np.float32), (imagesize, imagesize), interpolation=cv2.INTER_LINEAR)
    radius = int(4.0 * sigma + 0.5)
    return cv2.GaussianBlur(up, (2 * radius + 1, 2 * radius + 1), sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_REFLECT)


def defect_region(
    amap: np.ndarray, pixel_threshold: float, crop_origin: tuple[float, float, float, float]
) -> dict:
    """Bounding box and area of the map's pixels at or above `pixel_threshold`, in frame pixels.

    amap: (S, S) float32 anomaly map of the crop. crop_origin: (x0, y0, sx, sy) from
    `preprocess.crop_box`. When no pixel reaches the threshold (an image flagged by a whole-image
    aggregation such as mean), the region is the map's peak pixel, so an alarm always points somewhere.
    Returns {"bbox": [x0, y0, x1, y1] ints, "area": frame pixels (int), "peak": [x, y]}.
    """
    mask = amap >= pixel_threshold
    peak_y, peak_x = np.unravel_index(int(np.argmax(amap)), amap.shape)
    if not mask.any():
        mask = np.zeros_like(mask)
        mask[peak_y, peak_x] = True
    ys, xs = np.nonzero(mask)
    ox, oy, sx, sy = crop_origin
    bbox = [
        int(np.floor(ox + xs.min() * sx)),
        int(np.floor(oy + ys.min() * sy)),
        int(np.ceil(ox + (xs.max() + 1) * sx)),
        int(np.ceil(oy + (ys.max() + 1) * sy)),
    ]
    return {
        "bbox": bbox,
        "area": int(round(mask.sum() * sx * sy)),
        "peak": [int(round(ox + (peak_x + 0.5) * sx)), int(round(oy + (peak_y + 0.5) * sy))],
    }


def overlay(image: np.ndarray, amap: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """Heat-map overlay: (S, S, 3) uint8 RGB crop + (S, S) map → (S, S, 3) uint8 RGB."""
    scaled = np.clip((amap - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    heat = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_JET)
    heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(image, 0.55, heat, 0.45, 0.0)
