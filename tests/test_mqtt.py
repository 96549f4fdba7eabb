"""Publisher against a real Mosquitto: QoS 1 delivery, retained status, Last Will, outages, bounds."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from patchline.errors import ConfigError, PatchlineError
from patchline.mqtt.broker import BrokerSettings
from patchline.mqtt.publisher import Publisher

pytestmark = pytest.mark.runtime  # runs in the runtime-only install too (scripts/runtime_check.sh)

FAST = (0.1, 0.5)  # reconnect delays for tests


def result(i: int, camera: str = "cam1", defect: bool = False) -> dict:
    return {"frame_id": i, "camera": camera, "verdict": "defect" if defect else "good",
            "score": np.float32(2.5 if defect else 0.5), "threshold": 1.0, "aggregation": "max",
            "bank_version": "v1", "latency_ms": 12.5, "source": "rtsp://127.0.0.1/cam1",
            **({"region": {"bbox": [1, 2, 30, 40], "area": 120}} if defect else {})}


def frame_ids(collector, suffix):
    return [p["frame_id"] for p in collector.payloads(suffix)]


def test_broker_settings_parse_and_hide_credentials(monkeypatch):
    s = BrokerSettings.from_url("mqtts://broker.plant:8884", username="u", password="hunter2")
    assert (s.host, s.port, s.tls) == ("broker.plant", 8884, True)
    assert "hunter2" not in repr(s) and "hunter2" not in str(s)
    assert BrokerSettings.from_url("mqtt://b").port == 1883
    monkeypatch.setenv("PATCHLINE_MQTT_USERNAME", "envuser")
    monkeypatch.setenv("PATCHLINE_MQTT_PASSWORD", "envpw")
    s = BrokerSettings.from_url("mqtt://b:1")
    assert (s.username, s.password) == ("envuser", "envpw")
    for bad in ("http://b:1", "mqtt://", "mqtt://b:99999", "b:1883", "mqtt://b:1/x"):
        with pytest.raises(ConfigError):
            BrokerSettings.from_url(bad)
    with pytest.raises(ConfigError) as err:
        BrokerSettings.from_url("ftp://user:secretpw@b:1")
    assert "secretpw" not in str(err.value)


def test_verdicts_once_alarms_for_defects_status_retained(mosquitto_broker, mqtt_collector, tmp_path):
    col = mqtt_collector(mosquitto_broker.url, ["patchline/#"])
    pub = Publisher(BrokerSettings.from_url(mosquitto_broker.url), "L1", ["cam1"], tmp_path / "spool",
                    reconnect_delay=FAST)
    pub.start()
    pub.set_status("cam1", "online", bank_version="v1", fps=12.5)
    for i in range(50):
        pub.publish_result(result(i, defect=i % 10 == 3))
    pub.publish_bank("v2")
    col.wait_for(lambda m: len(frame_ids(col, "/cam1/verdict")) >= 50 and len(col.payloads("/alarm")) >= 5)
    assert pub.wait_idle(5)
    assert frame_ids(col, "patchline/L1/cam1/verdict") == list(range(50))  # once each, in order
    assert frame_ids(col, "patchline/L1/cam1/alarm") == [3, 13, 23, 33, 43]
    alarm = col.payloads("/alarm")[0]
    assert alarm["verdict"] == "defect" and alarm["region"]["bbox"] == [1, 2, 30, 40] and alarm["line"] == "L1"
    col.wait_for(lambda m: any(t == "patchline/L1/bank" and p["version"] == "v2" for t, p, _ in m))
    st = pub.stats()
    assert st["delivered"] == 55 and st["queued"] == 0 and st["dropped_verdicts"] == 0
    assert not list((tmp_path / "spool").glob("*.json"))  # acknowledged alarms leave the spool
    pub.close(timeout=5)

    # A newcomer sees the retained status (offline after close) and bank version.
    late = mqtt_collector(mosquitto_broker.url, ["patchline/L1/+/status", "patchline/L1/bank"])
    late.wait_for(lambda m: len(m) >= 2)
    retained = {t: (p, r) for t, p, r in late.snapshot()}
    status, was_retained = retained["patchline/L1/cam1/status"]
    assert was_retained and status["state"] == "offline" and status["bank_version"] == "v2"
    assert {"fps", "dropped_verdicts", "dropped_alarms", "errors", "timestamp"} <= status.keys()
    assert retained["patchline/L1/bank"][0]["version"] == "v2"


def test_every_camera_offline_after_clean_close(mosquitto_broker, mqtt_collector, tmp_path):
    col = mqtt_collector(mosquitto_broker.url, ["patchline/L1/+/status"])
    pub = Publisher(BrokerSettings.from_url(mosquitto_broker.url), "L1", ["a", "b", "c"], tmp_path / "spool",
                    reconnect_delay=FAST)
    pub.start()
    for cam in "abc":
        pub.set_status(cam, "online")
    col.wait_for(lambda m: {p["camera"] for _, p, _ in m if p["state"] == "online"} == set("abc"))
    pub.close(timeout=5)
    col.wait_for(lambda m: {t.split("/")[2] for t, p, _ in m if p["state"] == "offline"} == set("abc"))


PUBLISHER_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from patchline.mqtt.broker import BrokerSettings
    from patchline.mqtt.publisher import Publisher
    url, spool, cams = sys.argv[1], Path(sys.argv[2]), sys.argv[3].split(",")
    pub = Publisher(BrokerSettings.from_url(url), "L9", cams, spool, reconnect_delay=(0.1, 0.5))
    pub.start()
    for cam in cams:
        pub.set_status(cam, "online", bank_version="v1")
    assert pub.wait_idle(10)
    print("READY", flush=True)
    time.sleep(60)
""")


