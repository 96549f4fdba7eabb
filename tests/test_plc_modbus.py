"""patchline as an inspection station on Modbus TCP: a real pymodbus client is the PLC, the run is the
shipped pipeline on a trained line (ONNX Runtime + faiss), frames from a looping folder read at a
camera's pace. The handshake for OK and NG frames, deadline misses answered NG, a trigger storm
counted as overruns, recipes switched between frames, the PLC reconnecting, bad writes refused."""

from __future__ import annotations

import threading

import pytest
from plc_support import OTHER, Plc, line, running  # noqa: F401  (line: the module's trained lines)

from patchline.app.run_settings import PlcOptions, RunSettings
from patchline.app.sinks import Sink
from patchline.mqtt.local_broker import free_port
from patchline.plc.modbus import BLOCK, RECIPE, TRIGGER
from patchline.plc.state import Code, Result, StationConfig
from pipeline_support import LINE, REPO

SHIPPED = REPO / "pipeline" / "folder_layer2_layer3.pipeline"


class Collect(Sink):
    """Every verdict payload the run's sinks see (thread-safe)."""

    def __init__(self):
        self.payloads, self.lock = [], threading.Lock()

    def verdict(self, verdict):
        with self.lock:
            self.payloads.append(dict(verdict.payload))

    def of_trigger(self, trigger_id: int) -> list[dict]:
        with self.lock:
            return [p for p in self.payloads if p.get("trigger") == trigger_id]


def _settings(line, port, triggered=True, deadline_ms=2000, fps=25.0, recipes=((1, LINE), (2, OTHER))):
    station = StationConfig(triggered, deadline_ms / 1000, 0.5, recipes)
    return RunSettings(SHIPPED, (str(line.frames),), camera="cam", line=LINE, loop_folder=True, folder_fps=fps,
                       quiet=True, plc=PlcOptions(station, ("127.0.0.1", port)))


@pytest.fixture
def station_run(line, monkeypatch):
    """station_run(**settings) → (Plc, Collect): the run and its PLC, stopped at teardown."""
    monkeypatch.chdir(line.workdir)
    stack = []

    def start(**options):
        port, collect = free_port(), Collect()
        context = running(_settings(line, port, **options), [collect])
        context.__enter__()
        stack.append(context)
        plc = Plc(port)
        stack.append(plc)
        plc.wait(lambda r: r["heartbeat"] >= 1)  # the first frame has arrived (the heartbeat counted it)
        return plc, collect

    yield start
    for item in reversed(stack):
        item.close() if isinstance(item, Plc) else item.__exit__(None, None, None)


def test_the_handshake_answers_ok_and_ng_frames_with_their_verdicts(station_run):
    plc, collect = station_run()
    seen = set()
    for _ in range(80):
        regs = plc.inspect()
        assert regs["busy"] == 0 and regs["status"] == 3  # alive, triggered
        payload, = collect.of_trigger(regs["trigger_id"])  # exactly one verdict answers each trigger
        want = {"good": Result.OK, "defect": Result.NG}.get(payload["verdict"], Result.NG)
        assert regs["result"] == want and payload["result"] == want.name
        if payload["verdict"] == "error":
            assert regs["error_code"] == Code.FRAME_ERROR
        else:
            assert regs["error_code"] == Code.NONE
            assert regs["score_x100"] == min(65535, round(payload["score"] * 100))
            assert regs["threshold_x100"] == round(payload["threshold"] * 100)
        assert payload["line"] == LINE and payload["recipe"] == 1
        assert plc.regs()["result_ready"] == 0  # acknowledged
        seen.add(want)
        if {Result.OK, Result.NG} <= seen:
            break
    assert {Result.OK, Result.NG} <= seen
    assert all("trigger" in p for p in collect.payloads)  # triggered: no frame judged unasked


