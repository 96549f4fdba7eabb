"""A run's outputs are sinks: one added in a few lines sees every verdict; the settings refuse bad runs."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from pipeline_files import write_decoder_pipeline

from patchline.app.run import run_pipeline
from patchline.app.run_settings import RunSettings, SnapshotSinkOptions, run_settings
from patchline.app.sinks import Sink, SnapshotSink, Verdict
from patchline.errors import ConfigError

pytestmark = pytest.mark.runtime


class CsvSink(Sink):
    """The whole of a new output: one row per verdict."""

    def __init__(self, path: Path):
        self.file = open(path, "w", newline="")
        self.rows = csv.writer(self.file)

    def verdict(self, verdict: Verdict) -> None:
        self.rows.writerow([verdict.payload["frame_id"], verdict.payload.get("verdict", "none")])

    def close(self, timeout=None) -> None:
        self.file.close()


def _frames_and_pipeline(tmp_path: Path, n: int) -> Path:
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(n):
        if i == 2:
            (frames / f"{i:03d}.png").write_bytes(b"\x89PNG not an image")  # an error verdict reaches it too
        else:
            cv2.imwrite(str(frames / f"{i:03d}.png"), np.full((40, 60, 3), i * 10, np.uint8))
    path = tmp_path / "t.pipeline"
    write_decoder_pipeline(path)
    return path


def test_a_csv_sink_added_in_a_few_lines_sees_every_verdict_and_every_status(tmp_path):
    path = _frames_and_pipeline(tmp_path, 7)
    statuses = []

    class StatusLog(Sink):
        def status(self, camera, state, extra):
            statuses.append((camera, state, extra.get("fps")))

    settings = RunSettings(path, (str(tmp_path / "frames"),), camera="cam", line="L", quiet=True)
    assert run_pipeline(settings, [CsvSink(tmp_path / "verdicts.csv"), StatusLog()]) == 0
    rows = list(csv.reader(open(tmp_path / "verdicts.csv")))
    assert sorted(int(r[0]) for r in rows) == list(range(7))
    assert [r[1] for r in rows].count("error") == 1
    assert statuses[0][:2] == ("cam", "online") and statuses[-1][:2] == ("cam", "online")
    assert statuses[-1][2] is not None  # the closing status carries the camera's frames/s


def test_max_frames_is_applied_before_any_sink(tmp_path):
    path = _frames_and_pipeline(tmp_path, 7)
    seen = []

    class Count(Sink):
        def verdict(self, verdict):
            seen.append(verdict.payload["frame_id"])

    run_pipeline(run_settings(path, str(tmp_path / "frames"), line="L", quiet=True, max_frames=3), [Count()])
    assert len(seen) == 3


def test_a_snapshot_that_cannot_be_kept_is_named_nowhere(tmp_path):
    sink = SnapshotSink(tmp_path / "snaps", 1)
    sink.store.save = lambda name, jpeg: (_ for _ in ()).throw(OSError(28, "No space left on device"))
    verdict = Verdict({"camera": "c", "verdict": "defect", "snapshot": "a.jpg"}, b"jpeg")
    sink.verdict(verdict)
    assert "snapshot" not in verdict.payload and verdict.snapshot is None


@pytest.mark.parametrize("change, sentence", [
    ({"max_frames": 0}, "--max-frames must be a positive number"),
    ({"drift_window": 4}, "--drift-window must be at least 5"),
    ({"folder_fps": float("nan")}, "--fps must be a positive number"),
    ({"max_batch": 0}, "max_batch must be a positive whole number"),
    ({"sources": ("/no/such/folder",)}, "is neither an rtsp:// URL nor an existing folder"),
    ({"publish_snapshots": True}, "--publish-snapshots needs --snapshots DIR and --mqtt URL"),
    ({"snapshots": SnapshotSinkOptions(Path("."), 0)}, "--snapshot-quota-mb must be a positive number"),
])
def test_run_settings_refuse_a_bad_run_in_one_sentence(change, sentence):
    base = {"pipeline": Path("x.pipeline"), "sources": ()}
    with pytest.raises(ConfigError, match=sentence):
        RunSettings(**{**base, **change}).check()
