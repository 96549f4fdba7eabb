"""`patchline capture`: good images for training from a folder or a real RTSP stream, each candidate
judged (exposure, blur, near-duplicate; every skip counted with its reason), the count and the quota
held, triggers over a real broker, and `patchline train --images` building a bank from the result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import free_port, said

from patchline.app.capture import run_capture
from patchline.capture.quality import QualityGate, QualityRules
from patchline.capture.settings import CaptureSettings
from patchline.capture.triggers import MqttTriggers, capture_topic
from patchline.core.preprocess import IMAGE_SUFFIXES, list_images
from patchline.data.datasets import good_images
from patchline.mqtt.broker import BrokerSettings

REPO = Path(__file__).resolve().parents[1]


def pattern(seed: int, h: int = 240, w: int = 320) -> np.ndarray:
    """A sharp, well exposed RGB part: shapes of random size, place and shade on a mid-gray ground."""
    rng = np.random.default_rng(seed)
    image = np.full((h, w, 3), 128, np.uint8)
    for _ in range(14):
        shade = tuple(int(v) for v in rng.integers(40, 220, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if rng.random() < 0.5:
            cv2.rectangle(image, (x, y), (x + int(rng.integers(10, 80)), y + int(rng.integers(10, 80))), shade, -1)
        else:
            cv2.circle(image, (x, y), int(rng.integers(5, 40)), shade, -1)
    return image


def blurred(image: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), 4)


def noisy_copy(image: np.ndarray, seed: int) -> np.ndarray:
    """The same scene again with sensor noise: a near-duplicate."""
    noise = np.random.default_rng(seed).integers(-3, 4, image.shape)
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8)


def write_frames(folder: Path, frames: list[np.ndarray]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, image in enumerate(frames):
        names.append(f"{i:03d}.png")
        cv2.imwrite(str(folder / names[-1]), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return names


def capture(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "patchline.cli", "capture", *map(str, args)], capture_output=True,
                          text=True, timeout=300, cwd=REPO)


def constructed_frames() -> tuple[list[np.ndarray], dict[int, str]]:
    """Eight good parts with, between them, a near-duplicate, a blurred, a dark and a blown-out frame;
    the index of each bad frame → the reason it must be skipped for."""
    good = [pattern(seed) for seed in range(8)]
    frames = good[:6] + [noisy_copy(good[5], 1), blurred(pattern(50)), (pattern(51) // 10),
                         np.clip(pattern(52).astype(int) + 180, 0, 255).astype(np.uint8)] + good[6:]
    return frames, {6: "duplicate", 7: "blurred", 8: "under-exposed", 9: "over-exposed"}


def test_the_quality_gate_skips_each_bad_frame_for_its_reason():
    frames, bad = constructed_frames()
    gate = QualityGate(QualityRules())
    reasons = {}
    for i, frame in enumerate(frames):
        problem = gate.judge(frame)
        if problem is None:
            gate.kept()
        else:
            reasons[i] = problem[0]
    assert reasons == bad
    # a gray frame is judged the same way, and min_change 0 keeps a duplicate
    gate = QualityGate(QualityRules(min_change=0))
    gray = cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)
    assert gate.judge(gray) is None
    gate.kept()
    assert gate.judge(gray) is None


def test_capture_from_a_folder_counts_every_skip_and_writes_what_train_reads(tmp_path):
    frames, bad = constructed_frames()
    names = write_frames(tmp_path / "line", frames)
    (tmp_path / "line" / "999.png").write_bytes(b"\x89PNG but not really")  # an unreadable file
    out = tmp_path / "good"
    done = capture(tmp_path / "line", "--out", out)
    assert done.returncode == 0, done.stderr
    kept = [p.name for p in list_images(out)]
    assert kept == [n for i, n in enumerate(names) if i not in bad]
    assert good_images(out) == list_images(out)  # what train --images and tune --images read
    assert "skipped 5: blurred 1, duplicate 1, over-exposed 1, under-exposed 1, unreadable 1" in done.stdout
    for i, reason in bad.items():
        assert f"skipped {names[i]}: {reason}: " in done.stderr
    assert "skipped 999.png: unreadable: " in done.stderr
    for path in list_images(out):  # lossless: the very pixels of the source
        source = cv2.imread(str(tmp_path / "line" / path.name))
        assert np.array_equal(cv2.imread(str(path)), source)
    assert not [p for p in out.iterdir() if p.suffix.lower() not in IMAGE_SUFFIXES]  # no partial files left

    again = capture(tmp_path / "line", "--out", out)  # a second run tops up: nothing new to add
    assert again.returncode == 0 and "kept 0 " in again.stdout and len(list_images(out)) == len(kept)


def test_every_nth_frame_up_to_a_count(tmp_path):
    write_frames(tmp_path / "line", [pattern(seed) for seed in range(10)])
    done = capture(tmp_path / "line", "--out", tmp_path / "a", "--every", "3")
    assert done.returncode == 0, done.stderr
    assert [p.name for p in list_images(tmp_path / "a")] == ["000.png", "003.png", "006.png", "009.png"]
    done = capture(tmp_path / "line", "--out", tmp_path / "b", "--count", "2", "--format", "jpg")
    assert done.returncode == 0, done.stderr
    assert [p.name for p in list_images(tmp_path / "b")] == ["000.jpg", "001.jpg"]
    assert "stopped: the folder holds --count images" in done.stdout


def test_every_t_seconds_by_the_files_modification_times(tmp_path):
    names = write_frames(tmp_path / "line", [pattern(seed) for seed in range(10)])
    for i, name in enumerate(names):  # a frame grabber wrote one file a second
        os.utime(tmp_path / "line" / name, (1_700_000_000 + i, 1_700_000_000 + i))
    done = capture(tmp_path / "line", "--out", tmp_path / "good", "--interval", "3")
    assert done.returncode == 0, done.stderr
    assert [p.name for p in list_images(tmp_path / "good")] == ["000.png", "003.png", "006.png", "009.png"]


def test_a_camera_that_never_answers_ends_at_the_duration(tmp_path):
    done = capture(f"rtsp://127.0.0.1:{free_port()}/nothing", "--out", tmp_path / "good", "--duration", "2")
    assert done.returncode == 0, done.stderr
    assert "0 frames, 0 candidates" in done.stdout and "stopped: --duration passed" in done.stdout
    assert "unavailable" in done.stderr and list_images(tmp_path / "good") == []


def test_the_quota_is_held(tmp_path):
    write_frames(tmp_path / "line", [pattern(seed) for seed in range(10)])
    sizes = [len(cv2.imencode(".png", cv2.cvtColor(pattern(s), cv2.COLOR_RGB2BGR))[1]) for s in range(10)]
    quota_mb = (sum(sizes[:3]) + sizes[3] // 2) / 1024 / 1024  # room for three and a half images
    out = tmp_path / "good"
    done = capture(tmp_path / "line", "--out", out, "--quota-mb", f"{quota_mb:.9f}")
    assert done.returncode == 0, done.stderr
    held = list_images(out)
    assert len(held) == 3 and sum(p.stat().st_size for p in held) <= quota_mb * 1024 * 1024
    assert "stopped: the folder reached its --quota-mb" in done.stdout
    again = capture(tmp_path / "line", "--out", out, "--quota-mb", f"{quota_mb:.9f}")
    assert again.returncode == 0 and len(list_images(out)) == 3


@pytest.mark.parametrize("args, message", [
    (["{src}", "--out", "{src}"], "must not be the source folder"),
    (["{src}", "--out", "{out}", "--every", "2", "--interval", "1"], "not allowed with argument"),
    (["{src}", "--out", "{out}", "--trigger"], "needs a camera (rtsp://) source"),
    (["rtsp://127.0.0.1:1/x", "--out", "{out}", "--trigger"], "needs --mqtt URL and --camera NAME"),
    (["{out}/missing", "--out", "{out}"], "neither an rtsp:// URL nor an existing folder"),
    (["{empty}", "--out", "{out}"], "holds no images"),
    (["{src}", "--out", "{out}", "--exposure", "200,100"], "0 <= LOW < HIGH <= 255"),
    (["{src}", "--out", "{out}", "--exposure", "1,2,3"], "two gray levels"),
    (["{src}", "--out", "{out}", "--blur-ratio", "2"], "--blur-ratio"),
    (["{src}", "--out", "{out}", "--camera", "../x"], "--camera"),
])
def test_bad_input_gets_one_sentence(tmp_path, args, message):
    write_frames(tmp_path / "src", [pattern(0)])
    (tmp_path / "empty").mkdir()
    args = [a.format(src=tmp_path / "src", out=tmp_path / "out", empty=tmp_path / "empty") for a in args]
    done = capture(*args)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_capture_from_a_real_rtsp_stream_keeps_each_scene_once(rtsp_server, tmp_path):
    scenes = [pattern(seed, 240, 320) for seed in (11, 12, 13)]
    server = rtsp_server(frames=[s for s in scenes for _ in range(8)], path="cam1", fps=8)  # 3 s a loop
    out = tmp_path / "good"
    done = capture(server.url, "--out", out, "--camera", "cam1", "--count", "3", "--duration", "60")
    assert done.returncode == 0, done.stderr
    kept = list_images(out)
    assert len(kept) == 3 and all(p.name.startswith("cam1-") for p in kept), done.stdout
    assert "stopped: the folder holds --count images" in done.stdout
    assert "duplicate" in done.stdout, done.stdout  # every repeat of a kept scene was skipped
    matched = set()
    for path in kept:  # each kept frame is one of the scenes (H.264 changes a few gray levels)
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        assert image.shape == scenes[0].shape
        matched.add(int(np.argmin([np.abs(image.astype(int) - s).mean() for s in scenes])))
    assert matched == {0, 1, 2}


def test_capture_from_a_real_rtsp_stream_skips_blurred_and_dark_scenes(rtsp_server, tmp_path):
    sharp = [pattern(31), pattern(32)]
    scenes = [sharp[0], blurred(pattern(33)), pattern(34) // 10, sharp[1]]
    server = rtsp_server(frames=[s for s in scenes for _ in range(6)], path="cam4", fps=12)  # 2 s a loop
    out = tmp_path / "good"
    # an absolute floor: wherever in the loop the capture starts, a blurred scene is blurred from the first frame;
    # three loops: the frames a slow start drops (newest frame wins) come round again
    done = capture(server.url, "--out", out, "--camera", "cam4", "--duration", "7", "--min-sharpness", "10")
    assert done.returncode == 0, done.stderr
    assert "blurred" in done.stdout and "under-exposed" in done.stdout and "duplicate" in done.stdout, done.stdout
    kept = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB).astype(int) for p in list_images(out)]
    assert len(kept) == 2
    assert {int(np.argmin([np.abs(k - s).mean() for s in scenes])) for k in kept} == {0, 3}


def test_triggers_arrive_over_mqtt_and_each_is_answered(rtsp_server, mosquitto_broker, mqtt_collector, tmp_path):
    server = rtsp_server(frames=[pattern(seed) for seed in range(20, 30) for _ in range(3)], path="cam2", fps=10)
    broker = BrokerSettings.from_url(mosquitto_broker.url)
    replies = mqtt_collector(mosquitto_broker.url, [capture_topic("cam2") + "/reply"])
    settings = CaptureSettings(server.url, tmp_path / "good", trigger=True, count=2, duration_s=60, camera="cam2",
                               broker=broker).check()
    with said("patchline.capture", "waiting for capture triggers") as listening:
        worker = threading.Thread(target=run_capture, args=(settings, True))
        worker.start()
        assert listening.wait(30)
    send = replies.client.publish
    send(capture_topic("cam2"), b'{"id": "part-1"}', qos=1).wait_for_publish(5)
    replies.wait_for(lambda m: any(p.get("id") == "part-1" for _, p, _ in m), timeout=30)
    send(capture_topic("cam2"), b"[1, 2]", qos=1).wait_for_publish(5)  # not an object: refused
    replies.wait_for(lambda m: any(p.get("skipped") == "refused" for _, p, _ in m), timeout=10)
    for n in range(2, 12):  # until a second scene is kept (a trigger on a frame like the kept one: 'duplicate')
        if sum("saved" in a for a in replies.payloads("reply")) == 2:
            break
        time.sleep(0.4)  # the stream shows each scene for 0.3 s
        send(capture_topic("cam2"), json.dumps({"id": n}).encode(), qos=1).wait_for_publish(5)
        replies.wait_for(lambda m: any(p.get("id") == n for _, p, _ in m), timeout=30)
    worker.join(30)
    assert not worker.is_alive()
    answers = replies.payloads("reply")
    assert answers[0]["id"] == "part-1" and "saved" in answers[0], answers
    assert all("saved" in a or a["skipped"] in ("duplicate", "refused") for a in answers), answers
    saved = [a["saved"] for a in answers if "saved" in a]
    assert [p.name for p in list_images(tmp_path / "good")] == sorted(saved) and len(saved) == 2, answers


def test_a_trigger_while_another_waits_is_an_overrun_and_bad_payloads_are_counted(mosquitto_broker, mqtt_collector):
    replies = mqtt_collector(mosquitto_broker.url, [capture_topic("cam3") + "/reply"])
    triggers = MqttTriggers(BrokerSettings.from_url(mosquitto_broker.url), "cam3", expire_s=0.5).start()
    try:
        for payload in (b'{"id": 1}', b'{"id": 2}', b"\xff\xfe", b'{"id": "' + b"x" * 100 + b'"}', b"x" * 5000):
            replies.client.publish(capture_topic("cam3"), payload, qos=1).wait_for_publish(5)
        replies.wait_for(lambda m: len(m) >= 4, timeout=10)
        assert triggers.counts() == {"received": 2, "overruns": 1, "refused": 3, "expired": 0}
        assert {"id": 2, "skipped": "overrun"}.items() <= replies.payloads("reply")[0].items()
        time.sleep(0.6)  # no frame came: the waiting trigger is answered 'no frame'
        assert triggers.take(None) is None and triggers.counts()["expired"] == 1
        replies.wait_for(lambda m: any(p.get("id") == 1 and p.get("skipped") == "no frame" for _, p, _ in m), 10)
    finally:
        triggers.close()


@pytest.mark.slow
def test_train_builds_a_bank_from_a_captured_folder(tmp_path):
    write_frames(tmp_path / "line", [pattern(seed, 96, 96) for seed in range(8)])
    out = tmp_path / "good"
    assert capture(tmp_path / "line", "--out", out).returncode == 0
    done = subprocess.run([sys.executable, "-m", "patchline.cli", "train", "--line", "captured", "--images", str(out),
                           "--backbone", "efficientnet_lite0", "--layer", "layer2,layer3", "--resize", "80",
                           "--imagesize", "64", "--coreset", "0.1", "--batch-size", "8", "--banks",
                           str(tmp_path / "banks"), "--quiet"],
                          capture_output=True, text=True, timeout=600, cwd=REPO,
                          env={**__import__("os").environ, "PATCHLINE_MODELS": str(tmp_path / "models")})
    assert done.returncode == 0, done.stderr[-3000:]
    version = (tmp_path / "banks" / "captured" / "CURRENT").read_text().strip()
    meta = json.loads((tmp_path / "banks" / "captured" / version / "bank.json").read_text())
    assert meta["training"]["n_images"] == 8
