"""Everything from the disk is untrusted (issue 21, items 3, 4, 6 and 8): image files are regular
files whose header's pixel count is checked before decoding; feedback names kept frames, never
paths, and refuses everything else with one reply; a full disk under the alarm spool or a bank
write is counted and said, never assumed; half-written banks are cleaned up. The small disks are
real: a 64 KiB tmpfs mounted by the test (it runs as root)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import subprocess
import threading
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from pipeline_support import patchline

from patchline.app.frame_names import FrameNames, FrameRefused
from patchline.bank.store import CURRENT_FILE, current_version, write_bank
from patchline.core.image_file import MAX_PIXELS
from patchline.core.preprocess import decode_image, load_image
from patchline.errors import BankError, PatchlineError
from patchline.mqtt.broker import BrokerSettings
from patchline.mqtt.publisher import Publisher
from patchline.pipeline.config import parse_pipeline
from patchline.pipeline.streams import StreamManager

META = {"backbone": "efficientnet_lite0", "layers": ["layer2"], "resize": 64, "imagesize": 64, "patchsize": 3,
        "target_dim": None, "grid": [8, 8], "aggregation": "max", "threshold": 1.0, "pixel_threshold": 1.0}


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs mounted at tmp_path/small for the test (root only), unmounted after."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"cannot mount a small tmpfs (the test needs root): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A PNG declaring width × height gray pixels whose rows compress to almost nothing."""
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    rows = zlib.compress(b"\x00" * (width + 1) * 64, 9)
    return b"\x89PNG\r\n\x1a\n" + header + _png_chunk(b"IDAT", rows) + _png_chunk(b"IEND", b"")


def _image(path: Path, shape=(48, 64, 3)) -> Path:
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8))
    return path


# -- 8: decompression bombs -------------------------------------------------------------------


def _headers_declaring(width: int, height: int) -> dict[str, bytes]:
    ok, jpeg = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    jpeg = bytearray(jpeg.tobytes())
    sof = next(i for i in range(2, len(jpeg) - 1) if jpeg[i] == 0xFF and jpeg[i + 1] in (0xC0, 0xC2))
    jpeg[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    bmp = b"BM" + b"\0" * 16 + struct.pack("<ii", width, -height) + b"\0" * 40
    tiff = (b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 2) + struct.pack("<HHII", 256, 4, 1, width)
            + struct.pack("<HHII", 257, 4, 1, height) + b"\0" * 4)
    return {"png": bomb_png(width, height), "jpeg": bytes(jpeg), "bmp": bmp, "tiff": tiff}


@pytest.mark.parametrize("kind", ["png", "jpeg", "bmp", "tiff"])
def test_an_image_declaring_too_many_pixels_is_refused_before_decoding(kind):
    data = _headers_declaring(30000, 30000)[kind]
    began = time.perf_counter()
    with pytest.raises(PatchlineError, match="too large to decode: its header declares 30000×30000 pixels"):
        decode_image(data, "bomb")
    assert time.perf_counter() - began < 0.5  # nothing was decoded


def test_a_folder_source_reports_a_bomb_as_an_error_verdict_and_goes_on(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "000.png").write_bytes(bomb_png())
    _image(frames / "001.png")
    os.mkfifo(frames / "002.png")  # a FIFO among the frames: never listed, never waited on
    data = {"s": {"appsrc0": {"factory": "appsrc", "next": "mxpi_imagedecoder0"},
                  "mxpi_imagedecoder0": {"factory": "mxpi_imagedecoder", "props": {"outputDataFormat": "RGB"},
                                         "next": "appsink0"},
                  "appsink0": {"factory": "appsink"}}}
    results = []
    manager = StreamManager(parse_pipeline(data, "t.pipeline"), str(frames), on_result=results.append)
    manager.start()
    assert manager.wait(30)
    manager.close()
    by_id = {r["frame_id"]: r for r in results}
    assert "too large to decode" in by_id[0]["reason"]
    assert by_id[1].get("verdict") != "error" and sorted(by_id) == [0, 1]


