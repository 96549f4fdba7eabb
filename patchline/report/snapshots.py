"""Alarm snapshots: a JPEG of what the model saw with its heat map, region box and score, and the
bounded folder that keeps them (oldest removed first).

Each JPEG carries its own identity in a JPEG comment (COM segment: JSON with name, line, camera,
frame_id, score), so a subscriber that receives the bare bytes on `…/snapshot` can match it to
the alarm that names it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from pathlib import Path

import cv2
import numpy as np

from patchline.core.anomaly_map import defect_region, overlay

log = logging.getLogger(__name__)
MIN_SIDE = 320  # small crops are enlarged to at least this many pixels, so a person can see the defect
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def snapshot_picture(crop: np.ndarray, amap: np.ndarray, level: float, caption: str) -> np.ndarray:
    """Crop | heat-map overlay with the region boxed, and a caption bar above.

    crop: (S, S, 3) uint8 RGB or (S, S) uint8 gray, the pixels the model saw. amap: (S, S) float32
    anomaly map; level: the pixel threshold (the box outlines the map at or above it; the colour
    scale runs from level / 2 to 1.5 × level, the same for every alarm of a bank).
    Returns (H, W, 3) uint8 BGR, ready for cv2.imencode.
    """
    rgb = cv2.cvtColor(crop, cv2.COLOR_GRAY2RGB) if crop.ndim == 2 else crop
    if amap.shape != rgb.shape[:2]:  # a stream without a crop: the map covers the resized image
        amap = cv2.resize(amap, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    heat = overlay(rgb, amap, 0.5 * level, 1.5 * level)
    x0, y0, x1, y1 = defect_region(amap, level, (0.0, 0.0, 1.0, 1.0))["bbox"]
    scale = max(1, int(np.ceil(MIN_SIDE / max(rgb.shape[:2]))))
    pair = np.hstack([rgb, heat])
    pair = cv2.resize(pair, (pair.shape[1] * scale, pair.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
    width = rgb.shape[1] * scale
    for offset in (0, width):
        cv2.rectangle(pair, (offset + x0 * scale, y0 * scale), (offset + x1 * scale - 1, y1 * scale - 1),
                      (255, 255, 255), 2)
    bar = np.full((28, pair.shape[1], 3), 32, np.uint8)
    cv2.putText(bar, caption, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return cv2.cvtColor(np.vstack([bar, pair]), cv2.COLOR_RGB2BGR)


def encode_snapshot(picture: np.ndarray, identity: dict, quality: int = 85) -> bytes:
    """(H, W, 3) uint8 BGR → JPEG bytes with `identity` (JSON-able dict) in a COM segment after SOI."""
    ok, encoded = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("OpenCV could not encode the snapshot as JPEG.")
    text = json.dumps(identity, separators=(",", ":")).encode()[:65000]
    data = encoded.tobytes()
    return data[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + data[2:]


def snapshot_identity(jpeg: bytes) -> dict | None:
    """The identity dict `encode_snapshot` put into a JPEG's comment, or None (not ours, or damaged)."""
    if len(jpeg) < 6 or jpeg[:4] != b"\xff\xd8\xff\xfe":
        return None
    length = int.from_bytes(jpeg[4:6], "big")
    try:
        value = json.loads(jpeg[6:4 + length])
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def snapshot_name(payload: dict) -> str:
    """A file name for an alarm's snapshot: <time>_<camera>_<frame id>.jpg (safe characters only)."""
    stamp = str(payload.get("timestamp", "")).replace(":", "").replace("-", "")
    return _SAFE.sub("_", f"{stamp}_{payload.get('camera')}_{payload.get('frame_id')}") + ".jpg"


class SnapshotStore:
    """A folder of alarm snapshots that never holds more than `quota_bytes`: before each write the
    oldest files go until the new one fits. Thread-safe; files already there count from the start."""

    def __init__(self, folder: str | Path, quota_bytes: int):
        self.folder = Path(folder)
        self.quota = int(quota_bytes)
        if self.quota <= 0:
            raise ValueError("the snapshot quota must be a positive number of bytes.")
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        files = sorted(self.folder.glob("*.jpg"), key=lambda p: (p.stat().st_mtime, p.name))
        self._files = [(p, p.stat().st_size) for p in files]  # oldest first
        self._used = sum(size for _, size in self._files)
        self.removed = 0
        self.skipped = 0

    @property
    def used_bytes(self) -> int:
        return self._used

    def save(self, name: str, jpeg: bytes) -> Path | None:
        """Write `jpeg` as folder/name, removing the oldest snapshots first so the folder stays within
        the quota; returns the path, or None when one snapshot alone is larger than the quota."""
        if len(jpeg) > self.quota:
            self.skipped += 1
            log.warning("snapshot %s (%d bytes) is larger than the whole quota (%d bytes); not kept.",
                        name, len(jpeg), self.quota)
            return None
        path = self.folder / name
        with self._lock:
            self._forget_locked(path)
            while self._files and self._used + len(jpeg) > self.quota:
                old, size = self._files.pop(0)
                old.unlink(missing_ok=True)
                self._used -= size
                self.removed += 1
            temporary = path.with_suffix(".part")
            temporary.write_bytes(jpeg)
            temporary.replace(path)  # a reader never sees half a JPEG
            self._files.append((path, len(jpeg)))
            self._used += len(jpeg)
        return path

    def _forget_locked(self, path: Path) -> None:
        """A file of the same name is replaced: its bytes no longer count."""
        for i, (known, size) in enumerate(self._files):
            if known == path:
                del self._files[i]
                self._used -= size
                path.unlink(missing_ok=True)
                return
