"""`patchline run`'s options for a PLC (docs/plc.md): the Modbus TCP and OPC UA servers, triggered mode, the
trigger folder, the deadline, the heartbeat, the recipes. Argparse only; the station is patchline/plc/station.py."""

from __future__ import annotations

import argparse

from patchline.cli.types import folder_to_use, integer
from patchline.errors import ConfigError
from patchline.names import check_name


def host_port(text: str) -> tuple[str, int]:
    """`[HOST]:PORT` → (host, port); an empty host listens on every interface."""
    host, sep, port = str(text).rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535 or len(text) > 300:
        raise argparse.ArgumentTypeError(f"{text[:80]!r} is not [HOST]:PORT (e.g. :5020 or 127.0.0.1:5020)")
    if host and not all(c.isalnum() or c in ".-:" for c in host):
        raise argparse.ArgumentTypeError(f"{host[:80]!r} is not a host name or address")
    return host, int(port)


def recipe(text: str) -> tuple[int, str]:
    """`N=LINE` → (N, LINE): recipe number N (1 … 65535) judges with product line LINE."""
    number, sep, line = str(text).partition("=")
    if not sep or not number.strip().isdigit() or not 1 <= int(number) <= 65535 or len(number.strip()) > 5:
        raise argparse.ArgumentTypeError(f"{text[:80]!r} is not N=LINE with a recipe number N of 1 … 65535")
    try:
        return int(number), check_name(line.strip(), "line")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def opcua_url(text: str) -> tuple[str, int]:
    """`opc.tcp://HOST[:PORT]` → (host, port); port 4840 when none."""
    from patchline.plc.opcua_nodes import opcua_endpoint

    try:
        return opcua_endpoint(text[:300])
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--opcua ")) from None


def add_plc_arguments(p: argparse.ArgumentParser) -> None:
    """--modbus, --opcua, --triggered, --trigger-folder, --deadline-ms, --heartbeat-ms, --recipe."""
    g = p.add_argument_group("PLC (docs/plc.md)")
    g.add_argument("--modbus", metavar="[HOST]:PORT", type=host_port,
                   help="serve each camera's results, trigger, acknowledge and recipe as Modbus TCP holding registers "
                        "(e.g. :5020 on every interface, 127.0.0.1:5020 on loopback only; Modbus has no login)")
    g.add_argument("--opcua", metavar="opc.tcp://HOST:PORT", type=opcua_url,
                   help="serve each camera as an OPC UA object (Objects/Patchline/<camera>: typed variables to read or "
                        "subscribe to, Trigger / Acknowledge / Recipe to write, methods), e.g. opc.tcp://0.0.0.0:4840; "
                        "anonymous sessions, no encryption: keep it on the plant network")
    g.add_argument("--triggered", action="store_true",
                   help="judge only the first frame captured after each trigger (Modbus register, OPC UA node or "
                        "method, MQTT patchline/<camera>/trigger, a file in --trigger-folder) instead of every frame")
    g.add_argument("--trigger-folder", metavar="DIR", type=folder_to_use,
                   help="with --triggered: a new file (any name, e.g. touched by the PLC on a shared drive) in "
                        "DIR/<camera>/ is one trigger of that camera, removed once taken; DIR/<camera>/ is made for "
                        "each camera and emptied at start (stale files trigger nothing)")
    g.add_argument("--deadline-ms", type=integer(1, 60_000), default=200,
                   help="a trigger not answered within this many ms is answered NG with an error code (default 200)")
    g.add_argument("--heartbeat-ms", type=integer(10, 60_000), default=1000,
                   help="the heartbeat register counts up once per period while frames arrive and are judged; it "
                        "stops within two periods when the run stalls (default 1000)")
    g.add_argument("--recipe", action="append", type=recipe, metavar="N=LINE",
                   help="recipe number N judges with line LINE's bank (repeat it); the PLC or MQTT "
                        "patchline/<camera>/recipe chooses between frames")


def plc_options(args):
    """The run's PlcOptions, or None when no PLC option was given."""
    from patchline.app.run_settings import PlcOptions, StationConfig

    if not (args.modbus or args.opcua or args.triggered or args.recipe or args.trigger_folder):
        return None
    station = StationConfig(args.triggered, args.deadline_ms / 1000.0, args.heartbeat_ms / 1000.0,
                            tuple(args.recipe or ()))
    return PlcOptions(station, args.modbus, args.opcua, args.trigger_folder)
