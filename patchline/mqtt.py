"""The host side that publishes pipeline results over MQTT (DESIGN.md §6, §10).

Topics (QoS 1):
    patchline/<line>/<camera>/verdict   every frame
    patchline/<line>/<camera>/alarm     defects only
    patchline/<line>/<camera>/status    retained: online / offline / reconnecting …, counters
    patchline/<line>/bank               retained: the live bank version

Last Will: MQTT allows one will per connection, and a status topic must read `offline` when
the process dies, whatever the number of cameras. The publishing connection carries the will
for the first camera's status; every further camera gets a small idle "will keeper" connection
whose only job is to carry that camera's will. So after a kill -9 or a network loss every
`patchline/<line>/<camera>/status` reads `offline` (reason "connection lost"); after close()
every one reads `offline` (reason "closed") from a normal retained publish.

While the broker is away, verdicts wait in a bounded in-memory queue (the oldest dropped first
when full) and alarms in a bounded on-disk spool: one JSON file per alarm, written atomically,
deleted only after the broker acknowledged it (PUBACK), and picked up again by the next
Publisher on the same spool folder after a restart. Delivery is at-least-once: an alarm whose
PUBACK was lost is sent again.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from patchline.errors import ConfigError

log = logging.getLogger("patchline.mqtt")

ENV_USERNAME = "PATCHLINE_MQTT_USERNAME"
ENV_PASSWORD = "PATCHLINE_MQTT_PASSWORD"
_LASTING_STATUS_KEYS = {"state", "bank_version", "fps", "dropped_frames", "errors", "source"}
_SCHEMES = {"mqtt": (1883, False), "tcp": (1883, False), "mqtts": (8883, True), "ssl": (8883, True)}


def utc_now() -> str:
    """The current time as ISO 8601 UTC with milliseconds, e.g. 2024-05-01T12:00:00.123Z."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_default(obj):
    # numpy scalars and arrays reach payloads from the scoring code; .item()/.tolist() covers both.
    for attr in ("item", "tolist"):
        if hasattr(obj, attr):
            try:
                return getattr(obj, attr)()
            except (TypeError, ValueError):
                pass
    if isinstance(obj, (Path, datetime)):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def encode_payload(payload: dict) -> bytes:
    """Compact UTF-8 JSON; numpy values become plain numbers/lists."""
    return json.dumps(payload, separators=(",", ":"), default=_json_default).encode()


def _check_topic_level(value: str, what: str) -> str:
    if not isinstance(value, str) or not value or any(c in value for c in "/+#\0"):
        raise ConfigError(f"{what} {value!r} must be a non-empty name without '/', '+', '#'.")
    return value


@dataclass(frozen=True)
class BrokerSettings:
    """Where and how to reach the broker. The password never appears in repr() or logs."""

    host: str
    port: int = 1883
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_insecure: bool = False
    keepalive: int = 30

    def __repr__(self) -> str:
        return (f"BrokerSettings(host={self.host!r}, port={self.port}, tls={self.tls}, "
                f"username={'***' if self.username else None}, password={'***' if self.password else None}, "
                f"tls_ca={self.tls_ca!r}, tls_cert={self.tls_cert!r}, tls_key={self.tls_key!r}, "
                f"tls_insecure={self.tls_insecure})")

    __str__ = __repr__

    @property
    def address(self) -> str:
        """host:port, for messages (no credentials)."""
        return f"{self.host}:{self.port}"

    @classmethod
    def from_url(cls, url: str, username: str | None = None, password: str | None = None,
                 tls_ca: str | None = None, tls_cert: str | None = None, tls_key: str | None = None,
                 tls_insecure: bool = False) -> "BrokerSettings":
        """Parse `mqtt://host[:port]` or `mqtts://host[:port]` (TLS).

        Credentials come from the arguments, else from the URL's user-info, else from
        $PATCHLINE_MQTT_USERNAME / $PATCHLINE_MQTT_PASSWORD. Any TLS file option turns TLS on.
        """
        shown = _redact(str(url))
        bad = ConfigError(f"MQTT URL {shown!r} is not of the form mqtt://host:port or mqtts://host:port.")
        try:
            parts = urlsplit(str(url).strip())
            scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
        except ValueError:  # e.g. a port that is not a number or out of range
            raise bad from None
        if scheme not in _SCHEMES or not host or parts.path not in ("", "/") or parts.query:
            raise bad
        default_port, tls = _SCHEMES[scheme]
        for name, path in (("--mqtt-ca", tls_ca), ("--mqtt-cert", tls_cert), ("--mqtt-key", tls_key)):
            if path and not Path(path).is_file():
                raise ConfigError(f"MQTT TLS file {path} ({name}) does not exist.")
        if bool(tls_cert) != bool(tls_key):
            raise ConfigError("MQTT TLS client authentication needs both a certificate and a key file.")
        username = username or (parts.username and unquote(parts.username)) or os.environ.get(ENV_USERNAME) or None
        password = password or (parts.password and unquote(parts.password)) or os.environ.get(ENV_PASSWORD) or None
        if password and not username:
            raise ConfigError(f"an MQTT password was given without a user name (set {ENV_USERNAME}).")
        return cls(host=host, port=port or default_port, tls=tls or bool(tls_ca or tls_cert or tls_insecure),
                   username=username, password=password, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key,
                   tls_insecure=tls_insecure)


