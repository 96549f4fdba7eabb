"""What waits between `publish_*` calls and the broker, and what is dropped when it cannot wait.

Pure bookkeeping (no network, no threads): the publisher calls it under its own lock.

Drop policy: verdicts wait in memory, at most `max_verdicts`, the oldest dropped first; alarms
wait in the spool, at most `max_alarms` (queued plus unacknowledged), the oldest dropped first.
An alarm the spool could not write (a full disk) waits in memory only, at most `max_unspooled`
of them, the oldest of those dropped first; `unspooled()` counts them: the alarms that would be
lost if the process ended now.
At most `window` messages are handed to the client and not yet acknowledged. Messages leave
oldest first across verdicts and alarms, which keeps every topic in order.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from pathlib import Path

RESULT_KINDS = ("verdict", "alarm")


@dataclass
class Message:
    """One MQTT message and what the outbox needs to know about it."""

    seq: int
    kind: str                 # verdict | alarm | status | bank
    topic: str
    data: bytes
    retain: bool = False
    path: Path | None = None  # the spool file of an alarm


class Outbox:
    """Queued verdicts and alarms, the in-flight window and the counters of what was dropped."""

    def __init__(self, max_verdicts: int = 10000, max_alarms: int = 100000, window: int = 64,
                 max_unspooled: int = 10000):
        self.max_verdicts = max(1, int(max_verdicts))
        self.max_alarms = max(1, int(max_alarms))
        self.max_unspooled = max(1, int(max_unspooled))
        self.window = int(window)
        self.counts = {"delivered": 0, "dropped_verdicts": 0, "dropped_alarms": 0, "spool_errors": 0, "lost_alarms": 0}
        self._seq = itertools.count()
        self._verdicts: deque[Message] = deque()
        self._alarms: deque[Message] = deque()
        self._inflight: dict[int, Message] = {}
        self._early_acks: set[int] = set()
        self._handing = 0

    def message(self, kind: str, topic: str, data: bytes, retain: bool = False, path: Path | None = None) -> Message:
        """A new Message, numbered after every earlier one."""
        return Message(next(self._seq), kind, topic, data, retain, path)

    def add_verdict(self, msg: Message) -> None:
        """Queue a verdict, dropping the oldest queued verdicts beyond `max_verdicts`."""
        self._verdicts.append(msg)
        while len(self._verdicts) > self.max_verdicts:
            self._verdicts.popleft()
            self.counts["dropped_verdicts"] += 1

    def add_alarm(self, msg: Message) -> list[Path]:
        """Queue an alarm; returns the spool files of the oldest alarms dropped beyond `max_alarms`
        (the caller deletes them)."""
        self._alarms.append(msg)
        dropped = []
        while self._alarms and self.alarms_waiting() > self.max_alarms:
            old = self._alarms.popleft()
            self.counts["dropped_alarms"] += 1
            if old.path is not None:
                dropped.append(old.path)
        if msg.path is None and self.unspooled() > self.max_unspooled:
            oldest = next(m for m in self._alarms if m.path is None)  # the memory's bound: oldest of those goes
            self._alarms.remove(oldest)
            self.counts["dropped_alarms"] += 1
        return dropped

    def take(self, first: list[Message] = ()) -> list[Message]:
        """`first` (statuses, bank) followed by the oldest queued results that fit in the window.

        The results are 'being handed' until `handed` is called for each."""
        work = list(first)
        room = self.window - len(self._inflight) - len(work)
        while room > 0 and (self._verdicts or self._alarms):
            if self._alarms and (not self._verdicts or self._alarms[0].seq < self._verdicts[0].seq):
                work.append(self._alarms.popleft())
            else:
                work.append(self._verdicts.popleft())
            room -= 1
        self._handing = sum(1 for m in work if m.kind in RESULT_KINDS)
        return work

    def handed(self, msg: Message, mid: int, queue_full: bool = False) -> Message | None:
        """Record that `msg` went to the client as message id `mid` (or came back: `queue_full`).

        Returns `msg` when its acknowledgement already arrived (see `acked`), else None."""
        if msg.kind in RESULT_KINDS:
            self._handing -= 1
        if queue_full:
            (self._alarms if msg.kind == "alarm" else self._verdicts).appendleft(msg)
            return None
        if mid in self._early_acks:
            self._early_acks.discard(mid)
            self._count_delivered(msg)
            return msg
        self._inflight[mid] = msg
        return None

    def acked(self, mid: int) -> Message | None:
        """The broker acknowledged `mid`: the message it was (its spool file may go), or None when
        the acknowledgement came before `handed` (then `handed` returns it)."""
        msg = self._inflight.pop(mid, None)
        if msg is None:
            self._early_acks.add(mid)
            return None
        self._count_delivered(msg)
        return msg

    def _count_delivered(self, msg: Message) -> None:
        if msg.kind in RESULT_KINDS:
            self.counts["delivered"] += 1

    def pending(self, include_status: bool = False) -> int:
        """Results queued, being handed or unacknowledged (with `include_status`, unacknowledged
        statuses and bank versions too)."""
        n = len(self._verdicts) + len(self._alarms) + self._handing
        return n + sum(1 for m in self._inflight.values() if include_status or m.kind in RESULT_KINDS)

    def alarms_waiting(self) -> int:
        """Alarms queued or unacknowledged, on disk or not."""
        return len(self._alarms) + sum(1 for m in self._inflight.values() if m.kind == "alarm")

    def spooled(self) -> int:
        """Alarms queued or unacknowledged that hold a spool file (they survive a restart)."""
        return sum(1 for m in self._waiting_alarms() if m.path is not None)

    def unspooled(self) -> int:
        """Alarms queued or unacknowledged that the spool could not write: in memory only."""
        return sum(1 for m in self._waiting_alarms() if m.path is None)

    def memory_only(self) -> list[Message]:
        """The waiting alarms without a spool file, oldest first (to write again when the disk has room)."""
        return sorted((m for m in self._waiting_alarms() if m.path is None), key=lambda m: m.seq)

    def _waiting_alarms(self):
        yield from self._alarms
        yield from (m for m in self._inflight.values() if m.kind == "alarm")

    def has_results_to_send(self) -> bool:
        """True when results are queued and the window has room."""
        return bool((self._verdicts or self._alarms) and len(self._inflight) < self.window)

    def drop_undelivered(self) -> tuple[int, int, int]:
        """At close: count the verdicts not delivered as dropped, and the alarms left without a spool
        file as lost; returns (verdicts dropped, alarms kept in the spool, alarms lost), each counted."""
        verdicts = len(self._verdicts) + sum(1 for m in self._inflight.values() if m.kind == "verdict")
        alarms, lost = self.spooled(), self.unspooled()
        self.counts["dropped_verdicts"] += verdicts
        self.counts["lost_alarms"] += lost
        self._verdicts.clear()  # counted as dropped, so no longer queued
        for mid in [mid for mid, m in self._inflight.items() if m.kind == "verdict"]:
            del self._inflight[mid]
        return verdicts, alarms, lost
