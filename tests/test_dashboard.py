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
            assert int(page.locator(f"{CAMERA} .verdicts").inner_text()) > 0
            assert int(page.locator(f"{CAMERA} .alarms").inner_text()) > 0
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
