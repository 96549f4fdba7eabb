"""Triggers that arrive as files in a folder, for the station (patchline/plc/station.py).

    DIR/<camera>/<any name>   a new regular file: a verdict of that camera's next frame

A PLC or line controller writes or touches a file (any name, any content, content never read) on a
shared drive; the poller takes it within about POLL_S, removes it and then triggers the camera, so
one file is one trigger (a file that cannot be removed is refused, not triggered, so it cannot
trigger again at every poll). `start()` makes DIR and DIR/<camera>/ for every camera of the run and
removes what is already there without triggering (stale: written before the run started).

Everything found is untrusted: a file in a folder that is not one of the run's cameras, an entry
directly in DIR, a symbolic link, a sub-folder, a device or FIFO, a name over MAX_NAME characters
and a file that cannot be removed are refused — counted on the station, logged, removed where that
is safe (never followed) and otherwise remembered so each is refused once. One poll handles at most
MAX_PER_POLL entries per camera folder and as many outside them; the rest wait for the next poll.
Nothing found ever stops the poller: an unexpected error is logged and the poll goes on.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path

from patchline.errors import PatchlineError
from patchline.plc.station import Station

log = logging.getLogger(__name__)

POLL_S = 0.01
MAX_PER_POLL = 64
MAX_NAME = 255
SOURCE = "folder"


class FolderTriggers:
    """Polls DIR/<camera>/ for new files and triggers the station's cameras (module docstring)."""

    def __init__(self, station: Station, folder: Path, interval: float = POLL_S, per_poll: int = MAX_PER_POLL):
        self.station = station
        self.folder = Path(folder)
        self.interval = interval
        self.per_poll = per_poll
        self.triggers = 0  # files taken as triggers
        self.stale = 0  # files removed at start without a trigger
        self._stuck: set[tuple[str, int]] = set()  # (path, inode) refused and still there: refused once
        self._seen_stuck: set[tuple[str, int]] = set()
        self._full = False  # a folder had more than per_poll entries in this poll
        self._down = False  # DIR could not be read at the last poll
        self._reported: set[str] = set()  # problems logged once
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "FolderTriggers":
        """Make DIR/<camera>/ for each camera, remove stale files, start polling. PatchlineError in one
        sentence when a folder cannot be made."""
        for camera in self.station.cameras:
            path = self.folder / camera
            try:
                path.mkdir(parents=True, exist_ok=True)
            except FileExistsError:
                raise PatchlineError(f"--trigger-folder: {path} is not a folder (a file is in the way); "
                                     f"remove it.") from None
            except OSError as exc:
                raise PatchlineError(f"--trigger-folder: cannot make {path}: {exc.strerror or exc}.") from None
            if path.is_symlink():
                raise PatchlineError(f"--trigger-folder: {path} is a link, not a folder; remove it.")
            self._sweep(camera)
        self._thread = threading.Thread(target=self._run, name="plc-trigger-folder", daemon=True)
        self._thread.start()
        log.info("listening for trigger files in %s/<camera>/ (%s)", self.folder, ", ".join(self.station.cameras))
        return self

    def close(self) -> None:
        """Stop polling and wait for the poller."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def poll(self) -> None:
        """One pass: every camera folder's new files, then what lies outside the camera folders."""
        self._full, self._seen_stuck = False, set()
        entries = self._list(self.folder)
        if entries is None:
            return
        cameras = self.station.cameras
        folders = {e.name: e for e in entries if _is_folder(e)}
        for camera in cameras:
            if camera in folders:
                self._handle(self._list(self.folder / camera), camera, camera, self.per_poll)
            else:
                self._remake(camera)
        budget = self._handle([e for e in entries if e.name not in folders], None, "", self.per_poll,
                              "not in a camera folder")
        for name, entry in folders.items():
            if name not in cameras:
                self._report(f"{entry.path[-200:]} is no camera folder of this run: its files are refused")
                budget = self._handle(self._list(Path(entry.path)), None, name[:60], budget,
                                      f"no camera {name[:60]!r} in this run")
        if not self._full:
            self._stuck &= self._seen_stuck  # forget refused entries that are gone

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # the poller must outlive anything it finds
                log.exception("the trigger folder poll failed; polling on")

    def _list(self, folder: Path) -> list[os.DirEntry] | None:
        """The folder's entries; None (logged once until it can be read again) when it cannot be read."""
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            if folder == self.folder and not self._down:
                self._down = True
                log.warning("trigger folder %s cannot be read (%s); trying again", folder, exc.strerror or exc)
            elif folder != self.folder:
                self._report(f"{str(folder)[-200:]} cannot be read ({exc.strerror or exc})")
            return None
        if folder == self.folder and self._down:
            self._down = False
            log.info("trigger folder %s can be read again", folder)
        return entries

    def _handle(self, entries: list[os.DirEntry] | None, camera: str | None, label: str, budget: int,
                refused: str | None = None) -> int:
        """Take at most `budget` of the entries (refused ones still there are skipped); what is left of the
        budget. `refused`: why each entry is refused (outside the camera folders), None in a camera folder."""
        for entry in entries or ():
            key = (entry.path, _inode(entry))
            if key in self._stuck:
                self._seen_stuck.add(key)
                continue
            if budget <= 0:
                self._full = True
                return 0
            budget -= 1
            try:
                self._take(entry, camera, f"{label}/{entry.name[:80]}".lstrip("/"), key, refused)
            except FileNotFoundError:
                continue  # gone while it was looked at
            except Exception:  # one bad entry must not stop the others
                log.exception("trigger folder: %r failed; it is left alone", entry.path[-300:])
                self._remember(key)
        return budget

    def _take(self, entry: os.DirEntry, camera: str | None, where: str, key: tuple[str, int],
              refused: str | None) -> None:
        """Remove a camera folder's regular file and trigger the camera; refuse anything else."""
        problem = refused or _refusal(entry)
        if problem is None:
            try:
                if _unlink(entry.path):
                    self.triggers += 1
                    self.station.trigger(camera, SOURCE)
                return
            except OSError as exc:
                problem = f"cannot be removed ({exc.strerror or exc}), so it is not taken as a trigger"
                self._remember(key)
        self.station.refuse(camera, f"{where!r}: {problem}", SOURCE)
        if key in self._stuck:
            return
        if _is_folder(entry):
            self._remember(key)  # a folder is never removed: refused once
            return
        try:
            _unlink(entry.path)  # a link itself, never its target
        except OSError:
            self._remember(key)

    def _remember(self, key: tuple[str, int]) -> None:
        self._stuck.add(key)
        self._seen_stuck.add(key)

    def _sweep(self, camera: str) -> None:
        """Remove the files a camera folder holds at start, without a trigger (logged once)."""
        stale = 0
        for entry in self._list(self.folder / camera) or ():
            if not _is_folder(entry):
                try:
                    stale += _unlink(entry.path)
                except OSError:
                    pass  # refused by the first poll: it cannot be removed
        if stale:
            self.stale += stale
            log.warning("trigger folder %s: removed %d stale file(s) written before the run started (no trigger)",
                        self.folder / camera, stale)

    def _remake(self, camera: str) -> None:
        """A camera folder gone during the run is made again (logged once)."""
        path = self.folder / camera
        try:
            path.mkdir()
        except FileExistsError:
            return  # a file or link of that name: refused with DIR's other entries, then made
        except OSError as exc:
            self._report(f"{path} cannot be made again ({exc.strerror or exc})")
            return
        self._report(f"{path} was gone; made it again")

    def _report(self, problem: str) -> None:
        """Log a problem the first time it is seen (at most 256 distinct ones)."""
        if problem not in self._reported and len(self._reported) < 256:
            self._reported.add(problem)
            log.warning("trigger folder: %s", problem)


def _unlink(path: str) -> bool:
    """Remove a file or link (never what a link points to): True, or False when it was already gone
    (another reader took it). OSError when it cannot be removed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _inode(entry: os.DirEntry) -> int:
    try:
        return entry.inode()
    except OSError:
        return 0


def _refusal(entry: os.DirEntry) -> str | None:
    """Why an entry of a camera folder is no trigger (None: a regular file with a sensible name)."""
    if len(entry.name) > MAX_NAME:
        return f"a name of {len(entry.name)} characters (at most {MAX_NAME})"
    if entry.is_symlink():
        return "a symbolic link (never followed)"
    mode = entry.stat(follow_symlinks=False).st_mode
    if stat.S_ISDIR(mode):
        return "a folder (put files, not folders, in a camera folder)"
    if not stat.S_ISREG(mode):
        return "not a regular file (a device, FIFO or socket)"
    return None
