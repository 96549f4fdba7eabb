"""A throw-away Mosquitto on 127.0.0.1: the demo's stand-in for the plant broker, and the broker the
tests and benchmarks start. One launcher for all of them.

The port is picked free, and when another process takes it before Mosquitto binds (the race of
every "free port" pick), Mosquitto exits and the launcher starts again on another port. stop() /
start() keep the port once it listened (broker-outage tests and benchmarks).
"""

from __future__ import annotations

import getpass
import socket
import subprocess
import time
from pathlib import Path

MOSQUITTO = "/usr/sbin/mosquitto"
PORT_TRIES = 5


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class LocalBroker:
    """Mosquitto on 127.0.0.1:<port> (`.url`); persistence keeps retained messages and persistent
    sessions in `workdir` across stop() / start(); listener_options are extra lines of its listener."""

    def __init__(self, workdir: Path, persistence: bool = False, listener_options: tuple[str, ...] = (),
                 scheme: str = "mqtt", binary: str = MOSQUITTO):
        self.binary, self.host, self.scheme = binary, "127.0.0.1", scheme
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        keep = ["persistence true", f"persistence_location {self.workdir}/", "autosave_interval 0"] if persistence \
            else ["persistence false"]
        # Run as root it would drop to user 'mosquitto', which cannot write into a temporary folder.
        self._options = [*listener_options, "allow_anonymous true", "set_tcp_nodelay true", "log_dest stderr",
                         "log_type error",
                         "log_type warning", "log_type notice", "log_type information", *keep,
                         f"user {getpass.getuser()}"]
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self._fixed = False  # the port listened once: keep it
        self.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start Mosquitto and wait until it listens; RuntimeError naming its log otherwise."""
        if self.proc is not None and self.proc.poll() is None:
            return
        for _ in range(1 if self._fixed else PORT_TRIES):
            if not self._fixed:
                self.port = free_port()
            if self._launch(timeout):
                self._fixed = True
                return
        raise RuntimeError(f"mosquitto did not listen on {self.host}:{self.port}: {self.log()[-2000:]}")

    def _launch(self, timeout: float) -> bool:
        self.conf.write_text("\n".join([f"listener {self.port} {self.host}", *self._options]) + "\n")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:  # e.g. the port was taken meanwhile
                return False
            if listening(self.host, self.port):
                return True
            time.sleep(0.05)
        self.stop()
        return False

    def stop(self) -> None:
        """SIGTERM (a persistent broker saves its sessions), SIGKILL after 5 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    close = stop

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