def test_last_will_marks_every_camera_offline_on_kill(mosquitto_broker, mqtt_collector, tmp_path):
    col = mqtt_collector(mosquitto_broker.url, ["patchline/L9/+/status"])
    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER_SCRIPT, mosquitto_broker.url,
                             str(tmp_path / "spool"), "cam1,cam2"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "READY"
        col.wait_for(lambda m: {p["camera"] for _, p, _ in m if p["state"] == "online"} == {"cam1", "cam2"})
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        wills = col.wait_for(lambda m: [(t, p) for t, p, _ in m if p["state"] == "offline"]
                             if {t for t, p, _ in m if p["state"] == "offline"} ==
                             {"patchline/L9/cam1/status", "patchline/L9/cam2/status"} else None, timeout=10)
        assert all(p["reason"] == "connection lost" for _, p in wills)
    finally:
        proc.kill()
        proc.wait(5)
        proc.stdout.close()


def test_broker_down_at_start_then_delivered(mosquitto_broker_persistent, mqtt_collector, tmp_path, caplog):
    broker = mosquitto_broker_persistent
    col = mqtt_collector(broker.url, ["patchline/L1/#"], persistent_session=True)
    broker.stop()
    caplog.set_level(logging.INFO, logger="patchline.mqtt")
    pub = Publisher(BrokerSettings.from_url(broker.url), "L1", ["cam1"], tmp_path / "spool",
                    reconnect_delay=FAST)
    pub.start()  # not an error
    for i in range(20):
        pub.publish_result(result(i, defect=i in (4, 9)))
    time.sleep(1.0)
    st = pub.stats()
    assert st["queued"] == 22 and st["delivered"] == 0 and st["spooled_alarms"] == 2
    assert len(list((tmp_path / "spool").glob("*.json"))) == 2
    unreachable = [r for r in caplog.records if "not reachable" in r.getMessage()]
    assert len(unreachable) == 1  # one line, not one per retry
    broker.start()
    col.wait_for(lambda m: len(frame_ids(col, "/verdict")) >= 20 and len(frame_ids(col, "/alarm")) >= 2, timeout=15)
    assert frame_ids(col, "/verdict") == list(range(20))
    assert frame_ids(col, "/alarm") == [4, 9]
    assert pub.wait_idle(5)
    assert not list((tmp_path / "spool").glob("*.json"))
    pub.close(timeout=5)