def test_a_stalled_camera_is_answered_ng_by_the_deadline_every_time(station_run):
    plc, collect = station_run(deadline_ms=40, fps=0.05)  # after its first frame, the next comes in 20 s
    answers = [plc.inspect() for _ in range(4)]
    for regs in answers:
        assert (regs["result"], regs["error_code"]) == (Result.NG, Code.CAMERA_OFFLINE)
        miss, = [p for p in collect.of_trigger(regs["trigger_id"]) if p.get("deadline_missed")]
        assert miss["result"] == "NG" and miss["error_code"] == regs["error_code"] and miss["verdict"] == "error"
    assert plc.regs()["deadline_misses"] == 4


def test_a_trigger_storm_is_counted_as_overruns_never_merged(station_run):
    plc, collect = station_run(fps=5.0)
    plc.wait(lambda r: not r["busy"])
    before = plc.regs()
    writes = 30
    for _ in range(writes):
        assert plc.trigger()
    regs = plc.wait(lambda r: not r["busy"])
    accepted = regs["results"] - before["results"]
    assert accepted >= 1 and regs["overruns"] - before["overruns"] == writes - accepted
    assert len([p for p in collect.payloads if p.get("trigger", 0) > before["trigger_id"]]) == accepted


def test_recipes_switch_between_frames_and_an_unknown_recipe_is_refused(station_run, line):
    plc, collect = station_run(triggered=False, fps=20.0)
    plc.wait(lambda r: r["results"] >= 3)
    assert plc.regs()["recipe"] == 1
    assert plc.recipe(2)
    switched_at = len(collect.payloads)
    plc.wait(lambda r: r["results"] >= 3 and len(collect.payloads) >= switched_at + 6)
    lines = [p["line"] for p in collect.payloads]
    first_other = lines.index(OTHER)
    assert set(lines[:first_other]) == {LINE} and set(lines[first_other:]) == {OTHER}  # one switch, no mix
    versions = {(p["line"], p["recipe"], p["bank_version"]) for p in collect.payloads}
    current = {name: (line.workdir / "faiss-index-precision" / name / "CURRENT").read_text().strip()
               for name in (LINE, OTHER)}
    assert versions == {(LINE, 1, current[LINE]), (OTHER, 2, current[OTHER])}
    refused = plc.regs()["refused_writes"]
    assert plc.recipe(99)  # a valid Modbus value, but no such recipe: the station answers ERROR
    regs = plc.wait(lambda r: r["result"] == Result.ERROR)
    assert regs["error_code"] == Code.UNKNOWN_RECIPE and regs["recipe"] == 2
    assert regs["refused_writes"] == refused + 1
    n = len(collect.payloads)
    plc.wait(lambda r: len(collect.payloads) >= n + 3)
    assert {p["line"] for p in collect.payloads[n:]} == {OTHER}


def test_the_plc_may_disconnect_mid_handshake_and_reconnect(station_run):
    plc, _ = station_run()
    plc.inspect()
    assert plc.trigger()
    plc.close()  # gone before reading its result
    again = Plc(plc.port)
    try:
        regs = again.wait(lambda r: r["result_ready"])  # the result waits for whoever acknowledges it
        assert regs["busy"] == 0 and regs["result"] in (Result.OK, Result.NG)
        assert again.acknowledge() and again.regs()["result_ready"] == 0
        assert again.inspect()["result"] in (Result.OK, Result.NG)
    finally:
        again.close()


def test_bad_register_writes_are_refused_and_counted_never_applied(station_run):
    plc, _ = station_run()
    start = plc.regs()["refused_writes"]
    assert not plc.write(3, 1)  # busy: read-only
    assert not plc.write(TRIGGER, 7)  # trigger takes 0 or 1
    assert not plc.write(RECIPE, 0)  # no recipe 0
    both = plc.client.write_registers(TRIGGER, [1, 1], device_id=1)  # trigger and busy: the whole write refused
    assert both.isError()
    assert plc.client.write_coil(TRIGGER, True, device_id=1).isError()  # no register is a bit
    assert plc.client.write_register(BLOCK * 5, 1, device_id=1).isError()  # beyond the map
    regs = plc.regs()
    assert regs["refused_writes"] - start == 4 and regs["busy"] == 0 and regs["recipe"] == 1
    assert plc.write(TRIGGER, 0)  # 0 is allowed: nothing happens
    assert plc.inspect()["result"] in (Result.OK, Result.NG)  # still answering
