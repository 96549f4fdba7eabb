"""Shared fixtures: a real Mosquitto broker, a real RTSP server, an MQTT collector.

Everything binds to 127.0.0.1 on a free port and is stopped at teardown. A missing system
binary fails the test with the Debian package to install (CI installs them), never skips.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

import patchline  # noqa: F401  (sets the oneDNN CPU-ISA cap before any test imports MindSpore)
from patchline.mqtt.local_broker import LocalBroker, free_port  # noqa: F401  (free_port: tests import it)

REPO = Path(__file__).resolve().parents[1]
MOSQUITTO = "/usr/sbin/mosquitto"
SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SERVER = REPO / "tools" / "rtsp_server.py"


# -- markers -----------------------------------------------------------------------------------
# `pytest -m "not slow"`: the unit tests, in seconds. Slow: a test that trains or exports (MindSpore),
# starts a broker, a camera server or a browser, or runs the command line in other processes.
SLOW_MODULES = {"test_pipeline_e2e", "test_train_evaluate", "test_tune", "test_export", "test_models_conversion",
                "test_dashboard", "test_pipeline_rtsp", "test_camera", "test_demo", "test_packaging",
                "test_untrusted_files", "test_untrusted_payloads", "test_cli_values", "test_check", "test_runtime_install"}
SLOW_FIXTURES = {"line", "mosquitto_broker", "mosquitto_broker_persistent", "mqtt_collector", "rtsp_server",
                 "trained", "trained_line"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rpartition(".")[2]
        if module in SLOW_MODULES or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)




def require_binary(path: str, package: str) -> str:
    found = path if os.access(path, os.X_OK) else shutil.which(Path(path).name)
    if not found:
        pytest.fail(f"{path} is missing: install the Debian package '{package}' (apt-get install {package}).",
                    pytrace=False)
    return found


# -- Mosquitto ---------------------------------------------------------------------------------

class MosquittoBroker(LocalBroker):
    """The product's LocalBroker (patchline/mqtt/local_broker.py); a missing binary or a broker that
    does not start fails the test with what to install or its log."""

    def __init__(self, workdir: Path, persistence: bool = False, listener_options: tuple[str, ...] = (),
                 scheme: str = "mqtt"):
        super().__init__(workdir, persistence, listener_options, scheme, require_binary(MOSQUITTO, "mosquitto"))

    def start(self, timeout: float = 10.0) -> None:
        try:
            super().start(timeout)
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def mosquitto_broker(tmp_path):
    """A fresh broker (persistence off) per test: `.host`, `.port`, `.url`, `.stop()`, `.start()`."""
    broker = MosquittoBroker(tmp_path / "mosquitto")
    yield broker
    broker.stop()


@pytest.fixture
def mosquitto_broker_persistent(tmp_path):
    """Like mosquitto_broker, but sessions survive stop()/start(): a subscriber with
    clean_session=False then misses nothing while the broker restarts."""
    broker = MosquittoBroker(tmp_path / "mosquitto", persistence=True)
    yield broker
    broker.stop()


# -- MQTT collector ----------------------------------------------------------------------------

class _Said(logging.Handler):
    """Sets `event` when a log record containing `text` is emitted (a listener's "subscribed" line)."""

    def __init__(self, text: str):
        super().__init__()
        self.text, self.event = text, threading.Event()

    def emit(self, record):
        if self.text in record.getMessage():
            self.event.set()


@contextlib.contextmanager
def said(logger: str, text: str):
    """Within the block, the yielded Event is set once `logger` logs a line containing `text`: how
    a test waits for a listener to be subscribed (it logs so after the SUBACK), never a fixed sleep."""
    handler = _Said(text)
    target = logging.getLogger(logger)
    old_level = target.level
    target.setLevel(logging.INFO)
    target.addHandler(handler)
    try:
        yield handler.event
    finally:
        target.removeHandler(handler)
        target.setLevel(old_level)


class MqttCollector:
    """Subscribes (QoS 1) and records (topic, payload dict | str, retain) thread-safely."""

    def __init__(self, url: str, topics, persistent_session: bool = False, client_id: str | None = None):
        from patchline.mqtt.broker import BrokerSettings
        from patchline.mqtt.subscriber import Subscriber

        self.settings = BrokerSettings.from_url(url)
        self.messages: list[tuple[str, object, bool]] = []
        self._cond = threading.Condition()
        self.subscriber = Subscriber(self.settings, topics, self._on_message,
                                     client_id=client_id or f"collector-{uuid.uuid4().hex[:8]}",
                                     persistent_session=persistent_session, reconnect_delay=(0.1, 0.5))
        self.topics = self.subscriber.topics
        self.client = self.subscriber.client
        self.subscriber.start()

    def _on_message(self, topic: str, raw: bytes, retained: bool) -> None:
        try:
            payload = json.loads(raw)
        except ValueError:
            try:
                payload = raw.decode()
            except UnicodeDecodeError:
                payload = raw  # binary (an alarm snapshot's JPEG): kept as bytes
        with self._cond:
            self.messages.append((topic, payload, retained))
            self._cond.notify_all()

    def snapshot(self, topic_suffix: str | None = None) -> list[tuple[str, object, bool]]:
        with self._cond:
            return [m for m in self.messages if topic_suffix is None or m[0].endswith(topic_suffix)]

    def payloads(self, topic_suffix: str) -> list:
        return [p for _, p, _ in self.snapshot(topic_suffix)]

    def wait_for(self, predicate, timeout: float = 10.0):
        """Wait until predicate(messages) is truthy; return its value, or raise AssertionError."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate(list(self.messages))
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = "\n".join(f"  {t} {p!r:.160} retain={r}" for t, p, r in self.messages[-10:])
                    raise AssertionError(f"timed out after {timeout} s; {len(self.messages)} messages, last:\n{tail}")
                self._cond.wait(min(left, 0.2))

    def close(self) -> None:
        self.subscriber.close()


@pytest.fixture
def mqtt_collector():
    """Factory: mqtt_collector(url, topics, persistent_session=False) -> MqttCollector; closed at teardown."""
    made: list[MqttCollector] = []

    def make(url: str, topics, **kwargs) -> MqttCollector:
        c = MqttCollector(url, topics, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


# -- RTSP --------------------------------------------------------------------------------------

def make_test_video(frames, path: Path, fps: int = 25) -> Path:
    """Encode RGB frames (list of (H, W, 3) uint8 arrays or image paths) to an H.264 MP4 with ffmpeg."""
    import cv2

    ffmpeg = require_binary("/usr/bin/ffmpeg", "ffmpeg")
    arrays = []
    for f in frames:
        if isinstance(f, (str, Path)):
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f"cannot read image {f}")
            f = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        arrays.append(np.ascontiguousarray(f, dtype=np.uint8))
    h, w = arrays[0].shape[:2]
    h2, w2 = h - h % 2, w - w % 2  # yuv420p needs even sizes
    raw = b"".join(a[:h2, :w2].tobytes() for a in arrays)
    cmd = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w2}x{h2}",
           "-r", str(fps), "-i", "-", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", str(fps), str(path)]
    subprocess.run(cmd, input=raw, check=True, timeout=60)
    return path


class RtspServer:
    """tools/rtsp_server.py under Debian's Python; stop()/start() keep the port."""

    def __init__(self, video: Path | None, workdir: Path, path: str = "stream", fps: int = 25):
        require_binary(SYSTEM_PYTHON, "python3-gi")
        probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                                "from gi.repository import GstRtspServer"], capture_output=True, timeout=30)
        if probe.returncode != 0:
            pytest.fail("GstRtspServer is missing: install the Debian packages 'python3-gi', "
                        "'gir1.2-gst-rtsp-server-1.0', 'gstreamer1.0-plugins-ugly' (x264enc) and "
                        "'gstreamer1.0-plugins-good', 'gstreamer1.0-libav'.", pytrace=False)
        self.video, self.path, self.fps = video, path.strip("/"), fps
        self.port = free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/{self.path}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"rtsp-{self.port}.log"
        self.proc: subprocess.Popen | None = None
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 20.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        cmd = [SYSTEM_PYTHON, str(RTSP_SERVER), "--port", str(self.port), "--path", self.path, "--fps", str(self.fps)]
        if self.video is not None:
            cmd += ["--file", str(self.video)]
        # stderr to a file: a pipe nobody drains would stall the server once full.
        with open(self.log_path, "a") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True,
                                         stdin=subprocess.DEVNULL)
        ready: list[str] = []
        reader = threading.Thread(target=lambda: ready.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not ready or not ready[0].startswith("READY"):
            self.stop()
            pytest.fail(f"rtsp_server did not start on port {self.port}: {self.log()[-2000:]}", pytrace=False)

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
            self.proc.stdout.close()
        self.proc = None


@pytest.fixture
def rtsp_server(tmp_path):
    """Factory: rtsp_server(frames=None, path="stream", fps=25) -> server with `.url`, `.stop()`, `.start()`.

    `frames`: list of (H, W, 3) uint8 RGB arrays or image paths, made into an H.264 MP4 with
    ffmpeg; None serves a moving test pattern.
    """
    made: list[RtspServer] = []

    def make(frames=None, path: str = "stream", fps: int = 25) -> RtspServer:
        video = None
        if frames is not None:
            video = make_test_video(frames, tmp_path / f"video-{len(made)}.mp4", fps=fps)
        server = RtspServer(video, tmp_path / "rtsp", path=path, fps=fps)
        made.append(server)
        return server

    yield make
    for s in made:
        s.stop()


@pytest.fixture
def python_exe() -> str:
    """The interpreter running the tests (has patchline installed), for subprocess tests."""
    return sys.executable
