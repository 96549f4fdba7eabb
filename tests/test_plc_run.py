"""`patchline run` as an inspection station from the command line: Modbus and MQTT triggers, MQTT recipe
changes and the verdicts that name their trigger and line, one-sentence refusals of bad options; and
a real RTSP camera that stalls: the heartbeat stops, triggers are answered NG, and it all comes back."""

from __future__ import annotations

import json
import subprocess
import time

import paho.mqtt.publish as publish
import pytest
from plc_support import OTHER, Plc, line, running, stop_station  # noqa: F401  (line: the trained lines brick, brick-b)

from patchline.app.run_settings import PlcOptions, RunSettings
from patchline.mqtt.local_broker import free_port
from patchline.plc.state import Code, Result, StationConfig
from pipeline_support import LINE, REPO, patchline

SHIPPED = REPO / "pipeline" / "folder_layer2_layer3.pipeline"


def _send(broker, topic: str, payload) -> None:
    publish.single(topic, payload, qos=1, hostname=broker.host, port=broker.port)


def test_the_cli_station_answers_modbus_and_mqtt_triggers_and_switches_recipes(line, tmp_path, mosquitto_broker,
                                                                               mqtt_collector):
    port = free_port()
    collector = mqtt_collector(mosquitto_broker.url, ["patchline/#"])
    proc = subprocess.Popen(patchline("run", str(SHIPPED), "--source", str(line.frames), "--loop", "--fps", "25",
                                      "--camera", "cam", "--line", LINE, "--mqtt", mosquitto_broker.url,
                                      "--spool", str(tmp_path / "spool"), "--modbus", f"127.0.0.1:{port}",
                                      "--triggered", "--recipe", f"1={LINE}", "--recipe", f"2={OTHER}"),
                            cwd=line.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    plc = None
    try:
        plc = Plc(port, timeout=120)
        plc.wait(lambda r: r["status"] & 1, timeout=60)
        regs = plc.inspect()
        verdict = collector.wait_for(lambda m: [p for t, p, _ in m if t == f"patchline/{LINE}/cam/verdict"
                                                and p.get("trigger") == regs["trigger_id"]])[0]
        assert verdict["result"] == Result(regs["result"]).name and verdict["recipe"] == 1

        results = plc.regs()["results"]
        _send(mosquitto_broker, "patchline/cam/trigger", "{}")  # a trigger over MQTT
        regs = plc.wait(lambda r: r["results"] == results + 1 and r["result_ready"])
        collector.wait_for(lambda m: any(p.get("trigger") == regs["trigger_id"] for t, p, _ in m
                                         if t.endswith("/cam/verdict")))

        _send(mosquitto_broker, "patchline/cam/recipe", json.dumps({"recipe": 2}))
        plc.wait(lambda r: r["recipe"] == 2)
        regs = plc.inspect()
        other = collector.wait_for(lambda m: [p for t, p, _ in m if t == f"patchline/{OTHER}/cam/verdict"
                                              and p.get("trigger") == regs["trigger_id"]])[0]
        assert other["line"] == OTHER and other["recipe"] == 2

        refused = plc.regs()["refused_writes"]
        for bad in ('{"recipe": "two"}', "[2]", "x" * 2000, '{"recipe": 99}'):
            _send(mosquitto_broker, "patchline/cam/recipe", bad)
        regs = plc.wait(lambda r: r["refused_writes"] == refused + 4)
        assert regs["recipe"] == 2 and proc.poll() is None

        # the camera's MQTT status carries the counters the PLC reads in its registers (every 5 s)
        status = collector.wait_for(lambda m: [p for t, p, _ in m if t.endswith("/cam/status") and "plc" in p
                                               and p["plc"]["refused_writes"] >= refused + 4], timeout=30)[-1]["plc"]
        regs = plc.regs()
        assert status["mode"] == "triggered" and status["recipe"] == 2
        assert 3 <= status["results"] <= regs["results"] and status["triggers"] >= status["results"]
        assert status["overruns"] <= regs["overruns"] and status["deadline_misses"] <= regs["deadline_misses"]
    finally:
        out, err = stop_station(proc, plc)
    assert proc.returncode == 0, err[-3000:]
    assert "plc cam (triggered, recipe 2, line brick-b)" in out


@pytest.mark.parametrize("args, words", [
    (["--triggered"], "--triggered needs a way for triggers to arrive"),
    (["--modbus", "nonsense"], "is not [HOST]:PORT"),
    (["--modbus", ":70000"], "is not [HOST]:PORT"),
    (["--recipe", "0=brick"], "is not N=LINE"),
    (["--recipe", "1=../brick"], "line name"),
    (["--recipe", "1=brick", "--recipe", "1=brick"], "--recipe 1 is given twice"),
    (["--deadline-ms", "0"], "--deadline-ms"),
    (["--recipe", "1=no-such-line"], "no-such-line"),
    (["--opcua-cert", str(REPO / "README.md")], "need --opcua opc.tcp://HOST:PORT"),
    (["--opcua", "opc.tcp://127.0.0.1:4999", "--opcua-users", str(REPO / "README.md")], "needs --opcua-cert"),
    (["--opcua", "opc.tcp://127.0.0.1:4999", "--opcua-cert", str(REPO / "README.md"), "--opcua-key",
      str(REPO / "README.md")], "is not an X.509 certificate"),
])
def test_bad_station_options_end_in_one_sentence(line, args, words):
    done = subprocess.run(patchline("run", str(SHIPPED), "--source", str(line.frames), "--line", LINE, *args),
                          cwd=line.workdir, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2, done.stderr


def test_a_stalled_camera_stops_the_heartbeat_and_its_triggers_are_answered_ng(line, tmp_path, rtsp_server,
                                                                              monkeypatch):
    camera = rtsp_server(frames=sorted(line.frames.glob("good_*.png")), path="cam", fps=10)
    config = json.loads((REPO / "pipeline" / "rtsp_camera.pipeline").read_text())
    stream = config["camera1"]
    stream["mxpi_rtspsrc0"]["props"]["rtspUrl"] = camera.url
    path = tmp_path / "camera.pipeline"
    path.write_text(json.dumps({"cam": stream}))
    monkeypatch.chdir(line.workdir)
    port, period = free_port(), 0.5
    settings = RunSettings(path, line=LINE, quiet=True,
                           plc=PlcOptions(StationConfig(False, 0.2, period), ("127.0.0.1", port)))
    with running(settings):
        plc = Plc(port)
        first = plc.wait(lambda r: r["status"] & 1, timeout=60)["heartbeat"]
        plc.wait(lambda r: r["heartbeat"] >= first + 3)  # counting while frames flow
        camera.stop()
        stopped = plc.wait(lambda r: not r["status"] & 1, timeout=30)["heartbeat"]
        time.sleep(4 * period)
        assert plc.regs()["heartbeat"] == stopped  # it stays stopped while the camera is away
        regs = plc.inspect()
        assert (regs["result"], regs["error_code"]) == (Result.NG, Code.CAMERA_OFFLINE)
        camera.start()
        plc.wait(lambda r: r["status"] & 1 and r["heartbeat"] > stopped, timeout=60)
        assert plc.inspect(timeout=30)["result"] in (Result.OK, Result.NG)
        plc.close()
