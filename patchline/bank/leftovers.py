"""What a crashed or refused bank write leaves in a line's folder, and removing it safely.

Leftovers: staging folders of write_bank (`.<version>.*`), training work folders (`.work-*`),
temporary CURRENT files (`.CURRENT.*.tmp`) and `*.part` files. A process that writes into a
line's folder holds a shared lock on `<line>/.writers` (`writing`); leftovers are removed only
under the exclusive lock (`remove_leftovers`), so a write under way is never mistaken for one.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Iterator

log = logging.getLogger("patchline.bank")

LOCK_FILE = ".writers"
_LEFTOVER = re.compile(r"^(\.\d{8}T\d{6}Z(-\d+)?\..+|\.work-.+|\.CURRENT\..+\.tmp|.+\.part)$")


def leftovers(line_dir: Path) -> list[Path]:
    """The leftovers of earlier bank writes in `line_dir` (none when it does not exist)."""
    try:
        return sorted(p for p in Path(line_dir).iterdir() if _LEFTOVER.match(p.name))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _open_lock(line_dir: Path):
    fd = os.open(Path(line_dir) / LOCK_FILE, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    return os.fdopen(fd, "r+")


@contextlib.contextmanager
def writing(line_dir: Path) -> Iterator[None]:
    """Hold the line's writers' lock (shared: writers do not exclude each other) while writing."""
    Path(line_dir).mkdir(parents=True, exist_ok=True)
    with _open_lock(line_dir) as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_leftovers(line_dir: Path) -> list[str] | None:
    """Remove the leftovers of `line_dir` when no process is writing there; the names removed, or
    None when a write is under way (nothing is touched then)."""
    found = leftovers(line_dir)
    if not found:
        return []
    try:
        handle = _open_lock(line_dir)
    except OSError as exc:
        log.warning("cannot lock %s to remove half-written banks: %s", line_dir, exc.strerror)
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return None
        removed = []
        for path in leftovers(line_dir):
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed.append(path.name)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("cannot remove %s: %s", path, exc.strerror)
        if removed:
            log.info("removed %d leftover(s) of earlier bank writes from %s: %s", len(removed), line_dir,
                     ", ".join(removed))
        return removed
