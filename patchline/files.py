"""The one rule for reading a file named from outside (a feedback message, a folder source, a
spool, the command line): a regular file only — never a device such as /dev/zero, a FIFO that
would block, or a folder — opened without blocking, and at most a given number of bytes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from patchline.errors import PatchlineError


def read_regular_file(path: str | Path, what: str, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; PatchlineError (one sentence) otherwise."""
    path = Path(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise PatchlineError(f"{what} {path} is not a regular file.")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise PatchlineError(f"cannot read {what} {path}: {exc.strerror or exc}.") from None
    try:
        info = os.fstat(fd)  # the file opened, not one swapped in after the check above
        if not stat.S_ISREG(info.st_mode):
            raise PatchlineError(f"{what} {path} is not a regular file.")
        if info.st_size > max_bytes:
            raise PatchlineError(f"{what} {path} has {info.st_size} bytes; at most {max_bytes} are read.")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise PatchlineError(f"cannot read {what} {path}: {exc.strerror or exc}.") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise PatchlineError(f"{what} {path} grew past {max_bytes} bytes while it was read.")
    return data
