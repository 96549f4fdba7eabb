"""Triggers from a folder (patchline/app/plc_folder.py): the poller against a real Station, one pass at a
time (stale files, one file one trigger, refusals of what does not belong, the bound per poll, a
failing entry), and `patchline run --triggered --trigger-folder DIR --modbus` end to end with a real
pymodbus client reading the camera's registers; bad option combinations end in one sentence."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from plc_support import Plc, line, stop_station  # noqa: F401  (line: the trained line brick)

from patchline.app import plc_folder
from patchline.app.plc_folder import FolderTriggers
from patchline.errors import PatchlineError
from patchline.mqtt.local_broker import free_port
from patchline.plc.state import StationConfig
from patchline.plc.station import Station
from pipeline_support import LINE, REPO, patchline

SHIPPED = REPO / "pipeline" / "folder_layer2_layer3.pipeline"


@pytest.fixture
def station():
    station = Station(StationConfig(True, 60.0, 1.0))
    for camera in ("cam", "cam2"):
        station.add_camera(camera, "brick")
    yield station
    station.close()


def _answer(station: Station, camera: str = "cam") -> None:
    """A frame and its verdict for the waiting trigger, so the next trigger is not an overrun."""
    admission = station.admit(camera, time.time() + 1)
    station.on_verdict({"camera": camera, "line": admission.line, "verdict": "good", "score": 1.0,
                        "threshold": 2.0, "frame_id": 1, "trigger": admission.trigger_id})


def _poller(station, folder: Path, **options) -> FolderTriggers:
    """A started poller whose thread is stopped at once: the test calls poll() itself."""
    poller = FolderTriggers(station, folder, **options).start()
    poller.close()
    return poller


def test_start_makes_a_folder_per_camera_and_removes_stale_files_without_a_trigger(station, tmp_path, caplog):
    folder = tmp_path / "triggers"
    (folder / "cam").mkdir(parents=True)
    for name in ("old-1", "old-2"):
        (folder / "cam" / name).write_text("x")
    with caplog.at_level(logging.WARNING, logger="patchline.app.plc_folder"):
        poller = _poller(station, folder)
    assert (folder / "cam2").is_dir() and list((folder / "cam").iterdir()) == []
    assert poller.stale == 2 and [r.message for r in caplog.records if "stale" in r.message] == [
        f"trigger folder {folder / 'cam'}: removed 2 stale file(s) written before the run started (no trigger)"]
    poller.poll()
    assert station.state("cam").trigger_id == 0 and station.state("cam").refused_writes == 0


def test_each_new_file_is_one_trigger_of_its_camera_and_is_removed(station, tmp_path):
    folder = tmp_path / "triggers"
    poller = _poller(station, folder)
    (folder / "cam" / "part-17").write_text("")
    poller.poll()
    st = station.state("cam")
    assert (st.trigger_id, st.busy, st.overruns) == (1, True, 0) and not (folder / "cam" / "part-17").exists()
    assert station.state("cam2").trigger_id == 0
    poller.poll()
    assert station.state("cam").trigger_id == 1  # a file is one trigger, not one per poll
    _answer(station)
    (folder / "cam" / "part-18.txt").write_bytes(b"\0" * 100)  # any name, any content
    (folder / "cam2" / "x").touch()
    poller.poll()
    assert station.state("cam").trigger_id == 2 and station.state("cam2").trigger_id == 1
    (folder / "cam" / "a").touch()  # a file while cam's trigger still waits: an overrun, as over Modbus
    poller.poll()
    assert station.state("cam").overruns == 1 and poller.triggers == 4 and os.listdir(folder / "cam") == []


def test_what_does_not_belong_is_refused_counted_and_removed_once(station, tmp_path, monkeypatch):
    folder = tmp_path / "triggers"
    poller = _poller(station, folder)
    (folder / "line-9").mkdir()
    (folder / "line-9" / "trigger").touch()  # no camera line-9 in this run
    (folder / "loose-file").touch()  # not in a camera folder
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    (folder / "cam" / "link").symlink_to(target)
    (folder / "cam" / "sub").mkdir()
    os.mkfifo(folder / "cam" / "fifo")
    monkeypatch.setattr(plc_folder, "MAX_NAME", 12)
    (folder / "cam" / "a-very-long-name").touch()
    for _ in range(3):
        poller.poll()
    st = station.state("cam")
    assert (st.trigger_id, st.refused_writes, station.refused_other) == (0, 4, 2)
    assert sorted(os.listdir(folder / "cam")) == ["sub"] and os.listdir(folder / "line-9") == []
    assert not (folder / "loose-file").exists() and target.read_text() == "keep me"  # the link, not its target
    (folder / "line-9" / "again").touch()
    poller.poll()
    assert station.refused_other == 3  # each file there is one refusal


def test_a_file_that_cannot_be_removed_is_refused_once_and_never_triggers(station, tmp_path, monkeypatch):
    folder = tmp_path / "triggers"
    poller = _poller(station, folder)
    unlink = os.unlink

    def stubborn(path, *args, **kwargs):
        if os.path.basename(path) == "locked":
            raise PermissionError(13, "Permission denied")
        return unlink(path, *args, **kwargs)

    monkeypatch.setattr(plc_folder.os, "unlink", stubborn)
    (folder / "cam" / "locked").touch()
    for _ in range(5):
        poller.poll()
    st = station.state("cam")
    assert (st.trigger_id, st.refused_writes) == (0, 1) and (folder / "cam" / "locked").exists()
    (folder / "cam" / "next").touch()
    poller.poll()
    assert station.state("cam").trigger_id == 1  # the stuck file does not block the folder


def test_one_poll_takes_at_most_per_poll_files_of_a_folder(station, tmp_path):
    folder = tmp_path / "triggers"
    poller = _poller(station, folder, per_poll=3)
    for i in range(7):
        (folder / "cam" / f"f{i}").touch()
    counts = []
    for _ in range(3):
        poller.poll()
        counts.append(len(os.listdir(folder / "cam")))
    assert counts == [4, 1, 0] and poller.triggers == 7
    assert station.state("cam").trigger_id == 1 and station.state("cam").overruns == 6


def test_the_poller_thread_survives_a_failing_entry_and_close_stops_it(station, tmp_path, monkeypatch, caplog):
    folder = tmp_path / "triggers"
    take = FolderTriggers._take

    def failing(self, entry, *args):
        if entry.name == "bad":
            raise RuntimeError("boom")
        return take(self, entry, *args)

    monkeypatch.setattr(FolderTriggers, "_take", failing)
    poller = FolderTriggers(station, folder).start()
    try:
        (folder / "cam" / "bad").touch()
        (folder / "cam2" / "good").touch()
        _wait(lambda: station.state("cam2").trigger_id == 1)
        _wait(lambda: any("bad' failed; it is left alone" in r.getMessage() for r in caplog.records))
        (folder / "cam" / "after").touch()
        _wait(lambda: station.state("cam").trigger_id == 1)
        assert (folder / "cam" / "bad").exists() and not (folder / "cam" / "after").exists()
        shutil.rmtree(folder / "cam")  # a camera folder gone during the run is made again
        _wait(lambda: (folder / "cam").is_dir())
    finally:
        poller.close()
    assert not any(t.name == "plc-trigger-folder" for t in threading.enumerate())
    (folder / "cam2" / "late").touch()
    time.sleep(0.1)
    assert (folder / "cam2" / "late").exists()  # closed: nothing is taken any more


def test_a_folder_that_cannot_be_made_is_one_sentence(station, tmp_path):
    (tmp_path / "triggers").mkdir()
    (tmp_path / "triggers" / "cam").write_text("in the way")
    with pytest.raises(PatchlineError, match=r"^--trigger-folder: .*cam is not a folder \(a file is in the way\)"):
        FolderTriggers(station, tmp_path / "triggers").start()
    with pytest.raises(PatchlineError, match=r"^--trigger-folder: cannot make /proc/patchline-triggers/cam: "):
        FolderTriggers(station, Path("/proc/patchline-triggers")).start()


def _wait(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# -- patchline run, end to end -----------------------------------------------------------------------

def test_the_cli_station_takes_a_trigger_file_as_one_answered_trigger(line, tmp_path):
    folder = tmp_path / "triggers"
    (folder / "cam").mkdir(parents=True)
    (folder / "cam" / "stale").touch()  # written before the run: no trigger
    port = free_port()
    proc = subprocess.Popen(patchline("run", str(SHIPPED), "--source", str(line.frames), "--loop", "--fps", "25",
                                      "--camera", "cam", "--line", LINE, "--modbus", f"127.0.0.1:{port}",
                                      "--triggered", "--deadline-ms", "5000", "--trigger-folder", str(folder)),
                            cwd=line.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    plc = None
    try:
        plc = Plc(port, timeout=120)
        regs = plc.wait(lambda r: r["status"] & 1, timeout=60)
        assert (regs["trigger_id"], regs["results"]) == (0, 0) and os.listdir(folder / "cam") == []

        (folder / "cam" / "part-1").write_text("")
        regs = plc.wait(lambda r: r["results"] == 1 and r["result_ready"], timeout=30)
        assert regs["trigger_id"] == 1 and not (folder / "cam" / "part-1").exists()
        time.sleep(0.3)
        assert (plc.regs()["trigger_id"], plc.regs()["overruns"]) == (1, 0)  # exactly one trigger
        assert plc.acknowledge()

        (folder / "not-a-camera").mkdir()
        (folder / "not-a-camera" / "trigger").touch()
        (folder / "cam" / "link").symlink_to(tmp_path / "nowhere")
        plc.wait(lambda r: r["refused_writes"] == 1)
        _wait(lambda: not (folder / "not-a-camera" / "trigger").exists() and not os.listdir(folder / "cam"))

        (folder / "cam" / "part-2").touch()  # the run goes on
        regs = plc.wait(lambda r: r["results"] == 2 and r["result_ready"], timeout=30)
        assert (regs["trigger_id"], regs["refused_writes"], regs["overruns"]) == (2, 1, 0) and proc.poll() is None
    finally:
        out, err = stop_station(proc, plc)
    assert proc.returncode == 0, err[-3000:]
    assert "2 triggers, 2 answers, 0 overruns" in out and "1 refused writes" in out, out
    assert "plc: 1 refused writes naming no camera" in out, out
    assert "removed 1 stale file(s)" in err


@pytest.mark.parametrize("args, words", [
    (["--trigger-folder", "{tmp}/t", "--modbus", ":0"], "--trigger-folder needs --triggered"),
    (["--trigger-folder", "{tmp}/a-file", "--triggered"], "is not a folder (it names a file)"),
    (["--trigger-folder", "{tmp}/t", "--triggered", "--host-api"], "--trigger-folder, --recipe): run the station"),
])
def test_bad_trigger_folder_options_end_in_one_sentence(tmp_path, args, words):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "frames").mkdir()
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    done = subprocess.run(patchline("run", str(SHIPPED), "--source", str(tmp_path / "frames"), "--line", LINE,
                                    *args), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "t").exists()  # refused before anything was made