def test_alarms_spooled_during_restart_survive_the_process(mosquitto_broker_persistent, mqtt_collector, tmp_path):
    broker = mosquitto_broker_persistent
    col = mqtt_collector(broker.url, ["patchline/L1/+/alarm"], persistent_session=True)
    settings = BrokerSettings.from_url(broker.url)
    spool = tmp_path / "spool"
    pub = Publisher(settings, "L1", ["cam1"], spool, reconnect_delay=FAST)
    pub.start()
    pub.publish_result(result(0, defect=True))
    col.wait_for(lambda m: frame_ids(col, "/alarm") == [0])

    broker.stop()  # mid-stream outage
    for i in range(1, 6):
        pub.publish_result(result(i, defect=True))
    assert len(list(spool.glob("*.json"))) == 5
    pub.close(timeout=0.5)  # the process ends while the broker is away
    assert len(list(spool.glob("*.json"))) == 5  # alarms stay on disk, not silently lost

    broker.start()
    pub2 = Publisher(settings, "L1", ["cam1"], spool, reconnect_delay=FAST)
    assert pub2.stats()["spooled_alarms"] == 5
    pub2.start()
    col.wait_for(lambda m: set(frame_ids(col, "/alarm")) >= set(range(6)), timeout=15)
    # QoS 1 is at least once: the broker may hand alarm 0 to the persistent subscriber again after its
    # restart when the subscriber's acknowledgement had not been saved before the stop. Nothing may be
    # lost or reordered; a redelivery is allowed.
    assert list(dict.fromkeys(frame_ids(col, "/alarm"))) == [0, 1, 2, 3, 4, 5]
    assert pub2.wait_idle(5)
    assert not list(spool.glob("*.json"))
    pub2.close(timeout=5)


def test_spool_is_locked_against_a_second_publisher(tmp_path):
    settings = BrokerSettings.from_url("mqtt://127.0.0.1:1")
    pub = Publisher(settings, "L1", ["cam1"], tmp_path / "spool")
    with pytest.raises(ConfigError, match="in use"):
        Publisher(settings, "L1", ["cam1"], tmp_path / "spool")
    pub.close(timeout=0)


def test_bound_drops_oldest_verdicts_keeps_alarms(mosquitto_broker_persistent, mqtt_collector, tmp_path):
    broker = mosquitto_broker_persistent
    col = mqtt_collector(broker.url, ["patchline/L1/#"], persistent_session=True)
    broker.stop()
    pub = Publisher(BrokerSettings.from_url(broker.url), "L1", ["cam1"], tmp_path / "spool",
                    max_verdicts=5, reconnect_delay=FAST)
    pub.start()
    for i in range(30):
        pub.publish_result(result(i, defect=i in (2, 7, 11)))
    st = pub.stats()
    assert st["dropped_verdicts"] == 25 and st["dropped_alarms"] == 0 and st["spooled_alarms"] == 3
    pub.set_status("cam1", "online")
    broker.start()
    col.wait_for(lambda m: len(frame_ids(col, "/verdict")) >= 5 and len(frame_ids(col, "/alarm")) >= 3, timeout=15)
    assert frame_ids(col, "/verdict") == list(range(25, 30))  # the newest five survive
    assert frame_ids(col, "/alarm") == [2, 7, 11]
    status = col.wait_for(lambda m: [p for t, p, _ in m if t.endswith("/status") and p["state"] == "online"])
    assert status[-1]["dropped_verdicts"] == 25
    pub.close(timeout=5)


def test_alarm_bound_drops_oldest_alarms_when_spool_full(tmp_path):
    pub = Publisher(BrokerSettings.from_url("mqtt://127.0.0.1:1"), "L1", ["cam1"], tmp_path / "spool",
                    max_alarms=3)
    for i in range(5):
        pub.publish_result(result(i, defect=True))
    st = pub.stats()
    assert st["dropped_alarms"] == 2 and st["spooled_alarms"] == 3
    assert len(list((tmp_path / "spool").glob("*.json"))) == 3
    pub.close(timeout=0)


