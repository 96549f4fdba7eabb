"""One `patchline capture`: where frames come from, which are candidates, the quality rules, where
they go and when to stop. `check()` refuses a bad combination in one sentence before anything is
opened (no camera dialled, no broker reached, no folder made)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from patchline.capture.folder import FORMATS
from patchline.capture.quality import QualityRules
from patchline.capture.sources import is_camera
from patchline.errors import ConfigError
from patchline.mqtt.broker import BrokerSettings
from patchline.names import check_name

DEFAULT_QUOTA_MB = 1000.0


@dataclass(frozen=True)
class CaptureSettings:
    """source: an rtsp:// URL or a folder. out: the folder to fill. One way to pick candidates:
    every (each Nth frame; the default, 1), interval_s (one every T seconds) or trigger (one per
    MQTT trigger on patchline/<camera>/capture; needs broker and camera). Limits: count (images in
    `out`), quota_mb (megabytes of images in `out`), duration_s (seconds). camera: the name in file
    names and the trigger topic. fmt: 'png' or 'jpg'."""

    source: str
    out: Path
    every: int | None = None
    interval_s: float | None = None
    trigger: bool = False
    count: int | None = None
    quota_mb: float = DEFAULT_QUOTA_MB
    duration_s: float | None = None
    camera: str | None = None
    broker: BrokerSettings | None = None
    fmt: str = "png"
    rules: QualityRules = field(default_factory=QualityRules)
    trigger_expire_s: float = 5.0

    @property
    def prefix(self) -> str:
        """The start of a camera frame's file name."""
        return self.camera or "frame"

    def check(self) -> "CaptureSettings":
        """Return self, or raise ConfigError naming the first value a capture cannot take."""
        if not is_camera(self.source) and not Path(self.source).is_dir():
            raise ConfigError(f"capture source {self.source} is neither an rtsp:// URL nor an existing folder.")
        if not is_camera(self.source) and Path(self.source).resolve() == Path(self.out).resolve():
            raise ConfigError("--out must not be the source folder: capture would read what it writes.")
        if sum(x is not None and x is not False for x in (self.every, self.interval_s, self.trigger or None)) > 1:
            raise ConfigError("choose one of --every, --interval and --trigger.")
        if self.every is not None and not (isinstance(self.every, int) and self.every >= 1):
            raise ConfigError(f"--every must be a whole number of frames, at least 1, got {self.every}.")
        for flag, value in (("--interval", self.interval_s), ("--duration", self.duration_s)):
            if value is not None and not (_real(value) and 0 < value < math.inf):
                raise ConfigError(f"{flag} must be a positive number of seconds, got {value}.")
        if self.count is not None and not (isinstance(self.count, int) and self.count >= 1):
            raise ConfigError(f"--count must be a whole number of images, at least 1, got {self.count}.")
        if not (_real(self.quota_mb) and 0 < self.quota_mb < math.inf):
            raise ConfigError(f"--quota-mb must be a positive number of megabytes, got {self.quota_mb}.")
        if self.fmt not in FORMATS:
            raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {self.fmt}.")
        if self.camera is not None:
            check_name(self.camera, "camera")
        if self.trigger:
            if not is_camera(self.source):
                raise ConfigError("--trigger needs a camera (rtsp://) source: a trigger asks for the frame taken "
                                  "after it, and a folder's files were all taken before.")
            if self.broker is None or self.camera is None:
                raise ConfigError("--trigger needs --mqtt URL and --camera NAME: triggers arrive on "
                                  "patchline/<camera>/capture.")
        self.rules.check()
        return self


def _real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
