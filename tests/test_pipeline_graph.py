"""The stream manager's own behaviour, without models: queues, fan-out, skipping, failing frames."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from pipeline_files import write_decoder_pipeline

from patchline.pipeline.config import parse_pipeline
from patchline.pipeline.frame import EOS, Frame
from patchline.pipeline.graph import FrameQueue
from patchline.pipeline.streams import StreamManager, model_parallelism

pytestmark = pytest.mark.runtime  # runs in the runtime-only install too (scripts/runtime_check.sh)


def frame(i: int) -> Frame:
    return Frame("s", i, f"{i}.png", 0.0)


def test_a_live_queue_keeps_the_newest_frame_and_never_drops_the_end():
    queue = FrameQueue(1, leaky=True)
    for i in range(5):
        queue.put(frame(i))
    queue.put(EOS)
    assert queue.get().frame_id == 4 and queue.get() is EOS
    assert queue.dropped == 4


def test_a_folder_queue_blocks_instead_of_dropping():
    queue = FrameQueue(2, leaky=False)
    got = []
    consumer = threading.Thread(target=lambda: [got.append(queue.get()) for _ in range(6)])
    consumer.start()
    for i in range(5):
        queue.put(frame(i))
    queue.put(EOS)
    consumer.join(5)
    assert [f.frame_id for f in got[:5]] == list(range(5)) and got[5] is EOS and queue.dropped == 0


def write_frames(folder, n: int, broken: int) -> None:
    folder.mkdir()
    for i in range(n):
        path = folder / f"{i:03d}.png"
        if i == broken:
            path.write_bytes(b"\x89PNG not really")
        else:
            cv2.imwrite(str(path), np.full((40, 60, 3), i * 10, np.uint8))


def test_tee_skipframe_and_a_broken_frame(tmp_path):
    write_frames(tmp_path / "frames", 8, broken=3)
    data = {"s": {
        "appsrc0": {"factory": "appsrc", "next": "mxpi_imagedecoder0"},
        "mxpi_imagedecoder0": {"factory": "mxpi_imagedecoder", "props": {"outputDataFormat": "RGB"},
                               "next": "mxpi_skipframe0"},
        "mxpi_skipframe0": {"factory": "mxpi_skipframe", "props": {"frameNum": "1"}, "next": "tee0"},
        "tee0": {"factory": "tee", "next": ["appsink0", "queue0"]},
        "queue0": {"factory": "queue", "props": {"max-size-buffers": "2"}, "next": "appsink1"},
        "appsink0": {"factory": "appsink"},
        "appsink1": {"factory": "appsink"},
    }}
    results = []
    lock = threading.Lock()

    def on_result(payload):
        with lock:
            results.append(payload)

    manager = StreamManager(parse_pipeline(data, "t.pipeline"), str(tmp_path / "frames"), on_result=on_result)
    manager.start()
    assert manager.wait(30)
    manager.close()
    stats = manager.stats()["s"]
    # frame 3 cannot be decoded: it passes the skipper untouched (errors are never skipped) and
    # reaches both sinks as an error result; of the rest, every other one is kept.
    ids = sorted(r["frame_id"] for r in results)
    assert ids == [0, 0, 2, 2, 3, 3, 5, 5, 7, 7]
    errors = [r for r in results if r.get("verdict") == "error"]
    assert len(errors) == 2 and all("003.png" in r["reason"] for r in errors)
    assert stats["frames_in"] == 8 and stats["dropped"] == 0 and stats["fatal"] is None


def test_models_share_the_cores():
    REPO = Path(__file__).resolve().parents[1]

    from patchline.pipeline.config import load_pipeline

    one = parse_pipeline({"s": {
        "appsrc0": {"factory": "appsrc", "next": "appsink0"}, "appsink0": {"factory": "appsink"}}}, "t")
    assert model_parallelism(one, cores=2) == (2, 1)  # no model: nothing to share
    two = load_pipeline(REPO / "pipeline" / "elpv_mono.pipeline", check_files=False)
    assert model_parallelism(two, cores=2) == (1, 1)  # layer2 and layer3 models, a core each
    assert model_parallelism(two, cores=8) == (4, 1)
    assert model_parallelism(two, cores=8, threads=2) == (2, 2)


def test_an_appsrc_stream_without_a_source_is_refused_before_it_starts():
    import pytest
    REPO = Path(__file__).resolve().parents[1]

    from patchline.errors import ConfigError
    from patchline.pipeline.config import load_pipeline

    config = load_pipeline(REPO / "pipeline" / "folder_layer2.pipeline", check_files=False)
    with pytest.raises(ConfigError, match="--source FOLDER"):
        StreamManager(config)


def test_two_workers_of_an_element_keep_the_frames_in_order(tmp_path, monkeypatch):
    import time

    from patchline.plugins.image_ops import ImageDecoder

    write_frames(tmp_path / "frames", 12, broken=5)
    decode = ImageDecoder.process
    threads = set()

    def slow_first(self, frame):  # earlier frames take longer: two workers would finish out of order
        threads.add(threading.current_thread().name)
        time.sleep(0.02 if frame.frame_id % 2 == 0 else 0.0)
        return decode(self, frame)

    monkeypatch.setattr(ImageDecoder, "workers", 2)
    monkeypatch.setattr(ImageDecoder, "process", slow_first)
    data = {"s": {"appsrc0": {"factory": "appsrc", "next": "mxpi_imagedecoder0"},
                  "mxpi_imagedecoder0": {"factory": "mxpi_imagedecoder", "props": {"outputDataFormat": "RGB"},
                                         "next": "appsink0"},
                  "appsink0": {"factory": "appsink"}}}
    results = []
    manager = StreamManager(parse_pipeline(data, "t.pipeline"), str(tmp_path / "frames"), on_result=results.append)
    manager.start()
    assert manager.wait(30)
    manager.close()
    assert len(threads) == 2, threads
    assert [r["frame_id"] for r in results] == list(range(12))  # arrival order, each once
    assert [r["frame_id"] for r in results if r.get("verdict") == "error"] == [5]


def test_run_reads_a_folder_at_a_cameras_pace_with_fps_and_refuses_fps_without_a_folder(tmp_path):
    import time

    import pytest

    from patchline.app.run import run_pipeline
    from patchline.app.run_settings import run_settings
    from patchline.errors import ConfigError

    write_frames(tmp_path / "frames", 6, broken=-1)
    path = tmp_path / "t.pipeline"
    write_decoder_pipeline(path)

    def timed_run(**options) -> list[float]:
        """When each frame entered the stream (its file read), as run_pipeline ran it."""
        entered = []

        def watch(manager):
            source = manager.streams["s"].nodes["appsrc0"].element
            frames = source.frames
            source.frames = lambda stop: (entered.append(f.started) or f for f in frames(stop))

        assert run_pipeline(run_settings(path, str(tmp_path / "frames"), line="L", quiet=True, **options),
                            on_start=watch) == 0
        return entered

    paced = np.diff(timed_run(folder_fps=20))
    assert len(paced) == 5 and paced.min() >= 0.05 - 2e-3 and paced.max() < 0.05 + 0.03, paced
    assert np.diff(timed_run()).max() < 0.04  # unpaced: each file as soon as the stream takes it
    for bad in (0, -5, float("inf"), float("nan"), True):
        with pytest.raises(ConfigError, match="--fps must be a positive number"):
            run_pipeline(run_settings(path, str(tmp_path / "frames"), line="L", folder_fps=bad))
    began = time.perf_counter()
    with pytest.raises(ConfigError, match="paces folder sources"):
        run_pipeline(run_settings(path, "rtsp://127.0.0.1:9/cam", line="L", folder_fps=25))
    assert time.perf_counter() - began < 5  # refused before any camera is waited for


def test_a_paced_folder_stops_while_it_waits(tmp_path):
    import time

    from patchline.pipeline.elements import StreamContext
    from patchline.plugins.sources import FolderSource

    write_frames(tmp_path / "frames", 3, broken=-1)
    source = FolderSource("appsrc0", {"folder": str(tmp_path / "frames")},
                          StreamContext("s", "c", "p", options={"folder_fps": 0.5}))
    stop = threading.Event()
    frames = source.frames(stop)
    assert next(frames).frame_id == 0
    threading.Timer(0.1, stop.set).start()
    began = time.perf_counter()
    assert list(frames) == [] and time.perf_counter() - began < 1.0  # not the 2 s to the next file
