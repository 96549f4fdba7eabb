"""`patchline run`'s options for a PLC (docs/plc.md): the Modbus TCP and OPC UA servers, triggered mode, the
trigger folder, the deadline, the heartbeat, the recipes. Argparse only; the station is patchline/plc/station.py."""

from __future__ import annotations

import argparse

from patchline.cli.types import existing_folder, folder_to_use, integer, regular_file
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
    """--modbus, --opcua (and its --opcua-cert / -key / -users / -trust), --triggered, --trigger-folder,
    --deadline-ms, --heartbeat-ms, --recipe."""
    g = p.add_argument_group("PLC (docs/plc.md)")
    g.add_argument("--modbus", metavar="[HOST]:PORT", type=host_port,
                   help="serve each camera's results, trigger, acknowledge and recipe as Modbus TCP holding registers "
                        "(e.g. :5020 on every interface, 127.0.0.1:5020 on loopback only; Modbus has no login)")
    g.add_argument("--opcua", metavar="opc.tcp://HOST:PORT", type=opcua_url,
                   help="serve each camera as an OPC UA object (Objects/Patchline/<camera>: typed variables to read or "
                        "subscribe to, Trigger / Acknowledge / Recipe to write, methods), e.g. opc.tcp://0.0.0.0:4840; "
                        "without --opcua-cert: anonymous sessions, no encryption, for a closed plant network only")
    g.add_argument("--opcua-cert", metavar="FILE", type=regular_file,
                   help="the OPC UA server's certificate (DER or PEM; `patchline opcua-cert` makes one): the server "
                        "then offers Basic256Sha256 only, signed or signed and encrypted")
    g.add_argument("--opcua-key", metavar="FILE", type=regular_file, help="that certificate's private key (PEM or DER)")
    g.add_argument("--opcua-users", metavar="FILE", type=regular_file,
                   help="only these users may log in, anonymous sessions are refused (PBKDF2 hashes, the dashboard's "
                        "format: `patchline dashboard --auth-file FILE --add-user NAME`); needs --opcua-cert")
    g.add_argument("--opcua-trust", metavar="DIR", type=existing_folder,
                   help="only clients whose certificate (.der / .pem / .crt) lies in DIR may connect; needs "
                        "--opcua-cert")
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

    security = opcua_security(args)
    if not (args.modbus or args.opcua or args.triggered or args.recipe or args.trigger_folder):
        return None
    station = StationConfig(args.triggered, args.deadline_ms / 1000.0, args.heartbeat_ms / 1000.0,
                            tuple(args.recipe or ()))
    return PlcOptions(station, args.modbus, args.opcua, args.trigger_folder, security)


def opcua_security(args):
    """The checked OpcUaSecurity of --opcua-cert / --opcua-key / --opcua-users / --opcua-trust (ConfigError,
    one sentence, for a bad file or a combination that does not fit), or None when none was given."""
    from patchline.plc.opcua_security import OpcUaSecurity

    given = [args.opcua_cert, args.opcua_key, args.opcua_users, args.opcua_trust]
    if not any(given):
        return None
    if args.opcua is None:
        raise ConfigError("--opcua-cert, --opcua-key, --opcua-users and --opcua-trust need --opcua opc.tcp://HOST:PORT.")
    return OpcUaSecurity(*given).check()


def add_opcua_cert_command(sub) -> None:
    """Register `patchline opcua-cert`: a self-signed certificate and key for the station's OPC UA server."""
    p = sub.add_parser("opcua-cert", help="make a self-signed certificate and private key for `run --opcua-cert`")
    p.add_argument("--out", type=folder_to_use, required=True, help="folder for server-cert.der and server-key.pem")
    p.add_argument("--host", default="localhost",
                   help="the name or address clients reach the station by, written into the certificate")
    p.set_defaults(func=cmd_opcua_cert)


def cmd_opcua_cert(args) -> int:
    from patchline.plc.opcua_security import APPLICATION_URI, make_certificate

    if len(args.host) > 253 or not args.host or not all(c.isalnum() or c in ".-:" for c in args.host):
        raise ConfigError(f"--host {args.host[:80]!r} is not a host name or address.")
    cert, key = make_certificate(args.out, args.host)
    print(f"wrote {cert} (self-signed, {APPLICATION_URI}, host {args.host}) and {key} (keep it private); "
          f"serve with: patchline run … --opcua opc.tcp://0.0.0.0:4840 --opcua-cert {cert} --opcua-key {key}")
    return 0