def test_credentials_never_logged(mosquitto_broker, tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("PATCHLINE_MQTT_PASSWORD", "s3cr3t-pw")
    settings = BrokerSettings.from_url(mosquitto_broker.url, username="operator")
    assert settings.password == "s3cr3t-pw"
    pub = Publisher(settings, "L1", ["cam1"], tmp_path / "spool", reconnect_delay=FAST)
    pub.start()
    pub.publish_result(result(1, defect=True))
    assert pub.wait_idle(5)
    mosquitto_broker.stop()
    pub.publish_result(result(2))
    time.sleep(0.5)
    mosquitto_broker.start()
    assert pub.wait_idle(10)
    pub.close(timeout=2)
    dead = Publisher(BrokerSettings.from_url("mqtt://127.0.0.1:1", username="operator", password="s3cr3t-pw"),
                     "L1", ["cam1"], tmp_path / "spool2", reconnect_delay=FAST)
    dead.start()
    time.sleep(0.3)
    dead.close(timeout=0.2)
    text = caplog.text + repr(pub) + repr(settings) + str(pub.stats())
    assert "s3cr3t-pw" not in text
    assert "not reachable" in caplog.text  # the outage was logged, without the secret


def _make_certs(d):
    """A throw-away CA and a server certificate for 127.0.0.1 (EC keys: fast)."""
    from conftest import require_binary

    openssl = require_binary("/usr/bin/openssl", "openssl")
    d.mkdir()
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *a: subprocess.run([openssl, *a], cwd=d, check=True, capture_output=True, timeout=30)  # noqa: E731
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=patchline-test-ca")
    run("req", *ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "srv.crt", "-days", "1", "-extfile", "san.ext")
    return d / "ca.crt"


def test_mqtts_with_ca_file(tmp_path, mqtt_collector):
    from conftest import MosquittoBroker

    ca = _make_certs(tmp_path / "certs")
    d = ca.parent
    broker = MosquittoBroker(tmp_path / "tls-broker", scheme="mqtts", listener_options=(
        f"cafile {ca}", f"certfile {d / 'srv.crt'}", f"keyfile {d / 'srv.key'}"))
    try:
        settings = BrokerSettings.from_url(broker.url, tls_ca=str(ca))
        assert settings.tls and settings.port == broker.port
        pub = Publisher(settings, "L1", ["cam1"], tmp_path / "spool", reconnect_delay=FAST)
        pub.start()
        pub.publish_result(result(7, defect=True))
        assert pub.wait_idle(10) and pub.stats()["delivered"] == 2
        pub.close(timeout=2)

        import io

        from patchline.app.alarms import run_alarms
        with pytest.raises(PatchlineError) as err:  # the system CAs do not know our test CA
            run_alarms(broker.url, None, False, timeout=0.5, connect_attempts=1, out=io.StringIO())
        assert "TLS certificate is not trusted" in str(err.value)
    finally:
        broker.stop()


def test_status_details_last_until_the_state_changes(mosquitto_broker, mqtt_collector, tmp_path):
    col = mqtt_collector(mosquitto_broker.url, ["patchline/L1/cam1/status"])
    pub = Publisher(BrokerSettings.from_url(mosquitto_broker.url), "L1", ["cam1"], tmp_path / "spool",
                    reconnect_delay=FAST)
    pub.start()
    pub.set_status("cam1", "online", fps=25.0, bank_version="v1")
    pub.set_status("cam1", "reconnecting", attempt=2, retry_in_s=1.0, reason="the stream ended")
    pub.set_status("cam1", "online", fps=24.0)
    assert pub.wait_idle(5)
    last = col.wait_for(lambda m: [p for _, p, _ in m if p["state"] == "online" and p["fps"] == 24.0])[-1]
    assert last["bank_version"] == "v1" and "attempt" not in last and "reason" not in last
    pub.close(timeout=2)


def test_on_delivered_hears_of_each_acknowledged_message_once(mosquitto_broker, tmp_path):
    delivered = []
    pub = Publisher(BrokerSettings.from_url(mosquitto_broker.url), "L1", ["cam1"], tmp_path / "spool",
                    reconnect_delay=FAST, on_delivered=lambda topic, data: delivered.append((topic, data)))
    pub.start()
    for i in range(20):
        pub.publish_result(result(i, defect=i == 7))
    assert pub.wait_idle(10)
    verdicts = [data for topic, data in delivered if topic == "patchline/L1/cam1/verdict"]
    assert [json.loads(d)["frame_id"] for d in verdicts] == list(range(20))
    assert [json.loads(d)["frame_id"] for t, d in delivered if t == "patchline/L1/cam1/alarm"] == [7]
    assert pub.stats()["delivered"] == 21
    pub.close(timeout=5)
