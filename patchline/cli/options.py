"""Options several commands share, each defined once: the banks root, --quiet, the broker's URL,
credentials and TLS files, --line, --allow-plugin, backbone weights."""

from __future__ import annotations

import argparse

from patchline.cli.types import folder_to_use, name, regular_file
from patchline.mqtt.broker import BrokerSettings
from patchline.paths import banks_root


def add_banks(p: argparse.ArgumentParser, overrides_file: bool = False) -> None:
    """--banks: the banks root (default $PATCHLINE_BANKS or ./faiss-index-precision); with
    overrides_file, it replaces the pipeline file's post-process prop and has no default of its own."""
    if overrides_file:
        p.add_argument("--banks", type=folder_to_use, help="banks root; overrides the post-process's banks prop "
                                                           "(default $PATCHLINE_BANKS or ./faiss-index-precision)")
    else:
        p.add_argument("--banks", type=folder_to_use, default=banks_root(),
                       help="banks root (default $PATCHLINE_BANKS or ./faiss-index-precision)")


def add_quiet(p: argparse.ArgumentParser, what: str = "no progress bars") -> None:
    p.add_argument("--quiet", action="store_true", help=what)


def add_line(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--line", type=name, help=what)


def add_allow_plugin(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-plugin", action="append", default=[], metavar="MODULE",
                   help="let the file load this post-process module from outside patchline.plugins (repeatable)")


def add_weights(p, what: str = "backbone weights: MindSpore .ckpt or torchvision .pth", random: str | None = None) -> None:
    """--weights FILE and --random-weights (shown only where `random` says what it is for)."""
    p.add_argument("--weights", type=regular_file, help=what)
    p.add_argument("--random-weights", action="store_true", help=random or argparse.SUPPRESS)


def add_broker(p: argparse.ArgumentParser, what: str = "broker URL mqtt://host:port (mqtts:// for TLS)",
               required: bool = False) -> None:
    """--mqtt URL and the broker's credential and TLS flags (the TLS files must be readable regular files)."""
    p.add_argument("--mqtt", required=required, help=what)
    p.add_argument("--mqtt-username", help="broker user (or $PATCHLINE_MQTT_USERNAME)")
    p.add_argument("--mqtt-password",
                   help="broker password (better: $PATCHLINE_MQTT_PASSWORD; command lines show in ps)")

    def certificate(text: str) -> str:
        return str(regular_file(text))

    p.add_argument("--mqtt-ca", type=certificate, help="CA certificate file for TLS")
    p.add_argument("--mqtt-cert", type=certificate, help="client certificate file for TLS")
    p.add_argument("--mqtt-key", type=certificate, help="client key file for TLS")
    p.add_argument("--mqtt-insecure", action="store_true", help="TLS without checking the broker's host name")


def broker_from(args) -> BrokerSettings:
    """BrokerSettings from the flags add_broker added."""
    return BrokerSettings.from_url(args.mqtt, args.mqtt_username, args.mqtt_password, args.mqtt_ca, args.mqtt_cert,
                                   args.mqtt_key, args.mqtt_insecure)
