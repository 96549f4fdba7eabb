"""The inspection station a PLC talks to: triggers with a deadline, recipes, a heartbeat, results.

Protocol-neutral (no Modbus, no OPC UA in here): the run feeds it frames and verdicts, and each
protocol adapter (patchline/plc/modbus.py, an OPC UA server) shows its state and passes requests on.

How a protocol adapter uses it:

    station.cameras                          the camera names, in the run's order
    station.state(camera) -> CameraState     an immutable snapshot of what the PLC reads (state.py)
    station.add_listener(fn)                 fn(camera, CameraState) after every change of that camera
                                             (trigger, answer, acknowledge, recipe, heartbeat tick,
                                             counters), on the thread that made it; calls are serialised
                                             and always carry the newest state, so writing the snapshot
                                             into registers / nodes keeps them current. Keep fn short.
    station.trigger(camera, source)          ask for a verdict of the next frame captured from now on:
                                             the trigger id (1, 2, …), or 0 when refused — an overrun
                                             (a trigger is already waiting: counted, never merged), an
                                             unknown camera, or a stopped station
    station.acknowledge(camera, source)      the PLC has read the result: result_ready goes back to False
    station.select_recipe(camera, n, source) judge with recipe n's line from the next frame on; an unknown
                                             n is answered ERROR / UNKNOWN_RECIPE and the recipe stays
    station.refuse(camera, what, source)     count (and log) a bad write the adapter ignored (out of range,
                                             read-only); camera None when it names no camera
    station.recipes                          {number: line}

`source` is a short word for the log and the counters ("modbus", "opcua", "mqtt"). An adapter bounds
what it receives before calling these; the station checks again and never raises for a bad request
from outside.

How the run drives it: `add_camera` for each camera before `start()`; `admit(camera, captured_at)` at
the source for every frame (None: hold the frame back — a triggered camera with no trigger waiting);
`on_verdict(payload)` for every verdict; `set_online(camera, bool)` from the camera's status;
`close()` at the end (a trigger still waiting is answered NG / STOPPED). A trigger not answered by
its deadline is answered NG / DEADLINE (CAMERA_OFFLINE when no frames arrived) by the station's
clock thread, which also ticks the heartbeat; `on_miss(payload)` then gets a verdict-like payload
for the MQTT verdict topic.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from dataclasses import replace
from typing import Callable

from patchline.plc.answers import answer, miss, result_of, tick
from patchline.plc.state import Admission, CameraRecord, CameraState, Code, Pending, Result, StationConfig

log = logging.getLogger(__name__)

Listener = Callable[[str, CameraState], None]


class Station:
    """Every camera's PLC-facing state (module docstring: how adapters and the run use it). on_miss(payload):
    the verdict-like payload of each trigger answered by its deadline (clock thread, outside the lock)."""

    def __init__(self, config: StationConfig, on_miss: Callable[[dict], None] | None = None):
        self.config = config.check()
        self.recipes = config.recipe_map
        self.on_miss = on_miss
        self._cond = threading.Condition(threading.Lock())
        self._notify_lock = threading.RLock()
        self._records: dict[str, CameraRecord] = {}
        self._listeners: list[Listener] = []
        self._due: list[tuple[float, int, str, int]] = []  # heap: (due, seq, camera, trigger id)
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.refused_other = 0  # bad writes that named no camera

    def add_camera(self, camera: str, line: str) -> None:
        """Register a camera judged with `line` (its recipe: the first number mapped to that line, else 0)."""
        recipe = next((n for n, name in sorted(self.recipes.items()) if name == line), 0)
        mode = "triggered" if self.config.triggered else "free"
        with self._cond:
            self._records[camera] = CameraRecord(CameraState(camera, line, recipe, mode))

    @property
    def cameras(self) -> list[str]:
        with self._cond:
            return list(self._records)

    def add_listener(self, fn: Listener) -> None:
        """fn(camera, CameraState) after every change (see the module docstring)."""
        self._listeners.append(fn)

    def start(self) -> None:
        """Start the clock thread (deadlines and the heartbeat)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._clock, name="plc-station", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the clock; a trigger still waiting is answered NG / STOPPED; nothing is alive any more."""
        with self._cond:
            self._stopped = True
            for rec in self._records.values():
                if rec.pending is not None:
                    answer(rec, Result.NG, Code.STOPPED, None, rec.pending.trigger_id)
                    rec.pending = None
                rec.state = replace(rec.state, alive=False, busy=False)
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(2.0)
        for camera in self.cameras:
            self._notify(camera)

    def state(self, camera: str) -> CameraState:
        """The camera's state now (KeyError for an unknown camera)."""
        with self._cond:
            return self._records[camera].state

    def states(self) -> dict[str, CameraState]:
        """{camera: its state now}, in the run's camera order."""
        with self._cond:
            return {camera: rec.state for camera, rec in self._records.items()}

    def trigger(self, camera: str, source: str = "api") -> int:
        """Ask for a verdict of `camera`'s next frame; the trigger id, or 0 when refused (see above)."""
        with self._cond:
            rec = self._records.get(camera)
            if rec is None or self._stopped:
                return 0
            if rec.pending is not None:
                rec.state = replace(rec.state, overruns=rec.state.overruns + 1)
                overruns = rec.state.overruns
            else:
                overruns = 0
                rec.next_trigger += 1
                tid = rec.next_trigger
                due = time.monotonic() + self.config.deadline_s
                rec.pending = Pending(tid, time.time(), due, source)
                rec.state = replace(rec.state, busy=True, result_ready=False, trigger_id=tid)
                heapq.heappush(self._due, (due, next(self._seq), camera, tid))
                self._cond.notify_all()
        if overruns:
            (log.warning if overruns == 1 or overruns % 100 == 0 else log.debug)(
                "camera %s: trigger from %s while busy: overrun %d (refused, the waiting trigger stays)",
                camera, source, overruns)
        self._notify(camera)
        return 0 if overruns else tid

    def acknowledge(self, camera: str, source: str = "api") -> bool:
        """The PLC has read the result: result_ready goes False. True when a result was ready."""
        with self._cond:
            rec = self._records.get(camera)
            was = rec is not None and rec.state.result_ready
            if was:
                rec.state = replace(rec.state, result_ready=False)
        self._notify(camera)
        return was

    def select_recipe(self, camera: str, number: int, source: str = "api") -> bool:
        """Judge `camera` with recipe `number`'s line from its next frame on. An unknown number is
        answered ERROR / UNKNOWN_RECIPE (result_ready set unless a trigger is waiting), counted as a
        refused write, and the recipe in use stays. True when the recipe was taken."""
        line = self.recipes.get(number) if isinstance(number, int) and not isinstance(number, bool) else None
        with self._cond:
            rec = self._records.get(camera)
            if rec is None:
                return False
            if line is None:
                st = rec.state
                rec.state = replace(st, refused_writes=st.refused_writes + 1)
                if not st.busy:
                    rec.state = replace(rec.state, result=Result.ERROR, code=Code.UNKNOWN_RECIPE,
                                        result_ready=True, answered_trigger=0)
            else:
                previous = rec.state.line
                rec.state = replace(rec.state, recipe=number, line=line)
        (log.info if line else log.warning)("camera %s: recipe %r from %s: %s", camera, number, source,
                                             f"line {line} (was {previous}) from the next frame" if line else
                                             f"not one of {sorted(self.recipes)}; the recipe in use stays")
        self._notify(camera)
        return line is not None

    def refuse(self, camera: str | None, what: str, source: str = "api") -> None:
        """Count a bad write an adapter ignored (`what`: one sentence for the log)."""
        with self._cond:
            rec = self._records.get(camera) if camera is not None else None
            if rec is not None:
                rec.state = replace(rec.state, refused_writes=rec.state.refused_writes + 1)
                count = rec.state.refused_writes
            else:
                self.refused_other += 1
                count = self.refused_other
        if count == 1 or count % 100 == 0:
            log.warning("%s: ignored a bad write%s (%d so far): %s", source, f" for camera {camera}" if camera else "",
                        count, what)
        if rec is not None:
            self._notify(camera)

    def admit(self, camera: str, captured_at: float) -> Admission | None:
        """A frame of `camera` captured at `captured_at` (wall clock, seconds) reached the source:
        the Admission to judge it with, or None to hold it back (triggered camera, no trigger waiting)."""
        with self._cond:
            rec = self._records.get(camera)
            if rec is None:
                return Admission(None, 0)
            now = time.monotonic()
            rec.last_frame = now
            pending, trigger_id = rec.pending, None
            if pending is not None and not pending.claimed and captured_at >= pending.accepted_at:
                pending.claimed, trigger_id = True, pending.trigger_id
            elif rec.state.mode != "free":
                return None
            if rec.unanswered_since is None:
                rec.unanswered_since = now
            return Admission(rec.state.line, rec.state.recipe, trigger_id)

    def on_verdict(self, payload: dict) -> None:
        """A verdict payload of the chain: answers its trigger (payload["trigger"]), or on a free camera
        with no trigger waiting becomes the current result. Adds "result" / "error_code" to a trigger's
        answer, and "late": true to a verdict whose trigger was already answered by its deadline."""
        camera = payload.get("camera")
        if payload.get("deadline_missed") or not isinstance(camera, str):
            return
        tid = payload.get("trigger")
        with self._cond:
            rec = self._records.get(camera)
            if rec is None:
                return
            rec.unanswered_since = None
            pending = rec.pending
            if tid is not None and pending is not None and pending.trigger_id == tid:
                result, code = result_of(payload)
                answer(rec, result, code, payload, tid)
                rec.pending = None
                payload.update(result=result.name, error_code=int(code))
            elif tid is not None:
                rec.state = replace(rec.state, late=rec.state.late + 1)
                payload["late"] = True
            elif rec.state.mode == "free" and pending is None:
                answer(rec, *result_of(payload), payload, 0)
            else:
                return
        self._notify(camera)

    def set_online(self, camera: str, online: bool) -> None:
        """The camera's own status: False while it is reconnecting or offline."""
        with self._cond:
            if camera in self._records:
                self._records[camera].online = bool(online)

    def _wait_for_work(self, next_beat: float) -> float:
        """Sleep (lock held) until the heartbeat or the earliest deadline is due; monotonic now."""
        while not self._stopped:
            now = time.monotonic()
            wake = min(next_beat, self._due[0][0]) if self._due else next_beat
            if wake <= now:
                return now
            self._cond.wait(wake - now)
        return time.monotonic()

    def _clock(self) -> None:
        period = self.config.heartbeat_s
        next_beat = time.monotonic() + period
        while True:
            missed, changed = [], set()
            with self._cond:
                now = self._wait_for_work(next_beat)
                if self._stopped:
                    return
                while self._due and self._due[0][0] <= now:
                    _, _, camera, tid = heapq.heappop(self._due)
                    payload = miss(self._records.get(camera), tid, self.config.deadline_s)
                    if payload is not None:
                        missed.append(payload)
                        changed.add(camera)
                if now >= next_beat:
                    tick(self._records.values(), now, self.config.heartbeat_s)
                    changed.update(self._records)
                    next_beat = max(next_beat + period, now + period / 2)
            for camera in changed:
                self._notify(camera)
            for payload in missed:
                log.warning("camera %s: %s (NG, code %d)", payload["camera"], payload["reason"], payload["error_code"])
                if self.on_miss is not None:
                    try:
                        self.on_miss(payload)
                    except Exception:  # the clock must keep answering deadlines
                        log.exception("publishing a deadline miss failed")

    def _notify(self, camera: str) -> None:
        """Hand every listener the camera's newest state; serialised, so the last write is the newest."""
        with self._notify_lock:
            try:
                snapshot = self.state(camera)
            except KeyError:
                return
            for fn in list(self._listeners):
                try:
                    fn(camera, snapshot)
                except Exception:  # an adapter's failure must not stop the station
                    log.exception("a station listener failed for camera %s", camera)