def _redact(url: str) -> str:
    try:
        parts = urlsplit(url)
        if "@" in parts.netloc:
            return url.replace(parts.netloc, "***@" + parts.netloc.rsplit("@", 1)[1], 1)
    except ValueError:
        pass
    return url


def make_client(settings: BrokerSettings, client_id: str = "", clean_session: bool = True) -> mqtt.Client:
    """A paho 2.x client (callback API v2, MQTT 3.1.1) with credentials and TLS applied."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         clean_session=clean_session, protocol=mqtt.MQTTv311)
    if settings.username:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls:
        try:
            client.tls_set(ca_certs=settings.tls_ca, certfile=settings.tls_cert, keyfile=settings.tls_key)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"MQTT TLS settings cannot be used: {exc}.") from None
        if settings.tls_insecure:
            client.tls_insecure_set(True)
    return client


@dataclass
class _Msg:
    seq: int
    kind: str                 # verdict | alarm | status | bank
    topic: str
    data: bytes
    retain: bool = False
    path: Path | None = None  # the spool file of an alarm


class Publisher:
    """Publishes verdicts, alarms, statuses and bank versions of one product line (QoS 1).

    `spool_dir` holds alarms not yet acknowledged by the broker; give every Publisher its own
    (it is locked against a second process). `max_verdicts` bounds the in-memory verdict queue,
    `max_alarms` the number of spooled alarms. `reconnect_delay` is (first, longest) seconds
    between connection attempts.
    """

    window = 64  # messages handed to paho and not yet acknowledged

    def __init__(self, settings: BrokerSettings, line: str, cameras: list[str], spool_dir: Path,
                 max_verdicts: int = 10000, max_alarms: int = 100000, client_id: str | None = None,
                 reconnect_delay: tuple[float, float] = (0.5, 10.0)):
        self.settings = settings
        self.line = _check_topic_level(line, "line")
        self.cameras = list(dict.fromkeys(_check_topic_level(c, "camera") for c in cameras))
        self.max_verdicts = max(1, int(max_verdicts))
        self.max_alarms = max(1, int(max_alarms))
        self.client_id = client_id or f"patchline-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.reconnect_delay = reconnect_delay
        self.spool_dir = Path(spool_dir)

        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._verdicts: deque[_Msg] = deque()
        self._alarms: deque[_Msg] = deque()
        self._inflight: dict[int, _Msg] = {}
        self._early_acks: set[int] = set()
        self._handing = 0
        self._status: dict[str, dict] = {}
        self._status_dirty: set[str] = set()
        self._bank: dict | None = None
        self._bank_dirty = False
        self._counts = {"delivered": 0, "dropped_verdicts": 0, "dropped_alarms": 0, "spool_errors": 0}
        self._connected = False
        self._down_logged = False
        self._closing = False
        self._stopped = False
        self._started = False
        self._pump: threading.Thread | None = None

        self._lock_spool()
        self._load_spool()
        self.client = make_client(settings, self.client_id)
        self.client.max_inflight_messages_set(self.window + 8)
        self.client.reconnect_delay_set(*reconnect_delay)
        first = self.cameras[0] if self.cameras else None
        will_topic = self.status_topic(first) if first else f"patchline/{self.line}/_host/{self.client_id}/status"
        self.client.will_set(will_topic, self._will_payload(first), qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self._keepers = [self._will_keeper(cam) for cam in self.cameras[1:]]

    def __repr__(self) -> str:
        return f"Publisher(line={self.line!r}, cameras={self.cameras!r}, broker={self.settings.address})"

    # -- topics ------------------------------------------------------------------------------

    def status_topic(self, camera: str) -> str:
        return f"patchline/{self.line}/{camera}/status"

    def _will_payload(self, camera: str | None) -> bytes:
        return encode_payload({"state": "offline", "camera": camera, "line": self.line,
                               "reason": "connection lost", "host": self.client_id})

    def _will_keeper(self, camera: str) -> mqtt.Client:
        client = make_client(self.settings, f"{self.client_id}-will-{camera}"[:200])
        client.reconnect_delay_set(*self.reconnect_delay)
        client.will_set(self.status_topic(camera), self._will_payload(camera), qos=1, retain=True)

        def on_connect(_c, _u, _f, reason_code, _p):
            # Its will may have fired while it was away: restate the camera's real status.
            if not reason_code.is_failure:
                with self._cond:
                    if camera in self._status:
                        self._status_dirty.add(camera)
                    self._cond.notify_all()

        client.on_connect = on_connect
        return client

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; an unreachable broker is retried, not an error."""
        if self._started:
            return
        self._started = True
        for cam in self.cameras:
            self._status.setdefault(cam, {"state": "starting"})
            self._status_dirty.add(cam)
        for client in [self.client, *self._keepers]:
            client.connect_async(self.settings.host, self.settings.port, self.settings.keepalive)
            client.loop_start()
        self._pump = threading.Thread(target=self._pump_loop, name="patchline-mqtt", daemon=True)
        self._pump.start()

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what can be delivered within `timeout` s, mark every camera offline, disconnect.

        Alarms still unacknowledged stay in the spool for the next start; verdicts still queued
        are counted as dropped.
        """
        if self._stopped:
            return
        deadline = time.monotonic() + max(0.0, timeout)
        status_reserve = min(1.0, timeout / 4)
        with self._cond:
            self._closing = True
            if self._started:
                self._cond.wait_for(lambda: self._pending_locked() == 0,
                                    max(0.0, deadline - status_reserve - time.monotonic()))
            for cam in self.cameras:
                self._status.setdefault(cam, {})
                self._status[cam]["state"] = "offline"
                self._status[cam]["reason"] = "closed"
                self._status_dirty.add(cam)
            self._cond.notify_all()
            if self._started:
                self._cond.wait_for(lambda: self._pending_locked(include_status=True) == 0,
                                    max(0.0, deadline - time.monotonic()))
            left_verdicts = len(self._verdicts) + sum(1 for m in self._inflight.values() if m.kind == "verdict")
            left_alarms = len(self._alarms) + sum(1 for m in self._inflight.values() if m.kind == "alarm")
            self._counts["dropped_verdicts"] += left_verdicts
            self._stopped = True
            self._cond.notify_all()
        if left_verdicts or left_alarms:
            log.warning("MQTT broker %s: closing with %d verdicts undelivered (dropped) and %d alarms kept "
                        "in the spool %s for the next start", self.settings.address, left_verdicts, left_alarms,
                        self.spool_dir)
        if self._pump is not None:
            self._pump.join(2.0)
        for client in [self.client, *self._keepers]:
            if self._started:
                client.disconnect()  # a clean disconnect: the broker discards the will
                client.loop_stop()
        self._unlock_spool()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    # -- publishing --------------------------------------------------------------------------

    def publish_result(self, payload: dict) -> None:
        """Queue one pipeline result: `…/verdict` always, `…/alarm` too when verdict == 'defect'.

        Non-blocking (an alarm is written to the spool first, a small local file write).
        """
        camera = _check_topic_level(str(payload.get("camera", "")), "camera")
        payload = {"line": self.line, "timestamp": utc_now(), **payload}
        data = encode_payload(payload)
        base = f"patchline/{self.line}/{camera}"
        alarm = None
        if payload.get("verdict") == "defect":
            alarm = _Msg(next(self._seq), "alarm", f"{base}/alarm", data)
            alarm.path = self._spool_write(alarm)
        verdict = _Msg(next(self._seq), "verdict", f"{base}/verdict", data)
        dropped_files = []
        with self._cond:
            self._verdicts.append(verdict)
            while len(self._verdicts) > self.max_verdicts:
                self._verdicts.popleft()
                self._counts["dropped_verdicts"] += 1
            if alarm is not None:
                self._alarms.append(alarm)
                while self._alarms and self._spooled_locked() > self.max_alarms:
                    old = self._alarms.popleft()
                    self._counts["dropped_alarms"] += 1
                    dropped_files.append(old.path)
            self._cond.notify_all()
        for path in dropped_files:
            _unlink(path)

    def set_status(self, camera: str, state: str, **extra) -> None:
        """Set a camera's retained status (`online`, `offline`, `reconnecting`, …).

        Counters (bank_version, fps, dropped_frames, errors, source) are kept and repeated in
        later statuses until changed; other extra fields (reason, attempt, …) last until the
        state changes. Re-published after every reconnect.
        """
        _check_topic_level(camera, "camera")
        with self._cond:
            st = self._status.setdefault(camera, {})
            if st.get("state") != state:
                # Details such as reason / attempt / retry_in_s belong to the state they came with.
                for key in [k for k in st if k not in _LASTING_STATUS_KEYS]:
                    del st[key]
            st.update(extra)
            st["state"] = state
            self._status_dirty.add(camera)
            self._cond.notify_all()

    def publish_bank(self, version: str) -> None:
        """Publish the live bank version, retained on `patchline/<line>/bank`."""
        with self._cond:
            self._bank = {"line": self.line, "version": str(version), "timestamp": utc_now()}
            self._bank_dirty = True
            for st in self._status.values():
                st["bank_version"] = str(version)
            self._status_dirty.update(self._status)
            self._cond.notify_all()

    def stats(self) -> dict:
        """Counters: queued (waiting or unacknowledged), delivered, dropped_verdicts, dropped_alarms,
        spooled_alarms, connected."""
        with self._cond:
            return {"queued": self._pending_locked(), **self._counts,
                    "spooled_alarms": self._spooled_locked(), "connected": self._connected}

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued message is acknowledged; True if that happened in time."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending_locked(include_status=True) == 0, timeout)

    # -- internals (self._cond held where the name ends in _locked) ---------------------------

    def _pending_locked(self, include_status: bool = False) -> int:
        n = len(self._verdicts) + len(self._alarms) + self._handing
        n += sum(1 for m in self._inflight.values() if include_status or m.kind in ("verdict", "alarm"))
        if include_status:
            n += len(self._status_dirty) + int(self._bank_dirty)
        return n

    def _spooled_locked(self) -> int:
        return len(self._alarms) + sum(1 for m in self._inflight.values() if m.kind == "alarm")

    def _status_payload_locked(self, camera: str) -> bytes:
        st = self._status.get(camera, {})
        payload = {"state": st.get("state", "unknown"), "camera": camera, "line": self.line,
                   "bank_version": st.get("bank_version", self._bank["version"] if self._bank else None),
                   "fps": st.get("fps"), "dropped_frames": st.get("dropped_frames", 0),
                   "dropped_verdicts": self._counts["dropped_verdicts"],
                   "dropped_alarms": self._counts["dropped_alarms"],
                   "errors": st.get("errors", 0), "host": self.client_id, "timestamp": utc_now()}
        payload.update({k: v for k, v in st.items() if k not in payload})
        return encode_payload(payload)

    def _take_work_locked(self) -> list[_Msg]:
        work: list[_Msg] = []
        for cam in sorted(self._status_dirty):
            work.append(_Msg(next(self._seq), "status", self.status_topic(cam),
                             self._status_payload_locked(cam), retain=True))
        self._status_dirty.clear()
        if self._bank_dirty:
            work.append(_Msg(next(self._seq), "bank", f"patchline/{self.line}/bank",
                             encode_payload(self._bank), retain=True))
            self._bank_dirty = False
        room = self.window - len(self._inflight) - len(work)
        while room > 0 and (self._verdicts or self._alarms):
            # Oldest first across both queues, which keeps each topic in order.
            if self._alarms and (not self._verdicts or self._alarms[0].seq < self._verdicts[0].seq):
                work.append(self._alarms.popleft())
            else:
                work.append(self._verdicts.popleft())
            room -= 1
        self._handing = sum(1 for m in work if m.kind in ("verdict", "alarm"))
        return work

    def _has_work_locked(self) -> bool:
        return bool(self._status_dirty or self._bank_dirty or
                    ((self._verdicts or self._alarms) and len(self._inflight) < self.window))

    def _pump_loop(self) -> None:
        # paho's on_publish runs under paho's own lock; so this thread never calls paho while
        # holding self._cond, and the callbacks only take self._cond briefly.
        while True:
            with self._cond:
                while not (self._stopped or (self._connected and self._has_work_locked())):
                    self._cond.wait(0.5)
                if self._stopped:
                    return
                work = self._take_work_locked()
            for msg in work:
                info = self.client.publish(msg.topic, msg.data, qos=1, retain=msg.retain)
                with self._cond:
                    if msg.kind in ("verdict", "alarm"):
                        self._handing -= 1
                    if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:  # not expected: paho's queue is unbounded
                        (self._alarms if msg.kind == "alarm" else self._verdicts).appendleft(msg)
                    elif info.mid in self._early_acks:
                        self._early_acks.discard(info.mid)
                        self._acked_locked(msg)
                    else:
                        self._inflight[info.mid] = msg
                    self._cond.notify_all()

    def _acked_locked(self, msg: _Msg) -> None:
        if msg.kind in ("verdict", "alarm"):
            self._counts["delivered"] += 1
        if msg.path is not None:
            _unlink(msg.path)

    # -- paho callbacks (paho's network thread) -------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            with self._cond:
                first = not self._down_logged
                self._down_logged = True
            if first:  # paho retries with back-off; one line per outage is enough
                log.error("MQTT broker %s refused the connection: %s; results are queued and the login retried",
                          self.settings.address, reason_code)
            return
        log.info("MQTT connected to %s as %s", self.settings.address, self.client_id)
        with self._cond:
            self._connected = True
            self._down_logged = False
            # Retained statuses may have been replaced by the will while we were away.
            self._status_dirty.update(self._status)
            if self._bank is not None:
                self._bank_dirty = True
            self._cond.notify_all()

    def _on_connect_fail(self, client, userdata):
        with self._cond:
            first = not self._down_logged
            self._down_logged = True
        if first:
            log.warning("MQTT broker %s is not reachable; queueing results and retrying in the background",
                        self.settings.address)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        with self._cond:
            self._connected = False
            closing = self._closing
            first = not self._down_logged
            self._down_logged = True
            self._cond.notify_all()
        if not closing and first:
            log.warning("MQTT connection to %s lost (%s); queueing results and reconnecting",
                        self.settings.address, reason_code)

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        with self._cond:
            msg = self._inflight.pop(mid, None)
            if msg is None:
                self._early_acks.add(mid)
            else:
                self._acked_locked(msg)
            self._cond.notify_all()

    # -- alarm spool -------------------------------------------------------------------------

    def _lock_spool(self) -> None:
        try:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(self.spool_dir / ".lock", "w")
        except OSError as exc:
            raise ConfigError(f"alarm spool folder {self.spool_dir} cannot be used: {exc.strerror}.") from None
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            raise ConfigError(f"alarm spool folder {self.spool_dir} is in use by another patchline process.") from None

    def _unlock_spool(self) -> None:
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
        except (OSError, ValueError):
            pass

    def _load_spool(self) -> None:
        files = sorted(p for p in self.spool_dir.glob("*.json") if not p.name.startswith("."))
        for stale in self.spool_dir.glob(".tmp-*"):
            _unlink(stale)
        for path in files:
            try:
                rec = json.loads(path.read_text())
                msg = _Msg(next(self._seq), "alarm", rec["topic"], rec["payload"].encode(), path=path)
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                log.warning("unreadable spooled alarm %s set aside as %s.bad", path.name, path.name)
                try:
                    path.rename(path.with_name(path.name + ".bad"))
                except OSError:
                    pass
                continue
            self._alarms.append(msg)
        while len(self._alarms) > self.max_alarms:
            _unlink(self._alarms.popleft().path)
            self._counts["dropped_alarms"] += 1
        if self._alarms:
            log.info("%d undelivered alarms from an earlier run found in %s; they will be sent first",
                     len(self._alarms), self.spool_dir)

    def _spool_write(self, msg: _Msg) -> Path | None:
        name = f"{time.time_ns():020d}-{os.getpid()}-{msg.seq:09d}.json"
        path = self.spool_dir / name
        tmp = self.spool_dir / f".tmp-{name}"
        try:
            with open(tmp, "w") as fh:
                json.dump({"topic": msg.topic, "payload": msg.data.decode()}, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)  # atomic: a reader sees the whole file or none
            return path
        except OSError as exc:
            with self._cond:
                self._counts["spool_errors"] += 1
            log.error("cannot spool an alarm to %s (%s); it is kept in memory only", self.spool_dir, exc.strerror)
            _unlink(tmp)
            return None


def _unlink(path: Path | None) -> None:
    if path is not None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot remove %s: %s", path, exc.strerror)


def add_broker_arguments(parser) -> None:
    """Broker credential and TLS flags shared by `patchline run` and `patchline alarms` (argparse)."""
    parser.add_argument("--mqtt-username", help="broker user (or $PATCHLINE_MQTT_USERNAME)")
    parser.add_argument("--mqtt-password",
                        help="broker password (better: $PATCHLINE_MQTT_PASSWORD; command lines show in ps)")
    parser.add_argument("--mqtt-ca", help="CA certificate file for TLS")
    parser.add_argument("--mqtt-cert", help="client certificate file for TLS")
    parser.add_argument("--mqtt-key", help="client key file for TLS")
    parser.add_argument("--mqtt-insecure", action="store_true", help="TLS without checking the broker's host name")
