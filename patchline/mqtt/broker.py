"""How to reach the broker: BrokerSettings (URL, credentials, TLS) and paho client construction."""

from __future__ import annotations

import os
import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from patchline.errors import ConfigError, PatchlineError
from patchline.urls import redacted_url

ENV_USERNAME = "PATCHLINE_MQTT_USERNAME"
ENV_PASSWORD = "PATCHLINE_MQTT_PASSWORD"
_SCHEMES = {"mqtt": (1883, False), "tcp": (1883, False), "mqtts": (8883, True), "ssl": (8883, True)}


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
        shown = redacted_url(str(url))
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


def _send_small_packets_at_once(client: mqtt.Client, userdata, sock) -> None:
    """TCP_NODELAY on every connection the client opens: a small PUBLISH or PUBACK would otherwise
    wait for the peer's delayed ACK (Nagle), up to ~40 ms on Linux, whenever earlier data is unacknowledged."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):  # not a TCP socket (e.g. a websocket wrapper): leave it as it is
        pass


def make_client(settings: BrokerSettings, client_id: str = "", clean_session: bool = True) -> mqtt.Client:
    """A paho 2.x client (callback API v2, MQTT 3.1.1) with credentials and TLS applied."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         clean_session=clean_session, protocol=mqtt.MQTTv311)
    client.on_socket_open = _send_small_packets_at_once
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


def connect_now(client: mqtt.Client, settings: BrokerSettings, attempts: int = 3, delay: float = 0.5) -> None:
    """Connect `client` synchronously, retrying `attempts` times; raise one PatchlineError sentence
    (naming TLS trust or handshake problems) when the broker stays away."""
    last = None
    for i in range(max(1, attempts)):
        try:
            client.connect(settings.host, settings.port, settings.keepalive)
            return
        except (OSError, ValueError) as exc:  # refused, unreachable, DNS, TLS handshake
            last = exc
            if i + 1 < attempts:
                time.sleep(delay)
    if isinstance(last, ssl.SSLCertVerificationError):
        reason = f"its TLS certificate is not trusted ({last.verify_message}; pass the broker's CA with --mqtt-ca)"
    elif isinstance(last, ssl.SSLError):
        reason = f"the TLS handshake failed ({last.reason or last})"
    else:
        reason = getattr(last, "strerror", None) or str(last) or type(last).__name__
    raise PatchlineError(f"cannot reach the MQTT broker at {settings.address}: {reason}.")
