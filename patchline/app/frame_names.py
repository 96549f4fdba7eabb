"""Feedback names frames, not paths: what an operator's false alarm may refer to.

A name is either a snapshot the line kept (its file name, as an alarm's `snapshot` gives it, in
the line's --snapshots folder) or an image below one of the configured image roots (the alarm's
`source`: a file name, or a relative path below the root). The file must resolve inside that
folder (no '..', no absolute path, no symbolic link out), be a regular file of bounded size, and
be a PNG / JPEG / BMP / TIFF of a bounded pixel count (core/image_file.py) that decodes.

Every refusal gives the SAME sentence, whether the file does not exist, is a device, a FIFO, a
folder, outside the roots, or not an image: a reply must not tell a publisher which files exist.
The real reason goes to the listener's log only.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Sequence

from patchline.core.preprocess import IMAGE_SUFFIXES, decode_image
from patchline.core.image_file import read_image_bytes
from patchline.errors import PatchlineError

log = logging.getLogger(__name__)

MAX_NAMES = 32       # frames one feedback message may name
MAX_NAME_CHARS = 255
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class FrameRefused(PatchlineError):
    """A feedback message named something that is not a frame the line kept (always the same sentence)."""


def refusal(name: object) -> FrameRefused:
    """The one sentence for any name that is not a kept frame."""
    shown = name[:80] if isinstance(name, str) else type(name).__name__
    return FrameRefused(f"{shown!r} is not a frame this line kept: name a snapshot or an image below the "
                        f"listener's --image-root folders.")


class FrameNames:
    """Resolves feedback names against a snapshot folder and image roots."""

    def __init__(self, image_roots: Sequence[Path] = (), snapshots: Path | None = None):
        self.snapshots = Path(snapshots).resolve() if snapshots else None
        self.roots = [Path(r).resolve() for r in image_roots]

    def resolve(self, name: object) -> Path:
        """The file a kept frame's `name` refers to, checked to be a decodable image; FrameRefused otherwise."""
        try:
            return self._resolve(name)
        except PatchlineError as exc:
            log.warning("feedback name %.80r refused: %s", name, exc)
            raise refusal(name) from None

    def _resolve(self, name: object) -> Path:
        parts = _parts(name)
        folders = ([self.snapshots] if self.snapshots and len(parts) == 1 else []) + self.roots
        for folder in folders:
            candidate = folder.joinpath(*parts)
            real = Path(os.path.realpath(candidate))
            if folder not in real.parents:
                continue  # a symbolic link out of the folder
            if not os.path.lexists(candidate):
                continue
            decode_image(read_image_bytes(real, "frame"), f"frame {name}")
            return real
        raise PatchlineError("no configured folder holds it")

    def resolve_all(self, names: object) -> list[Path]:
        """The files of a feedback message's `false_alarm` (a name or a list of names); FrameRefused
        for the first that is not a kept frame, PatchlineError when the list itself is malformed."""
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not names or len(names) > MAX_NAMES:
            raise PatchlineError(f'a feedback message must be a JSON object with "false_alarm": [frame name, …] '
                                 f"(1 to {MAX_NAMES} names).")
        return [self.resolve(n) for n in names]


def _parts(name: object) -> list[str]:
    """The levels of a relative frame name; PatchlineError when it is not one."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_CHARS:
        raise PatchlineError("not a string of 1-255 characters")
    parts = name.split("/")
    if not all(_PART.match(p) and p not in (".", "..") for p in parts):
        raise PatchlineError("not a relative name of plain folder and file names")
    if Path(parts[-1]).suffix.lower() not in IMAGE_SUFFIXES:
        raise PatchlineError("not an image file name")
    return parts
