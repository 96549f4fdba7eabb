"""`patchline dashboard` in headless Chromium, fed by a real `patchline run` through a real Mosquitto
that is stopped and started again while the page stays open."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request

import pytest
from browser import chromium_page
from conftest import free_port
from pipeline_support import LINE, REPO, patchline, prepare_trained_line

CAMERA = '.camera[data-line="brick"][data-camera="cam1"]'


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    return prepare_trained_line(tmp_path_factory.getbasetemp() / "pipeline-line")


def _serve_dashboard(url: str, port: int, cwd) -> subprocess.Popen:
    proc = subprocess.Popen(patchline("dashboard", "--mqtt", url, "--port", str(port)), cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/state", timeout=1) as answer:
                json.load(answer)
                return proc
        except OSError:
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("the dashboard did not start serving within 30 s")


def test_the_dashboard_follows_a_running_line_and_a_broker_outage_without_a_reload(line, tmp_path,
                                                                                  mosquitto_broker):
    port = free_port()
    dashboard = _serve_dashboard(mosquitto_broker.url, port, tmp_path)
    run = None
    try:
        with chromium_page() as page:
            page.goto(f"http://127.0.0.1:{port}/")
            page.evaluate("window.__opened_once = true")  # gone if the page ever reloads
            page.wait_for_selector("#broker.up", timeout=10_000)

            run = subprocess.Popen(
                patchline("run", str(REPO / "pipeline" / "folder_layer2_layer3.pipeline"), "--source", str(line.frames),
                          "--mqtt", mosquitto_broker.url, "--line", LINE, "--camera", "cam1", "--loop",
                          "--spool", str(tmp_path / "spool"), "--snapshots", str(tmp_path / "snaps"),
                          "--publish-snapshots", "--quiet"),
                cwd=line.workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            page.wait_for_selector(f"{CAMERA} .state.online", timeout=60_000)
            page.wait_for_function(
                f"() => [...document.querySelectorAll('{CAMERA} .alarm img.snapshot')]"
                ".some(img => img.complete && img.naturalWidth > 600)", timeout=15_000)
            assert page.locator(f"{CAMERA} .bank").inner_text() == line.version
            # verdicts and alarms travel on different topics: an alarm's snapshot may show before the first
            # verdict message is counted (seen with the machine full), so wait for both counts
            page.wait_for_function(
                f"() => ['verdicts', 'alarms'].every(k => parseInt(document.querySelector('{CAMERA} .' + k)"
                f"?.textContent || '0') > 0)", timeout=15_000)
            assert page.locator(f"{CAMERA} svg.strip polyline").count() == 1  # the live score strip
            assert page.locator(f"{CAMERA} svg.strip line.threshold").count() == 1
            page.screenshot(path=str(tmp_path / "dashboard-running.png"), full_page=True)

            run.send_signal(signal.SIGINT)  # the line stops: its camera goes offline
            assert run.wait(60) == 0, run.stdout.read()
            page.wait_for_selector(f"{CAMERA} .state.offline", timeout=15_000)

            mosquitto_broker.stop()
            page.wait_for_selector("#broker.down", timeout=15_000)
            assert "broker unreachable" in page.locator("#broker").inner_text()
            mosquitto_broker.start()
            page.wait_for_selector("#broker.up", timeout=20_000)
            page.wait_for_selector(f"{CAMERA} .state.offline", timeout=10_000)
            assert page.evaluate("window.__opened_once === true"), "the page never reloaded"
            page.screenshot(path=str(tmp_path / "dashboard-after.png"), full_page=True)
    finally:
        if run is not None and run.poll() is None:
            run.kill()
        dashboard.send_signal(signal.SIGINT)
        try:
            dashboard.wait(15)
        except subprocess.TimeoutExpired:
            dashboard.kill()
    assert (tmp_path / "dashboard-running.png").stat().st_size > 20_000


def test_the_dashboard_says_in_one_sentence_when_its_port_is_taken(tmp_path, mosquitto_broker):
    port = free_port()
    first = _serve_dashboard(mosquitto_broker.url, port, tmp_path)
    try:
        second = subprocess.run(patchline("dashboard", "--mqtt", mosquitto_broker.url, "--port", str(port)),
                                cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2 and f"port {port} on 127.0.0.1 is already in use" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(15)


XSS = '<img src=x onerror="window.__xss=1;alert(1)"><script>window.__xss=2</script>'


def _publish_all(url: str, messages, retain: bool = True) -> None:
    from patchline.mqtt.broker import BrokerSettings, connect_now, make_client

    settings = BrokerSettings.from_url(url)
    client = make_client(settings, "hostile-console")
    connect_now(client, settings)
    client.loop_start()
    try:
        for topic, raw in messages:
            client.publish(topic, raw, qos=1, retain=retain).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()


def test_hostile_retained_messages_run_no_script_and_the_page_keeps_updating(tmp_path, mosquitto_broker):
    from patchline.dashboard.state import MAX_CAMERAS

    hostile_status = {"state": "online", "dropped_frames": XSS, "dropped_verdicts": XSS, "dropped_alarms": XSS,
                      "reason": XSS, "bank_version": XSS, "fps": "1e999"}
    hostile_alarm = {"frame_id": XSS, "timestamp": XSS, "score": 9, "threshold": 1, "source": XSS,
                     "snapshot": "../../etc/passwd", "region": {"bbox": XSS}}
    # thousands of cameras first (the dashboard keeps the MAX_CAMERAS heard from last), then the hostile ones
    messages = [(f"patchline/many/c{i}/status", b'{"state": "online"}') for i in range(MAX_CAMERAS + 100)]
    messages += [("patchline/evil/cam1/status", json.dumps(hostile_status).encode()),
                ("patchline/evil/cam1/alarm", json.dumps(hostile_alarm).encode()),
                ("patchline/evil/cam1/drift", json.dumps({"drift": True, "reasons": [XSS]}).encode()),
                ("patchline/evil/bank", json.dumps({"version": XSS}).encode()),
                ("patchline/evil/cam1/verdict", b'{"score": NaN, "threshold": Infinity}'),
                ("patchline/evil/cam2/status", b"[" * 200_000 + b"]" * 200_000),
                ("patchline/evil/cam2/verdict", b'{"score": 1e999}')]
    _publish_all(mosquitto_broker.url, messages)
    port = free_port()
    dashboard = _serve_dashboard(mosquitto_broker.url, port, tmp_path)
    dialogs = []
    try:
        with chromium_page() as page:
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(f"http://127.0.0.1:{port}/")
            evil = '.camera[data-line="evil"][data-camera="cam1"]'
            page.wait_for_selector(f"{evil} .alarm", timeout=15_000)
            assert XSS in page.locator(f"{evil} .top").inner_text()          # shown as text …
            assert XSS in page.locator(f"{evil} .alarm").inner_text()
            assert XSS in page.locator(f"{evil} .drift").inner_text()
            assert page.locator('img[src="x"]').count() == 0                # … never as elements
            assert page.locator("main script").count() == 0
            assert page.locator(f"{evil} .dropped-frames").inner_text() == "0"  # not a number: not shown
            assert "refused" in page.locator("#refused").inner_text()
            page.wait_for_function(f"() => document.querySelectorAll('section.camera').length === {MAX_CAMERAS}",
                                   timeout=20_000)

            # the page keeps updating after all of that: new verdicts arrive and are counted
            verdict = json.dumps({"score": 1.5, "threshold": 2.0, "verdict": "good", "frame_id": 1}).encode()
            _publish_all(mosquitto_broker.url, [("patchline/evil/cam1/verdict", verdict)] * 3, retain=False)
            page.wait_for_function(f"() => document.querySelector('{evil} .verdicts').textContent === '3'",
                                   timeout=15_000)
            assert page.locator(f"{evil} svg.strip polyline").count() == 1
            assert page.evaluate("window.__xss === undefined") and not dialogs
            assert page.locator("#page").inner_text() == ""                  # every update was read
    finally:
        _publish_all(mosquitto_broker.url, [(t, b"") for t, _ in messages])  # clear the retained messages
        dashboard.send_signal(signal.SIGINT)
        dashboard.wait(15)


def test_the_dashboard_refuses_a_plant_address_without_credentials_in_one_sentence(tmp_path, mosquitto_broker):
    done = subprocess.run(patchline("dashboard", "--mqtt", mosquitto_broker.url, "--host", "0.0.0.0",
                                    "--port", str(free_port())), cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "needs --auth-file" in done.stderr and "--no-auth" in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_the_dashboard_asks_for_a_login_from_its_auth_file(tmp_path, mosquitto_broker):
    import base64
    import urllib.error

    auth = tmp_path / "dashboard.users"
    added = subprocess.run(patchline("dashboard", "--auth-file", str(auth), "--add-user", "operator"),
                           input="a long password\n", cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    assert "a long password" not in auth.read_text() and auth.read_text().startswith("operator:pbkdf2_sha256$")
    assert auth.stat().st_mode & 0o077 == 0
    port = free_port()
    proc = subprocess.Popen(patchline("dashboard", "--mqtt", mosquitto_broker.url, "--host", "0.0.0.0", "--port",
                                      str(port), "--auth-file", str(auth)), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert "login required" in proc.stdout.readline()

        def get(path, password=None):
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
            if password is not None:
                token = base64.b64encode(f"operator:{password}".encode()).decode()
                request.add_header("Authorization", f"Basic {token}")
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    return answer.status, answer.headers
            except urllib.error.HTTPError as exc:
                return exc.code, exc.headers

        for path in ("/", "/state", "/snapshot/x.jpg"):
            assert get(path)[0] == 401 and get(path, "wrong password")[0] == 401
        status, headers = get("/", "a long password")
        assert status == 200 and "script-src 'nonce-" in headers["Content-Security-Policy"]
        assert get("/state", "a long password")[0] == 200

        with chromium_page(http_credentials={"username": "operator", "password": "a long password"}) as page:
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#broker.up", timeout=15_000)  # the event stream got through too
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
