"""The checks a candidate frame must pass before it is kept for training: exposure, sharpness and
change from the frames already kept. Pure numerics on uint8 frames; no I/O.

Exposure: the mean gray level inside [low, high] and at most `max_clipped` of the pixels clipped
black (<= 5) or white (>= 250). Sharpness: the variance of the Laplacian of the gray frame scaled
to at most 512 pixels a side. How sharp a good frame is depends on what it shows (an
electroluminescence cell scores ~10, a brick texture ~1000), so a frame is blurred when its
sharpness is below `blur_ratio` × the median of the camera's recent candidates (from the 5th one
on; the last images already in the output folder count as candidates), or below the absolute floor `min_sharpness` when one is set. Near-duplicate: the mean absolute
difference of 32 × 32 gray thumbnails, in gray levels, against each of the last 64 kept frames is
below `min_change` (sensor noise alone gives ~0.5; two different solar cells 4 and more).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from patchline.errors import ConfigError

SHARPNESS_SIDE = 512   # pixels: sharpness is measured at this scale so it does not grow with the sensor
THUMB_SIDE = 32        # pixels a side of the duplicate thumbnail
WARM_UP = 5            # candidates before the relative blur rule applies
SHARPNESS_WINDOW = 50  # candidates whose median is the camera's usual sharpness
KEPT_WINDOW = 64       # kept frames a candidate is compared with


@dataclass(frozen=True)
class QualityRules:
    """The limits of the checks (see the module's docstring); each is checked by `check()`."""

    min_change: float = 2.0
    blur_ratio: float = 0.4
    min_sharpness: float = 0.0
    exposure: tuple[float, float] = (25.0, 230.0)
    max_clipped: float = 0.5

    def check(self) -> "QualityRules":
        """Return self, or raise ConfigError naming the first value out of range."""
        if not 0 <= self.min_change <= 255:
            raise ConfigError(f"--min-change must be between 0 and 255 gray levels, got {self.min_change}.")
        if not 0 <= self.blur_ratio < 1:
            raise ConfigError(f"--blur-ratio must be at least 0 and below 1, got {self.blur_ratio}.")
        if not self.min_sharpness >= 0:
            raise ConfigError(f"--min-sharpness must be 0 or more, got {self.min_sharpness}.")
        low, high = self.exposure
        if not 0 <= low < high <= 255:
            raise ConfigError(f"--exposure must be LOW,HIGH with 0 <= LOW < HIGH <= 255, got {low},{high}.")
        if not 0 < self.max_clipped <= 1:
            raise ConfigError(f"--max-clipped must be a fraction above 0 and at most 1, got {self.max_clipped}.")
        return self


def gray_of(image: np.ndarray) -> np.ndarray:
    """(H, W) uint8 gray of an (H, W) gray or (H, W, 3) RGB uint8 frame."""
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian of `gray` scaled down to at most SHARPNESS_SIDE pixels a side."""
    h, w = gray.shape
    scale = SHARPNESS_SIDE / max(h, w)
    if scale < 1:
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def thumbnail(gray: np.ndarray) -> np.ndarray:
    """(THUMB_SIDE, THUMB_SIDE) float32 area-averaged copy of `gray`: noise averages out, content stays."""
    return cv2.resize(gray, (THUMB_SIDE, THUMB_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)


def exposure_problem(gray: np.ndarray, rules: QualityRules) -> tuple[str, str] | None:
    """('under-exposed' | 'over-exposed', detail) when the frame's exposure is out of `rules`, else None."""
    mean = float(gray.mean())
    dark, bright = float((gray <= 5).mean()), float((gray >= 250).mean())
    low, high = rules.exposure
    if mean < low or dark > rules.max_clipped:
        return "under-exposed", f"mean gray {mean:.1f} (at least {low:g}), {dark:.0%} black"
    if mean > high or bright > rules.max_clipped:
        return "over-exposed", f"mean gray {mean:.1f} (at most {high:g}), {bright:.0%} white"
    return None


class QualityGate:
    """Judges candidates in order: `judge(image)` → None (keep it) or (reason, detail); `kept(image)`
    remembers a frame that was written so later ones are compared with it."""

    def __init__(self, rules: QualityRules):
        self.rules = rules.check()
        self.recent_sharpness: deque[float] = deque(maxlen=SHARPNESS_WINDOW)
        self.kept_thumbs: deque[np.ndarray] = deque(maxlen=KEPT_WINDOW)
        self._thumb: np.ndarray | None = None

    def judge(self, image: np.ndarray) -> tuple[str, str] | None:
        """None when `image` passes every check, else (reason, detail); reason is one of
        'under-exposed', 'over-exposed', 'blurred', 'duplicate'."""
        gray = gray_of(image)
        self._thumb = None
        problem = exposure_problem(gray, self.rules)
        if problem is not None:
            return problem
        value = sharpness(gray)
        self.recent_sharpness.append(value)
        usual = float(np.median(self.recent_sharpness))
        if value < self.rules.min_sharpness:
            return "blurred", f"sharpness {value:.1f} below the floor {self.rules.min_sharpness:g}"
        if len(self.recent_sharpness) >= WARM_UP and value < self.rules.blur_ratio * usual:
            return "blurred", f"sharpness {value:.1f} below {self.rules.blur_ratio:g} × the usual {usual:.1f}"
        thumb = thumbnail(gray)
        change = float(np.abs(np.stack(self.kept_thumbs) - thumb).mean(axis=(1, 2)).min()) if self.kept_thumbs else None
        if change is not None and change < self.rules.min_change:
            return "duplicate", f"differs by {change:.2f} gray levels from a kept frame (at least {self.rules.min_change:g})"
        self._thumb = thumb
        return None

    def kept(self, image: np.ndarray | None = None) -> None:
        """Remember the frame just judged as kept; or `image`, one kept earlier (already in the output
        folder), which also counts towards the usual sharpness."""
        if image is not None:
            gray = gray_of(image)
            self.recent_sharpness.append(sharpness(gray))
            self.kept_thumbs.append(thumbnail(gray))
        elif self._thumb is not None:
            self.kept_thumbs.append(self._thumb)
