"""Alarm snapshots: a JPEG per defect frame, named in its alarm, published beside it, kept within a quota."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from pipeline_support import LINE, REPO, check_run, patchline, prepare_trained_line

from patchline.core.anomaly_map import anomaly_map, defect_region
from patchline.report.snapshots import SnapshotStore, encode_snapshot, snapshot_identity, snapshot_picture


_SCORES = np.zeros((28, 28), np.float32)
_SCORES[10:14, 5:9] = 3.0  # one defect, in patch rows 10-13, columns 5-8


def _jpeg(seed: int, side: int = 224) -> bytes:
    rng = np.random.default_rng(seed)
    crop = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)  # noise: JPEGs of very different sizes
    picture = snapshot_picture(crop, anomaly_map(_SCORES, side), 1.0, f"frame {seed}")
    return encode_snapshot(picture, {"name": f"{seed}.jpg", "frame_id": seed})


def _folder_bytes(folder) -> int:
    return sum(p.stat().st_size for p in folder.iterdir())


def test_a_snapshot_carries_its_identity_and_shows_the_region(tmp_path):
    data = _jpeg(7)
    assert snapshot_identity(data) == {"name": "7.jpg", "frame_id": 7}
    picture = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == (28 + 2 * 224, 2 * 2 * 224, 3)  # caption bar over crop | heat map, enlarged twice
    x0, y0, _, y1 = defect_region(anomaly_map(_SCORES, 224), 1.0, (0, 0, 1, 1))["bbox"]
    box_edge = picture[28 + 2 * y0 + 2: 28 + 2 * y1 - 2, 2 * 224 + 2 * x0]  # the box's left side on the heat map
    assert box_edge.mean() > 200, "the region is boxed in white"
    assert snapshot_identity(b"\xff\xd8\xff\xe0not ours") is None and snapshot_identity(b"") is None


def test_the_snapshot_folder_never_exceeds_its_quota_and_drops_the_oldest_first(tmp_path):
    folder = tmp_path / "snaps"
    folder.mkdir()
    (folder / "0000_before.jpg").write_bytes(_jpeg(0))  # left by an earlier run: counted from the start
    quota = 4 * len(_jpeg(1))
    store = SnapshotStore(folder, quota)
    kept = []
    for i in range(1, 30):
        path = store.save(f"{i:04d}.jpg", _jpeg(i))
        assert path is not None and path.is_file()
        kept.append(path.name)
        assert _folder_bytes(folder) <= quota, f"over the quota after snapshot {i}"
        assert store.used_bytes == _folder_bytes(folder)
    left = sorted(p.name for p in folder.iterdir())
    assert left == sorted(kept[-len(left):]), "the newest stay, the oldest went first"
    assert not (folder / "0000_before.jpg").exists() and store.removed >= 26
    assert store.save("huge.jpg", b"\xff\xd8" + bytes(quota)) is None, "one larger than the quota is not kept"
    assert _folder_bytes(folder) <= quota


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    return prepare_trained_line(tmp_path_factory.getbasetemp() / "pipeline-line")


def test_each_alarm_names_its_snapshot_and_the_jpeg_is_published_beside_it(line, tmp_path, mosquitto_broker,
                                                                           mqtt_collector):
    collector = mqtt_collector(mosquitto_broker.url, [f"patchline/{LINE}/#"])
    snaps = tmp_path / "snaps"
    check_run(patchline("run", str(REPO / "pipeline" / "folder_layer2_layer3.pipeline"), "--source", str(line.frames),
                        "--mqtt", mosquitto_broker.url, "--line", LINE, "--camera", "cam1",
                        "--spool", str(tmp_path / "spool"), "--snapshots", str(snaps), "--publish-snapshots",
                        "--quiet"), line.workdir, timeout=180)
    alarms = collector.wait_for(lambda m: [p for t, p, _ in m if t.endswith("cam1/alarm")] if
                                any(t.endswith("cam1/status") and p["state"] == "offline" for t, p, _ in m) else None,
                                timeout=30)
    time.sleep(0.5)
    assert len(alarms) >= 3
    published = {snapshot_identity(p)["name"]: p for p in collector.payloads("cam1/snapshot")}
    assert set(published) == {a["snapshot"] for a in alarms}, "one published JPEG per alarm, matched by name"
    assert sorted(p.name for p in snaps.iterdir()) == sorted(a["snapshot"] for a in alarms)
    for alarm in alarms:
        data = (snaps / alarm["snapshot"]).read_bytes()
        assert data == published[alarm["snapshot"]]
        identity = snapshot_identity(data)
        assert identity["frame_id"] == alarm["frame_id"] and identity["score"] == alarm["score"]
        picture = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert picture.shape[0] > 300 and picture.shape[1] > 600  # the 224 crop, enlarged, beside its heat map
    verdicts = collector.payloads("cam1/verdict")
    assert all("snapshot" not in v and "_snapshot_jpeg" not in v for v in verdicts if v["verdict"] == "good")


def test_publishing_snapshots_without_a_folder_is_one_sentence(line, tmp_path):
    import subprocess

    done = subprocess.run(patchline("run", str(REPO / "pipeline" / "folder_layer2_layer3.pipeline"), "--source",
                                    str(line.frames), "--line", LINE, "--publish-snapshots"),
                          cwd=line.workdir, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--publish-snapshots needs --snapshots DIR" in done.stderr
    assert "Traceback" not in done.stderr