def test_feedback_and_train_refuse_a_bomb_in_one_sentence(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png())
    with pytest.raises(PatchlineError, match="too large to decode"):
        load_image(bomb)  # train, evaluate and feedback read images through load_image
    done = subprocess.run(patchline("feedback", "L", "--false-alarm", str(bomb), "--banks", str(tmp_path)),
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "too large to decode" in done.stderr and done.stderr.count("\n") == 1
    assert f"at most {MAX_PIXELS}" in done.stderr


# -- 4: feedback names frames ------------------------------------------------------------------


def test_feedback_resolves_kept_frames_and_refuses_everything_else_with_one_sentence(tmp_path):
    root, snaps, outside = tmp_path / "frames", tmp_path / "snaps", tmp_path / "outside"
    for folder in (root, snaps, outside, root / "sub"):
        folder.mkdir()
    good, nested, snap = _image(root / "0042.png"), _image(root / "sub" / "7.png"), _image(snaps / "s_cam1_1.jpg")
    _image(outside / "secret.png")
    (root / "text.png").write_text("not an image")
    (root / "dir.png").mkdir()
    os.mkfifo(root / "fifo.png")
    (root / "zero.png").symlink_to("/dev/zero")
    (root / "escape.png").symlink_to(outside / "secret.png")
    (root / "huge.png").write_bytes(bomb_png())
    frames = FrameNames([root], snaps)
    assert frames.resolve("0042.png") == good.resolve() and frames.resolve("sub/7.png") == nested.resolve()
    assert frames.resolve("s_cam1_1.jpg") == snap.resolve()

    hostile = ["/dev/zero", "/etc/passwd", str(good), "../outside/secret.png", "sub/../0042.png", "missing.png",
               "text.png", "dir.png", "fifo.png", "zero.png", "escape.png", "huge.png", "0042.txt", "", "a" * 300, 7,
               None, ["0042.png"], "./0042.png", "sub//7.png"]
    sentences = set()
    for name in hostile:
        result: dict = {}
        worker = threading.Thread(target=lambda n=name: result.setdefault("error", _refused(frames, n)))
        worker.start()
        worker.join(10)
        assert not worker.is_alive(), f"resolving {name!r} blocked"  # a FIFO must not hang the listener
        message = result["error"]
        shown = repr(name[:80]) if isinstance(name, str) else repr(type(name).__name__)
        sentences.add(message.replace(shown, "NAME"))
    assert sentences == {"NAME is not a frame this line kept: name a snapshot or an image below the listener's "
                         "--image-root folders."}


def _refused(frames: FrameNames, name) -> str:
    with pytest.raises(FrameRefused) as info:
        frames.resolve(name)
    return str(info.value)


# -- 3: a full disk under the alarm spool ---------------------------------------------------------


ALARM = {"camera": "cam1", "verdict": "defect", "score": 9.0, "threshold": 1.0, "source": "x" * 900}


def _fill(publisher: Publisher, n: int) -> None:
    for i in range(n):
        publisher.publish_result({**ALARM, "frame_id": i})


def test_a_full_spool_keeps_alarms_in_memory_counts_the_lost_exactly_and_says_so(small_disk, caplog):
    spool = small_disk / "spool"
    settings = BrokerSettings.from_url("mqtt://127.0.0.1:1")  # no broker: everything waits
    publisher = Publisher(settings, "L1", ["cam1"], spool, reconnect_delay=(5, 5))
    with caplog.at_level(logging.INFO, logger="patchline.mqtt"):
        _fill(publisher, 200)
        on_disk = len(list(spool.glob("*.json")))
        stats = publisher.stats()
        assert 0 < on_disk < 200, "the 64 KiB disk should hold some alarms, not all"
        assert stats["spooled_alarms"] == on_disk and stats["unspooled_alarms"] == 200 - on_disk
        assert stats["spool_errors"] == 200 - on_disk
        publisher.close(0.2)
    final = publisher.stats()
    assert final["lost_alarms"] == 200 - on_disk and final["spooled_alarms"] == on_disk
    text = caplog.text
    assert f"{on_disk} alarms kept in the spool" in text and f"{200 - on_disk} alarm(s) are lost" in text
    assert "wait in memory only" in text
    assert not list(spool.glob(".tmp-*"))  # no half-written spool file left behind
    again = Publisher(settings, "L1", ["cam1"], spool)
    try:
        assert again.stats()["spooled_alarms"] == on_disk  # the next start replays exactly what was kept
    finally:
        again.close(0.1)


def test_the_status_message_carries_the_exact_count_of_alarms_at_risk(small_disk, mosquitto_broker, mqtt_collector):
    url = mosquitto_broker.url
    mosquitto_broker.stop()
    publisher = Publisher(BrokerSettings.from_url(url), "L1", ["cam1"], small_disk / "spool",
                          reconnect_delay=(0.1, 0.3))
    publisher.start()
    try:
        _fill(publisher, 150)
        at_risk = publisher.stats()["unspooled_alarms"]
        assert at_risk == 150 - len(list((small_disk / "spool").glob("*.json"))) > 0
        collector = None
        mosquitto_broker.start()
        collector = mqtt_collector(url, "patchline/L1/cam1/status")
        status = collector.wait_for(lambda msgs: [p for _t, p, _r in msgs if isinstance(p, dict)
                                                  and "unspooled_alarms" in p], timeout=20)
        assert status[0]["unspooled_alarms"] in (at_risk, 0)  # exact while waiting; 0 once delivered
        assert publisher.wait_idle(30)
        assert publisher.stats()["unspooled_alarms"] == 0 and publisher.stats()["delivered"] >= 150
    finally:
        publisher.close(2.0)
    assert publisher.stats()["lost_alarms"] == 0


# -- 6: a full disk under a bank write; leftovers ------------------------------------------------


def test_a_bank_write_on_a_full_disk_is_one_sentence_and_leaves_the_live_bank_and_no_leftovers(small_disk):
    rng = np.random.default_rng(0)
    first = write_bank(small_disk, "L", rng.normal(size=(20, 40)).astype(np.float32), META).name
    with pytest.raises(BankError) as info:
        write_bank(small_disk, "L", rng.normal(size=(2000, 40)).astype(np.float32), META)  # 320 KB: no room
    message = str(info.value)
    assert message.startswith("cannot write a new bank of line L in") and "the live bank is unchanged" in message
    assert "\n" not in message and "faiss" not in message.lower()
    assert current_version(small_disk, "L") == first
    assert sorted(p.name for p in (small_disk / "L").iterdir()) == sorted([first, CURRENT_FILE, ".writers"])


def test_leftovers_of_crashed_writes_go_at_the_next_write_and_with_banks_prune(tmp_path):
    rng = np.random.default_rng(1)
    first = write_bank(tmp_path, "L", rng.normal(size=(20, 40)).astype(np.float32), META).name
    line = tmp_path / "L"

    def leave_leftovers():
        (line / ".20260101T000000Z.ab12cd").mkdir()
        (line / ".20260101T000000Z.ab12cd" / "index.faiss").write_bytes(b"half")
        (line / ".work-xyz").mkdir()
        (line / ".CURRENT.k2j3.tmp").write_text("2026")
        (line / "index.faiss.part").write_bytes(b"half")

    leave_leftovers()
    done = subprocess.run(patchline("banks", "L", "--banks", str(tmp_path), "--prune"), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "removed 4 half-written leftover(s)" in done.stdout
    assert sorted(p.name for p in line.iterdir()) == sorted([first, CURRENT_FILE, ".writers"])

    leave_leftovers()
    second = write_bank(tmp_path, "L", rng.normal(size=(20, 40)).astype(np.float32), META).name  # the next start
    assert sorted(p.name for p in line.iterdir()) == sorted([first, second, CURRENT_FILE, ".writers"])


def test_leftovers_are_left_alone_while_a_write_is_under_way(tmp_path):
    from patchline.bank.leftovers import remove_leftovers, writing

    line = tmp_path / "L"
    line.mkdir()
    (line / ".work-running").mkdir()
    with writing(line):
        assert remove_leftovers(line) is None and (line / ".work-running").is_dir()
    assert remove_leftovers(line) == [".work-running"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from pipeline_support import prepare_trained_line

    return prepare_trained_line(tmp_path_factory.getbasetemp() / "pipeline-line")


def test_train_add_and_the_feedback_listener_on_a_full_disk(trained, tmp_path, mosquitto_broker, mqtt_collector):
    """A real line's bank on a disk with room for it and little more: growing it fails in one sentence
    (exit 2), and the listener answers each message with that sentence and keeps listening."""
    from pipeline_support import LINE

    bank_bytes = sum(p.stat().st_size for p in (trained.workdir / "faiss-index-precision").rglob("*") if p.is_file())
    disk = tmp_path / "disk"
    disk.mkdir()
    size_k = bank_bytes // 1024 + 48
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_k}k", "tmpfs", str(disk)], check=True)
    try:
        shutil.copytree(trained.workdir / "faiss-index-precision", disk / "banks")
        live = current_version(disk / "banks", LINE)
        good = tmp_path / "good"
        good.mkdir()
        name = next(n for n in sorted(trained.expected) if trained.expected[n]["label"] == 0)
        shutil.copy(trained.frames / name, good / name)
        done = subprocess.run(patchline("train", "--line", LINE, "--add", str(good), "--banks", str(disk / "banks"),
                                        "--quiet"), cwd=trained.workdir, capture_output=True, text=True, timeout=600)
        assert done.returncode == 2, done.stderr[-2000:]
        assert "cannot write a new bank of line" in done.stderr and done.stderr.count("\n") == 1
        assert "Traceback" not in done.stderr and current_version(disk / "banks", LINE) == live

        replies = mqtt_collector(mosquitto_broker.url, f"patchline/{LINE}/feedback/reply")
        listener = subprocess.Popen(patchline("feedback", LINE, "--listen", "--mqtt", mosquitto_broker.url, "--banks",
                                              str(disk / "banks"), "--image-root", str(good), "--count", "2",
                                              "--timeout", "600"),
                                    cwd=trained.workdir, stderr=subprocess.PIPE, text=True)
        for row in listener.stderr:
            if "listening for feedback" in row:
                break
        from patchline.mqtt.broker import connect_now, make_client

        settings = BrokerSettings.from_url(mosquitto_broker.url)
        client = make_client(settings, "console")
        connect_now(client, settings)
        client.loop_start()
        for request_id in ("first", "second"):
            client.publish(f"patchline/{LINE}/feedback", json.dumps({"false_alarm": [name], "id": request_id}),
                           qos=1).wait_for_publish(5)
        client.loop_stop()
        client.disconnect()
        got = replies.wait_for(lambda msgs: [p for _t, p, _r in msgs] if len(msgs) >= 2 else None, timeout=600)
        assert listener.wait(120) == 0
        assert [g["id"] for g in got] == ["first", "second"]
        assert all("cannot write a new bank" in g["error"] for g in got)
        assert current_version(disk / "banks", LINE) == live
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
