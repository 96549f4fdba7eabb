"""What one `patchline run` is: its sources, its pipeline file and its sinks with their options.

The CLI builds a RunSettings from the command line; `run_pipeline` takes it. `check()` refuses a
bad combination in one sentence before anything is opened (no camera dialled, no broker reached).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from patchline.errors import ConfigError
from patchline.mqtt.broker import BrokerSettings
from patchline.plc.state import StationConfig

STATUS_INTERVAL_S = 5.0


@dataclass(frozen=True)
class MqttSinkOptions:
    """Where verdicts go over MQTT: the broker, the alarm spool, how long close() may deliver."""

    broker: BrokerSettings
    spool_dir: Path | None = None  # default $PATCHLINE_SPOOL or ./patchline-spool
    publish_timeout: float = 10.0


@dataclass(frozen=True)
class SnapshotSinkOptions:
    """Keep a JPEG of every defect frame in `folder` (at most quota_mb, oldest removed first)."""

    folder: Path
    quota_mb: float = 500.0


@dataclass(frozen=True)
class PlcOptions:
    """The run as an inspection station a PLC talks to (patchline/plc, docs/plc.md): how it answers
    (station: triggered or free-running cameras, deadline, heartbeat, recipes) and where
    (modbus: (host, port) of the Modbus TCP server; host "" listens on every interface; opcua: (host,
    port) of the OPC UA server, opc.tcp://host:port; trigger_folder: a new file in <it>/<camera>/ is a
    trigger, patchline/app/plc_folder.py; opcua_security: the OPC UA server's certificate, users and
    trusted clients)."""

    station: StationConfig = StationConfig()
    modbus: tuple[str, int] | None = None
    opcua: tuple[str, int] | None = None
    trigger_folder: Path | None = None
    opcua_security: object | None = None  # plc/opcua_security.OpcUaSecurity, checked; None: anonymous, plain

    def triggers_from(self, mqtt: bool) -> list[str]:
        """The ways a trigger can reach this run (a triggered run needs at least one)."""
        return ((["Modbus"] if self.modbus is not None else []) + (["OPC UA"] if self.opcua is not None else [])
                + (["MQTT"] if mqtt else []) + (["a trigger folder"] if self.trigger_folder is not None else []))

    def check(self, mqtt: bool) -> None:
        """Raise ConfigError naming the option a station cannot use."""
        self.station.check()
        if self.modbus is not None and not (isinstance(self.modbus[1], int) and 0 <= self.modbus[1] <= 65535):
            raise ConfigError(f"--modbus: the port must be 0 … 65535, got {self.modbus[1]}.")
        if self.opcua is not None and not (isinstance(self.opcua[1], int) and 1 <= self.opcua[1] <= 65535):
            raise ConfigError(f"--opcua: the port must be 1 … 65535, got {self.opcua[1]}.")
        if self.trigger_folder is not None and not self.station.triggered:
            raise ConfigError("--trigger-folder needs --triggered: its files are triggers, and without --triggered "
                              "every frame is judged.")
        if self.station.triggered and not self.triggers_from(mqtt):
            raise ConfigError("--triggered needs a way for triggers to arrive: --modbus [HOST]:PORT, --opcua "
                              "opc.tcp://HOST:PORT, --mqtt URL or --trigger-folder DIR.")


@dataclass(frozen=True)
class RunSettings:
    """One run: sources → the pipeline file's chain → sinks.

    sources: folders of images or rtsp:// URLs replacing the file's sources (empty: the file's own;
    several: one per source of a stream that merges them, in the file's order).
    line / banks_root: override the post-process's props. max_frames: stop after this many results.
    loop_folder: folder sources start again at the end; folder_fps: read one file every 1 / fps s.
    max_batch: the most waiting frames an element takes at once (default: each element's own).
    host_api: run the chain through the MindX host API (StreamManagerApi) and judge on the host.
    plc: the run as an inspection station a PLC talks to (None: none; PlcOptions).
    Sinks: mqtt (None: nothing published), snapshots (None: none kept), publish_snapshots (also send
    each kept snapshot on `…/<camera>/snapshot`), echo (print each verdict as a JSON line when nothing
    is published), quiet (no summary).
    """

    pipeline: Path
    sources: tuple[str, ...] = ()
    camera: str | None = None
    line: str | None = None
    banks_root: Path | None = None
    allow_plugins: tuple[str, ...] = ()
    max_frames: int | None = None
    loop_folder: bool = False
    folder_fps: float | None = None
    max_batch: int | None = None
    ort_threads: int | None = None
    drift_window: int | None = None
    status_interval: float = STATUS_INTERVAL_S
    mqtt: MqttSinkOptions | None = None
    snapshots: SnapshotSinkOptions | None = None
    plc: PlcOptions | None = None
    publish_snapshots: bool = False
    echo: bool = False
    quiet: bool = False
    host_api: bool = False  # drive the stream through StreamManagerApi, judge on the host (app/host_run.py)

    @property
    def source(self) -> str | list[str] | None:
        """The stream manager's form: None, one source, or the list of a merging stream."""
        if not self.sources:
            return None
        return self.sources[0] if len(self.sources) == 1 else list(self.sources)

    def check(self) -> "RunSettings":
        """Return self, or raise ConfigError naming the first value a run cannot take."""
        for source in self.sources:
            if not str(source).startswith(("rtsp://", "rtsps://")) and not Path(source).is_dir():
                raise ConfigError(f"--source {source} is neither an rtsp:// URL nor an existing folder.")
        if self.max_frames is not None and not (_whole(self.max_frames) and self.max_frames > 0):
            raise ConfigError(f"--max-frames must be a positive number, got {self.max_frames}.")
        if self.drift_window is not None and not (_whole(self.drift_window) and self.drift_window >= 5):
            raise ConfigError(f"--drift-window must be at least 5 frames, got {self.drift_window}.")
        if self.folder_fps is not None and not (_real(self.folder_fps) and 0 < self.folder_fps < math.inf):
            raise ConfigError(f"--fps must be a positive number of frames per second, got {self.folder_fps}.")
        if self.max_batch is not None and not (_whole(self.max_batch) and self.max_batch > 0):
            raise ConfigError(f"max_batch must be a positive whole number of frames, got {self.max_batch}.")
        if self.host_api and self.plc is not None:
            raise ConfigError("--host-api does not run the inspection station (--modbus, --opcua, --triggered, "
                              "--trigger-folder, --recipe): run the station without --host-api.")
        if self.host_api and any(str(s).startswith(("rtsp://", "rtsps://")) for s in self.sources):
            raise ConfigError("--host-api sends a folder's images with SendData; a camera runs in the stream "
                              "itself: run it without --host-api.")
        if self.plc is not None:
            self.plc.check(self.mqtt is not None)
            if self.host_api:
                raise ConfigError("--modbus, --triggered, --trigger-folder and --recipe act on the stream itself; "
                                  "run them without --host-api.")
        if self.publish_snapshots and (self.snapshots is None or self.mqtt is None):
            raise ConfigError("--publish-snapshots needs --snapshots DIR and --mqtt URL: it publishes the snapshots "
                              "it keeps.")
        quota = self.snapshots.quota_mb if self.snapshots is not None else 1
        if not (_real(quota) and quota > 0):
            raise ConfigError(f"--snapshot-quota-mb must be a positive number of megabytes, not {quota}.")
        return self


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def run_settings(pipeline, source: str | list[str] | None = None, mqtt_url: str | None = None, **options) -> RunSettings:
    """A checked RunSettings from `run_pipeline`'s earlier keyword form (benchmarks and scripts):
    the run keywords by their RunSettings names, the sinks' by their flags' (spool_dir, publish_timeout,
    snapshots_dir, snapshot_quota_mb, publish_snapshots; mqtt_username … mqtt_insecure)."""
    broker_keys = ("mqtt_username", "mqtt_password", "mqtt_ca", "mqtt_cert", "mqtt_key", "mqtt_insecure")
    broker_args = [options.pop(k, None) for k in broker_keys]
    mqtt = None
    spool, timeout = options.pop("spool_dir", None), options.pop("publish_timeout", 10.0)
    if mqtt_url:
        broker = BrokerSettings.from_url(mqtt_url, *broker_args[:5], bool(broker_args[5]))
        mqtt = MqttSinkOptions(broker, Path(spool) if spool else None, timeout)
    folder, quota = options.pop("snapshots_dir", None), options.pop("snapshot_quota_mb", 500.0)
    snapshots = SnapshotSinkOptions(Path(folder), quota) if folder else None
    sources = () if source is None else (source,) if isinstance(source, str) else tuple(source)
    if options.get("banks_root") is not None:
        options["banks_root"] = Path(options["banks_root"])
    options["allow_plugins"] = tuple(options.get("allow_plugins", ()))
    return RunSettings(Path(pipeline), sources, mqtt=mqtt, snapshots=snapshots, **options).check()
