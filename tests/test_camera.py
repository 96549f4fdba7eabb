"""RtspCamera against the real local RTSP server: frames, newest-frame-wins, reconnection."""

from __future__ import annotations

import threading
import time

import numpy as np

from patchline.urls import redacted_url
from patchline.plugins.camera import RtspCamera

COLORS = [(220, 30, 30), (30, 220, 30), (30, 30, 220)]  # RGB


def solid_frames(n_each: int = 5, h: int = 96, w: int = 128):
    return [np.full((h, w, 3), c, np.uint8) for c in COLORS for _ in range(n_each)]


class Recorder:
    """Collects on_status calls thread-safely."""

    def __init__(self):
        self.events: list[tuple[str, dict]] = []
        self.cond = threading.Condition()

    def __call__(self, state, info):
        with self.cond:
            self.events.append((state, info))
            self.cond.notify_all()

    def states(self):
        with self.cond:
            return [s for s, _ in self.events]

    def wait(self, predicate, timeout):
        with self.cond:
            assert self.cond.wait_for(lambda: predicate(self.states_unlocked()), timeout), self.events

    def states_unlocked(self):
        return [s for s, _ in self.events]


def take(gen, n, timeout=15.0):
    out, deadline = [], time.monotonic() + timeout
    for item in gen:
        out.append(item)
        if len(out) >= n or time.monotonic() > deadline:
            break
    return out


def test_redacted_url():
    assert redacted_url("rtsp://admin:pa55@10.0.0.5:554/Streaming/101") == "rtsp://10.0.0.5:554/Streaming/101"
    assert redacted_url("rtsp://cam/x?user=a&password=b") == "rtsp://cam/x?user=***&password=***"
    # a secret under any key: every value goes, the keys stay
    assert redacted_url("rtsp://cam/x?access_token=t0k&sig=abc&channel=1") == \
        "rtsp://cam/x?access_token=***&sig=***&channel=***"
    assert redacted_url("/data/frames") == "/data/frames"


def test_reads_frames_and_drops_stale_ones(rtsp_server):
    server = rtsp_server(solid_frames(), path="line1/cam1")
    rec = Recorder()
    cam = RtspCamera(server.url, on_status=rec, backoff=(0.2, 1.0), open_timeout_s=5)
    stop = threading.Event()
    gen = cam.frames(stop)
    frames = take(gen, 5)
    assert len(frames) == 5
    rgb, ts, seq = frames[0]
    assert rgb.shape == (96, 128, 3) and rgb.dtype == np.uint8
    # RGB order: every frame is close to one of the three colours.
    for f, _, _ in frames:
        mean = f.reshape(-1, 3).mean(0)
        assert min(np.abs(mean - np.array(c)).max() for c in COLORS) < 40, mean
    assert [s for _, _, s in frames] == sorted({s for _, _, s in frames})
    # A slow consumer at 25 fps: the newest frame wins, the ones in between are dropped.
    slow = []
    for item in gen:
        slow.append(item)
        time.sleep(0.3)
        if len(slow) == 3:
            break
    assert slow[-1][2] - slow[0][2] >= 8  # roughly 7 frames arrive per 0.3 s
    assert cam.dropped >= 8
    stop.set()
    gen.close()
    assert rec.states()[0] == "online" and rec.states()[-1] == "offline"


def test_reconnects_after_server_restart_on_same_port(rtsp_server):
    server = rtsp_server(None, path="cam")
    rec = Recorder()
    cam = RtspCamera(server.url, on_status=rec, backoff=(0.2, 1.0), open_timeout_s=3)
    stop = threading.Event()
    got: list[tuple[float, int]] = []

    def consume():
        for _, _ts, seq in cam.frames(stop):
            got.append((time.monotonic(), seq))

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    rec.wait(lambda s: "online" in s, 20)
    server.stop()
    rec.wait(lambda s: "reconnecting" in s, 15)
    stopped_at = time.monotonic()
    time.sleep(0.5)
    server.start()
    rec.wait(lambda s: s.count("online") >= 2, 20)
    deadline = time.monotonic() + 10
    while not any(when > stopped_at + 0.5 for when, _ in got) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any(when > stopped_at + 0.5 for when, _ in got), "no frames after the restart"
    states = rec.states()
    first_reconnect = states.index("reconnecting")
    assert "online" in states[first_reconnect:]
    stop.set()
    t.join(5)
    assert not t.is_alive()
    with rec.cond:
        assert [info["reconnects"] for state, info in rec.events if state == "reconnecting"][0] == 1


def test_unserved_url_retries_with_backoff_and_stops_promptly():
    from conftest import free_port

    rec = Recorder()
    cam = RtspCamera(f"rtsp://user:pw@127.0.0.1:{free_port()}/none", on_status=rec, backoff=(0.1, 0.4),
                     open_timeout_s=1)
    stop = threading.Event()
    result = []
    t = threading.Thread(target=lambda: result.extend(cam.frames(stop)), daemon=True)
    t.start()
    rec.wait(lambda s: s.count("reconnecting") >= 4, 15)
    with rec.cond:
        infos = [i for s, i in rec.events if s == "reconnecting"]
    delays = [i["retry_in_s"] for i in infos[:4]]
    assert delays == [0.1, 0.2, 0.4, 0.4]  # exponential, bounded
    assert [i["attempt"] for i in infos[:4]] == [1, 2, 3, 4]
    assert all("pw" not in i["source"] for i in infos)
    t0 = time.monotonic()
    stop.set()
    t.join(3)
    assert not t.is_alive() and time.monotonic() - t0 < 3
    assert result == [] and rec.states()[-1] == "offline"
