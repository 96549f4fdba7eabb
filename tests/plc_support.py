"""The PLC side of the Modbus tests: the trained lines (brick and brick-b, same geometry), a real
pymodbus client reading and writing a camera's register block, and `run_pipeline` in a thread."""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time

import pytest
from pymodbus.client import ModbusTcpClient

from patchline.app.run import run_pipeline
from patchline.plc.modbus import ACKNOWLEDGE, BLOCK, NAMES, RECIPE, TRIGGER
from pipeline_support import IMAGESIZE, LINE, RESIZE, check_run, patchline, prepare_trained_line

logging.getLogger("pymodbus").setLevel(logging.ERROR)  # its deprecation notes and exception logs are noise here


OTHER = "brick-b"  # a second line with the same geometry, trained on fewer images: recipe 2


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    line = prepare_trained_line(tmp_path_factory.getbasetemp() / "pipeline-line")
    if not (line.workdir / "faiss-index-precision" / OTHER / "CURRENT").is_file():
        few = line.workdir / "few-good"
        few.mkdir(exist_ok=True)
        for image in sorted((line.workdir / "data" / LINE / "train" / "good").iterdir())[:8]:
            shutil.copy(image, few / image.name)
        check_run(patchline("train", "--line", OTHER, "--images", str(few), "--backbone", "efficientnet_lite0",
                            "--layer", "layer2,layer3", "--resize", str(RESIZE), "--imagesize", str(IMAGESIZE),
                            "--quiet"), line.workdir)
    return line


class Plc:
    """A PLC on loopback: `regs(i)` reads camera i's 16 registers by name; writes return True when the
    server accepted them (False: a Modbus exception answer)."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0):
        self.port = port
        self.client = ModbusTcpClient(host, port=port, timeout=2)
        deadline = time.monotonic() + timeout
        while not self.client.connect():
            if time.monotonic() > deadline:
                raise AssertionError(f"no Modbus server on {host}:{port}")
            time.sleep(0.05)

    def close(self) -> None:
        self.client.close()

    def regs(self, camera: int = 0) -> dict[str, int]:
        answer = self.client.read_holding_registers(camera * BLOCK, count=BLOCK, device_id=1)
        assert not answer.isError(), answer
        return dict(zip(NAMES, answer.registers))

    def write(self, register: int, value: int, camera: int = 0) -> bool:
        return not self.client.write_register(camera * BLOCK + register, value, device_id=1).isError()

    def trigger(self, camera: int = 0) -> bool:
        return self.write(TRIGGER, 1, camera)

    def acknowledge(self, camera: int = 0) -> bool:
        return self.write(ACKNOWLEDGE, 1, camera)

    def recipe(self, number: int, camera: int = 0) -> bool:
        return self.write(RECIPE, number, camera)

    def wait(self, predicate, camera: int = 0, timeout: float = 10.0, every: float = 0.002) -> dict[str, int]:
        """Poll camera's registers until predicate(regs) holds; the registers then (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            regs = self.regs(camera)
            if predicate(regs):
                return regs
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; registers now {regs}")
            time.sleep(every)

    def inspect(self, camera: int = 0, timeout: float = 10.0) -> dict[str, int]:
        """The handshake of docs/plc.md: trigger, wait for result_ready, read, acknowledge. The registers
        read at result_ready."""
        before = self.regs(camera)["results"]
        assert self.trigger(camera)
        regs = self.wait(lambda r: r["result_ready"] and r["results"] != before, camera, timeout)
        assert self.acknowledge(camera)
        return regs


@contextlib.contextmanager
def running(settings, sinks=(), timeout: float = 120.0):
    """run_pipeline(settings, sinks) in a thread until the block ends; yields the StreamManager once started."""
    started, done, failure = threading.Event(), threading.Event(), []
    managers = []

    def on_start(manager):
        managers.append(manager)
        started.set()

    def target():
        try:
            run_pipeline(settings, list(sinks), on_start=on_start)
        except BaseException as exc:  # reported to the test
            failure.append(exc)
        finally:
            done.set()
            started.set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    started.wait(timeout)
    if failure:
        raise failure[0]
    try:
        yield managers[0]
    finally:
        if managers:
            managers[0].stop()
        assert done.wait(timeout), "the run did not end"
        if failure:
            raise failure[0]


def stop_station(proc, plc=None, timeout: float = 60.0) -> tuple[str, str]:
    """End a `patchline run` station started with subprocess.Popen: close the PLC client (if any),
    send SIGINT as a plant's Ctrl-C would, and return the run's (stdout, stderr)."""
    import signal

    if plc is not None:
        plc.close()
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=timeout)
