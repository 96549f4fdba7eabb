"""The folder capture writes: image files directly inside it, which is what `patchline train
--images` and `patchline tune --images` read (core/preprocess.list_images: by suffix, name order).
Each image is written under a temporary name without an image suffix and renamed, so a reader never
sees half a file. Images already there count towards the count and the quota: running capture again
tops a folder up. Nothing in the folder is ever removed."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from patchline.core.preprocess import list_images
from patchline.errors import PatchlineError

FORMATS = {"png": (".png", []), "jpg": (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95])}


def encode(image: np.ndarray, fmt: str) -> bytes:
    """PNG (lossless) or JPEG (quality 95) bytes of an (H, W) gray or (H, W, 3) RGB uint8 frame."""
    suffix, params = FORMATS[fmt]
    pixels = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(suffix, pixels, params)
    if not ok:
        raise PatchlineError(f"the frame could not be encoded as {fmt.upper()}.")
    return data.tobytes()


def camera_file_stem(prefix: str, timestamp: float, index: int) -> str:
    """`<prefix>-<UTC date>T<time>.<ms>Z-<index>`: names sort in the order frames were taken."""
    seconds = time.strftime("%Y%m%dT%H%M%S", time.gmtime(timestamp))
    return f"{prefix}-{seconds}.{int(timestamp * 1000) % 1000:03d}Z-{index:06d}"


class CaptureFolder:
    """The output folder with its limits: at most `count` images (None: no limit) and `quota_bytes`
    bytes of images, those already there included."""

    def __init__(self, folder: Path, fmt: str, count: int | None, quota_bytes: int):
        self.folder = Path(folder)
        self.fmt = fmt
        self.count, self.quota = count, int(quota_bytes)
        self.folder.mkdir(parents=True, exist_ok=True)
        existing = list_images(self.folder)
        self.existing = existing
        self.images = len(existing)
        self.used = sum(p.stat().st_size for p in existing)
        self.written = 0
        self.bytes_written = 0

    def full(self) -> str | None:
        """Why nothing more may be written ('count', 'quota'), or None while there is room."""
        if self.count is not None and self.images >= self.count:
            return "count"
        if self.used >= self.quota:
            return "quota"
        return None

    def path_for(self, stem: str) -> Path:
        return self.folder / f"{stem}{FORMATS[self.fmt][0]}"

    def write(self, stem: str, image: np.ndarray) -> Path | None:
        """Write `image` as `<stem>.<fmt>`; returns its path, or None when it would pass the quota
        (nothing written). A file of that name already there raises FileExistsError."""
        path = self.path_for(stem)
        if path.exists():
            raise FileExistsError(path)
        data = encode(image, self.fmt)
        if self.used + len(data) > self.quota:
            return None
        partial = path.with_name(f".{path.name}.partial")
        try:
            partial.write_bytes(data)
            partial.rename(path)
        finally:
            partial.unlink(missing_ok=True)
        self.images += 1
        self.written += 1
        self.used += len(data)
        self.bytes_written += len(data)
        return path
