"""run_alarms against a real broker: one line per alarm, JSON lines, unreachable broker."""

from __future__ import annotations

import io
import json
import threading
import time

import pytest

from conftest import said
from patchline.app.alarms import format_alarm, run_alarms
from patchline.errors import PatchlineError
from patchline.mqtt.broker import BrokerSettings
from patchline.mqtt.publisher import Publisher

pytestmark = pytest.mark.runtime  # runs in the runtime-only install too (scripts/runtime_check.sh)


def _alarm(i: int, camera: str = "cam1") -> dict:
    return {"frame_id": i, "camera": camera, "verdict": "defect", "score": 3.25, "threshold": 1.5,
            "timestamp": f"2024-05-01T12:00:0{i}.000Z", "region": {"bbox": [10, 20, 50, 60], "area": 321},
            "source": "rtsp://10.0.0.5/cam1"}


def _run_in_thread(**kwargs):
    """run_alarms in a thread, returned once it is subscribed (it logs so after the SUBACK)."""
    out = io.StringIO()
    box = {}
    with said("patchline.mqtt", "listening for alarms") as subscribed:
        t = threading.Thread(target=lambda: box.setdefault("rc", run_alarms(out=out, **kwargs)), daemon=True)
        t.start()
        assert subscribed.wait(15)
    return t, out, box


def _publish(url, tmp_path, line, items):
    pub = Publisher(BrokerSettings.from_url(url), line, ["cam1", "cam2"], tmp_path / f"spool-{line}",
                    reconnect_delay=(0.1, 0.5))
    pub.start()
    for payload in items:
        pub.publish_result(payload)
    assert pub.wait_idle(5)
    pub.close(timeout=2)


def test_prints_one_human_line_per_alarm(mosquitto_broker, tmp_path):
    t, out, box = _run_in_thread(url=mosquitto_broker.url, line="L1", json_lines=False, count=3, timeout=20)
    good = {"frame_id": 99, "camera": "cam1", "verdict": "good", "score": 0.1, "threshold": 1.5}
    _publish(mosquitto_broker.url, tmp_path, "L2", [_alarm(8)])  # another line: filtered out
    _publish(mosquitto_broker.url, tmp_path, "L1", [_alarm(1), good, _alarm(2, "cam2"), _alarm(3)])
    t.join(20)
    assert not t.is_alive() and box["rc"] == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("2024-05-01T12:00:01.000Z")
    for field in ("line=L1", "camera=cam1", "score=3.25/1.5", "region=[10,20,50,60] area=321",
                  "source=rtsp://10.0.0.5/cam1", "frame=1"):
        assert field in lines[0]
    assert "camera=cam2" in lines[1]


def test_json_lines(mosquitto_broker, tmp_path):
    t, out, box = _run_in_thread(url=mosquitto_broker.url, line=None, json_lines=True, count=2, timeout=20)
    _publish(mosquitto_broker.url, tmp_path, "L1", [_alarm(1)])
    _publish(mosquitto_broker.url, tmp_path, "L2", [_alarm(2)])
    t.join(20)
    rows = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [(r["line"], r["frame_id"]) for r in rows] == [("L1", 1), ("L2", 2)]


def test_timeout_ends_quietly(mosquitto_broker):
    start = time.monotonic()
    out = io.StringIO()
    assert run_alarms(mosquitto_broker.url, None, False, timeout=0.5, out=out) == 0
    assert out.getvalue() == "" and time.monotonic() - start < 5


def test_unreachable_broker_is_one_sentence():
    from conftest import free_port

    start = time.monotonic()
    with pytest.raises(PatchlineError) as err:
        run_alarms(f"mqtt://127.0.0.1:{free_port()}", None, False, timeout=5)
    msg = str(err.value)
    assert msg.startswith("cannot reach the MQTT broker at 127.0.0.1:") and msg.endswith(".") and "\n" not in msg
    assert time.monotonic() - start < 5


def test_format_alarm_tolerates_missing_fields():
    line = format_alarm({"verdict": "defect"}, "patchline/L3/camX/alarm")
    assert "line=L3" in line and "camera=camX" in line and "score=-/-" in line and "region=-" in line


def test_patchline_alarms_command_prints_alarms_and_exits_cleanly(mosquitto_broker, tmp_path):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "patchline.cli", "alarms", "--mqtt", mosquitto_broker.url,
                             "--line", "L1", "--json", "--count", "1", "--timeout", "30"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for row in proc.stderr:  # subscribed: it says so on stderr after the SUBACK
        if "listening for alarms" in row:
            break
    else:
        raise AssertionError("patchline alarms ended before it subscribed")
    _publish(mosquitto_broker.url, tmp_path, "L1", [_alarm(5)])
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert json.loads(out.strip())["frame_id"] == 5


def test_patchline_alarms_command_with_a_dead_broker_says_one_sentence():
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run([sys.executable, "-m", "patchline.cli", "alarms", "--mqtt", f"mqtt://127.0.0.1:{port}",
                           "--timeout", "5"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "cannot reach the MQTT broker" in done.stderr and "Traceback" not in done.stderr
