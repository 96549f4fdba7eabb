"""Two RTSP cameras on one line: frames become verdicts over MQTT, and a camera that drops comes back."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
from pipeline_support import LINE, REPO, patchline, prepare_trained_line


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    return prepare_trained_line(tmp_path_factory.getbasetemp() / "pipeline-line")


def states(messages, camera):
    return [p["state"] for t, p, _ in messages if t.endswith(f"/{camera}/status")]


def verdict_count(messages, camera):
    return sum(1 for t, _, _ in messages if t.endswith(f"/{camera}/verdict"))


def test_cameras_give_verdicts_and_reconnect_after_the_server_returns(line, tmp_path, mosquitto_broker,
                                                                      mqtt_collector, rtsp_server):
    good = sorted(line.frames.glob("good_*.png"))
    defect = sorted(line.frames.glob("defect_*.png"))
    cameras = {"camera1": rtsp_server(frames=good, path="camera1", fps=10),
               "camera2": rtsp_server(frames=defect, path="camera2", fps=10)}
    config = json.loads((REPO / "pipeline" / "rtsp_camera.pipeline").read_text())
    assert set(config) == set(cameras)
    for name, server in cameras.items():
        config[name]["mxpi_rtspsrc0"]["props"]["rtspUrl"] = server.url
    path = tmp_path / "cameras.pipeline"
    path.write_text(json.dumps(config))
    collector = mqtt_collector(mosquitto_broker.url, [f"patchline/{LINE}/#"])
    proc = subprocess.Popen(patchline("run", str(path), "--mqtt", mosquitto_broker.url, "--line", LINE,
                                      "--spool", str(tmp_path / "spool")),
                            cwd=line.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        collector.wait_for(lambda m: verdict_count(m, "camera1") >= 3 and verdict_count(m, "camera2") >= 3, 90)
        verdicts = collector.payloads("camera2/verdict")
        assert all(v["source"] == cameras["camera2"].url and v["verdict"] in ("good", "defect") for v in verdicts)
        assert collector.payloads("camera2/alarm"), "defect frames on camera2 raise alarms"
        assert "online" in states(collector.snapshot(), "camera1")

        cameras["camera1"].stop()
        collector.wait_for(lambda m: "reconnecting" in states(m, "camera1"), timeout=30)
        before = verdict_count(collector.snapshot(), "camera1")
        cameras["camera1"].start()
        collector.wait_for(lambda m: states(m, "camera1")[-1:] == ["online"]
                           and verdict_count(m, "camera1") > before + 2, timeout=60)
        assert proc.poll() is None, "the process survived the camera outage"
        assert verdict_count(collector.snapshot(), "camera2") > 3
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert "stream camera1" in out and "stream camera2" in out
    collector.wait_for(lambda m: states(m, "camera1")[-1:] == ["offline"] and states(m, "camera2")[-1:] == ["offline"])
