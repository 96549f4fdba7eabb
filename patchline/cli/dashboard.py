"""The `patchline dashboard` sub-command's arguments and entry (argparse only; the work is in
patchline.dashboard): serve the page, or add a user to its auth file."""

from __future__ import annotations

import sys
from pathlib import Path

from patchline.cli.options import add_broker
from patchline.cli.types import file_to_write, integer, name
from patchline.errors import ConfigError


def cmd_dashboard(args) -> int:
    """`patchline dashboard`: serve the live page until stopped, or (--add-user) add a login and exit."""
    import logging

    from patchline.dashboard.run import run_dashboard

    if args.add_user is not None:
        return add_user_from_terminal(args.auth_file, args.add_user)
    if not args.mqtt:
        raise ConfigError("the dashboard needs --mqtt URL (the broker to show).")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    return run_dashboard(args.mqtt, args.port, args.host, args.line, args.auth_file, args.no_auth,
                         username=args.mqtt_username, password=args.mqtt_password, tls_ca=args.mqtt_ca,
                         tls_cert=args.mqtt_cert, tls_key=args.mqtt_key, tls_insecure=args.mqtt_insecure)


def add_user_from_terminal(auth_file: Path | None, user: str) -> int:
    """`--auth-file F --add-user NAME`: the password from the terminal (twice) or one stdin line."""
    import getpass

    from patchline.dashboard.auth import add_user

    if auth_file is None:
        raise ConfigError("--add-user needs --auth-file FILE (the file to add the user to).")
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {user}: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("the two passwords differ; nothing was written.")
    else:
        password = sys.stdin.readline().rstrip("\n")
    add_user(auth_file, user, password)
    print(f"user {user} written to {auth_file}")
    return 0


def add_dashboard_command(sub) -> None:
    """Register `patchline dashboard` on the sub-command parser."""
    p = sub.add_parser("dashboard", help="a live web page of every camera (status, scores, alarms, snapshots), fed "
                                         "from the broker")
    add_broker(p)
    p.add_argument("--port", type=integer(1, 65535), default=8080, help="HTTP port (default 8080)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to serve on (default 127.0.0.1; any other address needs --auth-file or --no-auth)")
    p.add_argument("--line", type=name, help="only this product line")
    p.add_argument("--auth-file", type=file_to_write, metavar="FILE",
                   help="users allowed to see the page (HTTP Basic; PBKDF2 password hashes, see --add-user)")
    p.add_argument("--add-user", type=name, metavar="NAME",
                   help="add NAME to --auth-file with a password read from the terminal (or one stdin line), then exit")
    p.add_argument("--no-auth", action="store_true",
                   help="serve a non-loopback --host to anyone without a login (a trusted network only)")
    p.set_defaults(func=cmd_dashboard)
