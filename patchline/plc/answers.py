"""How the station turns verdicts, deadlines and heartbeat ticks into a camera's state (called with
the station's lock held; each function changes one CameraRecord and returns what the caller needs)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Iterable

from patchline.plc.state import CameraRecord, Code, Result
from patchline.timestamps import iso_utc


def result_of(payload: dict) -> tuple[Result, Code]:
    """(Result, Code) of a verdict payload: good → OK, defect → NG, anything else (an error) → NG / FRAME_ERROR."""
    verdict = payload.get("verdict")
    if verdict == "good":
        return Result.OK, Code.NONE
    if verdict == "defect":
        return Result.NG, Code.NONE
    return Result.NG, Code.FRAME_ERROR


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def answer(rec: CameraRecord, result: Result, code: Code, payload: dict | None, tid: int) -> None:
    """Make (result, code) the camera's current answer, with the payload's score, threshold, frame id
    and line (None: a deadline or stop answer, no frame); tid: the trigger it answers (0: none)."""
    st = rec.state
    payload = payload or {}
    score, threshold = _number(payload.get("score")), _number(payload.get("threshold"))
    frame_id = payload.get("frame_id")
    rec.state = replace(st, busy=False, result_ready=True, result=result, code=code, score=score,
                        threshold=threshold if threshold is not None else st.threshold,
                        frame_id=frame_id if isinstance(frame_id, int) else st.frame_id,
                        result_line=payload.get("line") or st.line, answered_trigger=tid,
                        results=st.results + 1)


def miss(rec: CameraRecord | None, tid: int, deadline_s: float) -> dict | None:
    """Answer trigger `tid` NG by its deadline, if it still waits: DEADLINE (a frame was taken for it, or
    frames arrived, but no verdict in time), or CAMERA_OFFLINE when the camera is not online or sent no
    frame since the trigger. The verdict-like payload, or None."""
    if rec is None or rec.pending is None or rec.pending.trigger_id != tid:
        return None
    accepted = rec.pending.due - deadline_s  # monotonic
    frames = rec.pending.claimed or (rec.last_frame is not None and rec.last_frame >= accepted)
    code = Code.DEADLINE if rec.online and frames else Code.CAMERA_OFFLINE
    answer(rec, Result.NG, code, None, tid)
    rec.pending = None
    rec.state = replace(rec.state, deadline_misses=rec.state.deadline_misses + 1)
    why = "no frame judged" if code is Code.DEADLINE else "no frame from the camera"
    return {"camera": rec.state.camera, "line": rec.state.line, "recipe": rec.state.recipe, "trigger": tid,
            "timestamp": iso_utc(time.time()), "score": None, "verdict": "error",
            "reason": f"{why} within the {round(deadline_s * 1000)} ms deadline of trigger {tid}",
            "result": Result.NG.name, "error_code": int(code), "deadline_missed": True}


def alive(rec: CameraRecord, now: float, period: float) -> bool:
    """True when the camera's source delivered a frame within `period` and no admitted frame has waited
    longer than `period` for its verdict (a stalled camera or chain is not alive)."""
    frames = rec.last_frame is not None and now - rec.last_frame <= period
    answering = rec.unanswered_since is None or now - rec.unanswered_since <= period
    return frames and answering


def tick(records: Iterable[CameraRecord], now: float, period: float) -> None:
    """One heartbeat: alive cameras count up by one, the others keep their counter and show alive False."""
    for rec in records:
        up = alive(rec, now, period)
        rec.state = replace(rec.state, alive=up, heartbeat=rec.state.heartbeat + 1 if up else rec.state.heartbeat)
