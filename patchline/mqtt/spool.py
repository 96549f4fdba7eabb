"""Alarms on disk until the broker acknowledges them: one JSON file per alarm, written
atomically, deleted after PUBACK, and picked up again by the next publisher on the same folder
after a restart (delivery is at-least-once). The folder is locked against a second process."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from pathlib import Path

from patchline.errors import ConfigError, PatchlineError
from patchline.files import read_regular_file
from patchline.mqtt.payload import MAX_PAYLOAD_BYTES, decode_payload

log = logging.getLogger("patchline.mqtt")


class AlarmSpool:
    """One publisher's spool folder, locked while the object is open."""

    def __init__(self, folder: Path):
        """Create and lock `folder`; ConfigError when it cannot be used or another process holds it."""
        self.folder = Path(folder)
        self.last_error = ""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(self.folder / ".lock", "w")
        except OSError as exc:
            raise ConfigError(f"alarm spool folder {self.folder} cannot be used: {exc.strerror}.") from None
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            raise ConfigError(f"alarm spool folder {self.folder} is in use by another patchline process.") from None

    def close(self) -> None:
        """Release the folder's lock (the spooled alarms stay)."""
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
        except (OSError, ValueError):
            pass

    def load(self) -> list[tuple[Path, str, bytes]]:
        """The alarms an earlier run left, oldest first, as (file, topic, payload).

        Half-written temporary files are removed; unreadable files are set aside as `<name>.bad`."""
        files = sorted(p for p in self.folder.glob("*.json") if not p.name.startswith("."))
        for stale in self.folder.glob(".tmp-*"):
            self.remove(stale)
        alarms = []
        for path in files:
            try:
                rec = decode_payload(read_regular_file(path, "spooled alarm", MAX_PAYLOAD_BYTES * 2), MAX_PAYLOAD_BYTES * 2)
                topic, payload = rec["topic"], rec["payload"]
                if not (isinstance(topic, str) and topic.startswith("patchline/") and topic.endswith("/alarm")
                        and topic.count("/") == 3 and isinstance(payload, str)):
                    raise ValueError("not an alarm")
                alarms.append((path, topic, payload.encode()))
            except (PatchlineError, ValueError, KeyError):
                log.warning("unreadable spooled alarm %s set aside as %s.bad", path.name, path.name)
                try:
                    path.rename(path.with_name(path.name + ".bad"))
                except OSError:
                    pass
        return alarms

    def restore_into(self, outbox) -> None:
        """Queue the alarms an earlier run left here (`load`) in `outbox`, oldest first; those beyond
        its bound are removed."""
        for path, topic, data in self.load():
            for dropped in outbox.add_alarm(outbox.message("alarm", topic, data, path=path)):
                self.remove(dropped)
        if outbox.spooled():
            log.info("%d undelivered alarms from an earlier run found in %s; they will be sent first",
                     outbox.spooled(), self.folder)

    def write(self, topic: str, data: bytes, seq: int) -> Path | None:
        """Write one alarm durably (fsync, then an atomic rename); its file, or None when the disk
        refused (the reason kept in `last_error`; the caller keeps the alarm in memory and says so)."""
        name = f"{time.time_ns():020d}-{os.getpid()}-{seq:09d}.json"
        path = self.folder / name
        tmp = self.folder / f".tmp-{name}"
        try:
            with open(tmp, "w") as fh:
                json.dump({"topic": topic, "payload": data.decode()}, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)  # atomic: a reader sees the whole file or none
            return path
        except OSError as exc:
            self.last_error = exc.strerror or str(exc)
            self.remove(tmp)
            return None

    @staticmethod
    def remove(path: Path | None) -> None:
        """Delete a spool file (delivered or dropped); a missing file is fine."""
        if path is not None:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("cannot remove %s: %s", path, exc.strerror)

    def write_again(self, messages) -> None:
        """Write alarms the spool refused before (outbox Messages without a path), oldest first,
        until the disk refuses again; each written one gets its `path`."""
        for msg in messages:
            path = self.write(msg.topic, msg.data, msg.seq)
            if path is None:
                return
            msg.path = path

    def say_refused(self, refusals: int, unspooled: int, bound: int) -> None:
        """Log that an alarm could not be written, with the exact number now in memory only; at the
        first refusal and every 100th, so a full disk does not flood the log."""
        if refusals == 1 or refusals % 100 == 0:
            log.error("cannot spool an alarm to %s (%s): %d alarm(s) now wait in memory only (at most %d) and are "
                      "lost if this process stops before the broker takes them", self.folder, self.last_error,
                      unspooled, bound)

    def say_closed(self, broker: str, verdicts: int, kept: int, lost: int) -> None:
        """Log what a closing publisher leaves: verdicts dropped, alarms kept here, alarms lost."""
        if verdicts or kept:
            log.warning("MQTT broker %s: closing with %d verdicts undelivered (dropped) and %d alarms kept in the "
                        "spool %s for the next start", broker, verdicts, kept, self.folder)
        if lost:
            log.error("%d alarm(s) are lost: the broker never took them and the spool %s could not write them (%s)",
                      lost, self.folder, self.last_error or "no room")
