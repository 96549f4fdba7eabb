"""The protocol-neutral station (patchline/plc/station.py): triggers, deadlines, overruns, recipes,
heartbeat. Frames and verdicts are fed the way the run feeds them (admit at the source, on_verdict
at the end); the protocol adapters have their own tests against real clients."""

from __future__ import annotations

import threading
import time

import pytest

from patchline.errors import ConfigError
from patchline.plc.state import Code, Result, StationConfig
from patchline.plc.station import Station

pytestmark = pytest.mark.runtime


def _station(triggered=True, deadline_s=0.2, heartbeat_s=1.0, recipes=((1, "mono"), (2, "poly")), on_miss=None):
    station = Station(StationConfig(triggered, deadline_s, heartbeat_s, recipes), on_miss=on_miss)
    station.add_camera("cam", "mono")
    station.start()
    return station


def _verdict(station, admission, verdict="good", score=1.5, frame_id=7):
    payload = {"camera": "cam", "line": admission.line, "verdict": verdict, "score": score, "threshold": 2.0,
               "frame_id": frame_id}
    if admission.trigger_id is not None:
        payload["trigger"] = admission.trigger_id
    station.on_verdict(payload)
    return payload


def _wait(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_trigger_is_answered_by_the_first_frame_captured_after_it():
    station = _station()
    try:
        assert station.admit("cam", time.time()) is None  # triggered, nothing asked: held back
        before = time.time() - 0.001
        tid = station.trigger("cam", "test")
        assert tid == 1 and station.state("cam").busy and not station.state("cam").result_ready
        assert station.admit("cam", before) is None  # captured before the trigger
        admission = station.admit("cam", time.time())
        assert admission.trigger_id == tid and admission.line == "mono" and admission.recipe == 1
        assert station.admit("cam", time.time()) is None  # the trigger is claimed: the next frame waits
        payload = _verdict(station, admission, "defect", 3.25)
        st = station.state("cam")
        assert (st.busy, st.result_ready, st.result, st.code) == (False, True, Result.NG, Code.NONE)
        assert (st.score, st.threshold, st.frame_id, st.answered_trigger, st.results) == (3.25, 2.0, 7, 1, 1)
        assert payload["result"] == "NG" and payload["error_code"] == 0
        assert station.acknowledge("cam", "test") and not station.state("cam").result_ready
        tid2 = station.trigger("cam", "test")
        _verdict(station, station.admit("cam", time.time()), "error", None)
        st = station.state("cam")
        assert (tid2, st.result, st.code) == (2, Result.NG, Code.FRAME_ERROR)
    finally:
        station.close()


def test_no_verdict_by_the_deadline_is_answered_ng_and_a_late_verdict_is_marked():
    missed = []
    station = _station(deadline_s=0.1, on_miss=missed.append)
    try:
        station.admit("cam", time.time())  # the camera delivers frames
        tid = station.trigger("cam", "test")
        admission = station.admit("cam", time.time())
        _wait(lambda: station.state("cam").result_ready)
        st = station.state("cam")
        assert (st.result, st.code, st.deadline_misses, st.busy, st.answered_trigger) == \
            (Result.NG, Code.DEADLINE, 1, False, tid)
        _wait(lambda: missed)
        assert missed[0]["trigger"] == tid and missed[0]["error_code"] == Code.DEADLINE and missed[0]["deadline_missed"]
        late = _verdict(station, admission)
        assert late["late"] is True and station.state("cam").late == 1
        assert station.state("cam").result == Result.NG  # the late OK does not replace the fail-safe answer
    finally:
        station.close()


def test_a_camera_that_sends_nothing_is_answered_camera_offline():
    station = _station(deadline_s=0.05)
    try:
        station.trigger("cam", "test")
        _wait(lambda: station.state("cam").result_ready)
        assert station.state("cam").code == Code.CAMERA_OFFLINE
    finally:
        station.close()


def test_a_trigger_while_busy_is_an_overrun_and_the_waiting_trigger_stays():
    station = _station(deadline_s=5.0)
    try:
        tid = station.trigger("cam", "test")
        assert [station.trigger("cam", "test") for _ in range(5)] == [0] * 5
        st = station.state("cam")
        assert (st.overruns, st.trigger_id, st.busy) == (5, tid, True)
        _verdict(station, station.admit("cam", time.time()))
        assert station.state("cam").answered_trigger == tid and station.trigger("cam", "test") == tid + 1
    finally:
        station.close()


def test_a_recipe_switch_applies_from_the_next_frame_and_an_unknown_recipe_is_refused():
    station = _station(triggered=False)
    try:
        first = station.admit("cam", time.time())
        assert station.select_recipe("cam", 2, "test")
        second = station.admit("cam", time.time())
        assert (first.line, first.recipe, second.line, second.recipe) == ("mono", 1, "poly", 2)
        assert not station.select_recipe("cam", 9, "test")
        st = station.state("cam")
        assert (st.recipe, st.line, st.result, st.code, st.refused_writes) == (2, "poly", Result.ERROR,
                                                                             Code.UNKNOWN_RECIPE, 1)
        assert station.admit("cam", time.time()).line == "poly"
    finally:
        station.close()


def test_a_free_camera_reports_every_verdict_but_a_waiting_trigger_only_its_own():
    station = _station(triggered=False, deadline_s=5.0)
    try:
        _verdict(station, station.admit("cam", time.time()), "good", 1.0, frame_id=1)
        assert station.state("cam").results == 1 and station.state("cam").answered_trigger == 0
        old = station.admit("cam", time.time() - 1.0)  # in flight, captured before the trigger
        tid = station.trigger("cam", "test")
        _verdict(station, old, "defect", frame_id=2)
        assert station.state("cam").busy and station.state("cam").results == 1
        _verdict(station, station.admit("cam", time.time()), "good", frame_id=3)
        st = station.state("cam")
        assert (st.answered_trigger, st.frame_id, st.result) == (tid, 3, Result.OK)
    finally:
        station.close()


def test_the_heartbeat_counts_while_frames_flow_and_stops_within_two_periods():
    period = 0.1
    station = _station(triggered=False, heartbeat_s=period)
    stop = threading.Event()

    def camera():
        while not stop.is_set():
            a = station.admit("cam", time.time())
            _verdict(station, a)
            time.sleep(0.01)

    feeder = threading.Thread(target=camera)
    feeder.start()
    try:
        _wait(lambda: station.state("cam").heartbeat >= 3)
        assert station.state("cam").alive
        stop.set()
        feeder.join()
        stalled_at = time.monotonic()
        beat = station.state("cam").heartbeat
        _wait(lambda: not station.state("cam").alive)
        last = station.state("cam").heartbeat
        time.sleep(3 * period)
        assert station.state("cam").heartbeat == last and last - beat <= 2
        assert time.monotonic() - stalled_at < 5
    finally:
        stop.set()
        station.close()


def test_close_answers_a_waiting_trigger_stopped_and_refuses_new_ones():
    station = _station(deadline_s=5.0)
    tid = station.trigger("cam", "test")
    station.close()
    st = station.state("cam")
    assert (st.result, st.code, st.answered_trigger, st.alive) == (Result.NG, Code.STOPPED, tid, False)
    assert station.trigger("cam", "test") == 0


def test_listeners_see_every_change_with_the_newest_state():
    station = _station(deadline_s=5.0)
    seen = []
    station.add_listener(lambda camera, st: seen.append((camera, st.busy, st.result_ready)))
    try:
        station.trigger("cam", "test")
        _verdict(station, station.admit("cam", time.time()))
        station.acknowledge("cam", "test")
        assert seen[-3:] == [("cam", True, False), ("cam", False, True), ("cam", False, False)]
    finally:
        station.close()


@pytest.mark.parametrize("config, field", [
    (StationConfig(deadline_s=0), "--deadline-ms"),
    (StationConfig(heartbeat_s=100), "--heartbeat-ms"),
    (StationConfig(recipes=((0, "mono"),)), "--recipe"),
    (StationConfig(recipes=((1, "mono"), (1, "poly"))), "--recipe 1"),
    (StationConfig(recipes=((1, "../x"),)), "line"),
])
def test_a_bad_configuration_is_one_sentence_naming_the_option(config, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        config.check()
