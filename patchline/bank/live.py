"""A product line's live bank: loaded and checked once, swapped when `<banks>/<line>/CURRENT` changes.

A background thread looks at CURRENT (one `stat` per interval) and, when it names a new version,
loads and checks that bank completely before replacing the one reference readers take. A frame
takes that reference once, so it is scored against one whole bank, old or new, never a mix; a new
bank that fails its checks is refused (logged) and the old one stays.

Streams of the same line in one process (two cameras) share one LiveBank: one copy in memory,
one watcher.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Callable, Mapping

from patchline.bank.store import CURRENT_FILE, Bank, current_version, load_bank
from patchline.errors import PatchlineError

log = logging.getLogger(__name__)


class LiveBank:
    """The current Bank of one line (`state`), kept up to date by a watcher thread.

    expected: backbone / resize / imagesize the stream feeds (None = not known, not checked).
    layer_channels: {layer: channels} the stream's models produce; the bank's layers and
    embedding_dim must fit them. Raises BankError naming the field when the CURRENT bank does not.
    """

    def __init__(self, root: Path, line: str, expected: Mapping, layer_channels: Mapping[str, int],
                 interval: float = 0.5):
        self.root, self.line = Path(root), line
        self.expected = dict(expected)
        self.layer_channels = dict(layer_channels)
        self.interval = interval
        self.listeners: list[Callable[[str, str], None]] = []
        self._stamp = self._current_stamp()
        self.state = self._load(None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"bank-watch-{line}", daemon=True)
        self._thread.start()

    def _load(self, version: str | None) -> Bank:
        """Load and check a bank version (CURRENT when None); BankError naming the mismatching field."""
        return load_bank(self.root, self.line, version, expected=self.expected, layer_channels=self.layer_channels)

    def _current_stamp(self):
        try:
            st = os.stat(self.root / self.line / CURRENT_FILE)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            stamp = self._current_stamp()
            if stamp == self._stamp:
                continue
            self._stamp = stamp
            try:
                version = current_version(self.root, self.line)
                if version == self.state.version:
                    continue
                state = self._load(version)
            except PatchlineError as exc:
                log.error("line %s keeps bank %s: %s", self.line, self.state.version, exc)
                continue
            except Exception as exc:  # the watcher must outlive any bank on disk: log, keep the old bank
                log.error("line %s keeps bank %s: the new bank could not be loaded (%s: %s)", self.line,
                          self.state.version, type(exc).__name__, exc)
                continue
            self.state = state  # one reference assignment: readers get the old bank or the new, whole
            log.info("line %s switched to bank %s", self.line, state.version)
            for listener in list(self.listeners):
                try:
                    listener(self.line, state.version)
                except Exception:  # a listener must not stop the watcher
                    log.exception("bank listener failed")

    def close(self) -> None:
        self._stop.set()


_shared: dict[tuple, list] = {}  # key → [LiveBank, users]
_shared_lock = threading.Lock()


def acquire(root: Path, line: str, expected: Mapping, layer_channels: Mapping[str, int],
            interval: float = 0.5) -> LiveBank:
    """The process's LiveBank for this line and stream geometry (created on first use); pair with release()."""
    key = (str(Path(root).resolve()), line, tuple(sorted(expected.items())), tuple(sorted(layer_channels.items())))
    with _shared_lock:
        entry = _shared.get(key)
        if entry is None:
            entry = _shared[key] = [LiveBank(root, line, expected, layer_channels, interval), 0]
        entry[1] += 1
        return entry[0]


def release(live: LiveBank) -> None:
    """Drop one user of a shared LiveBank; the last one stops its watcher."""
    with _shared_lock:
        for key, entry in list(_shared.items()):
            if entry[0] is live:
                entry[1] -= 1
                if entry[1] <= 0:
                    live.close()
                    del _shared[key]
                return
