"""The `patchline` command: one sub-command per job (docs/design.md), one module per group of commands.

    training.py  train, train-all, evaluate, convert-weights, export
    tune.py      tune
    banks.py     feedback, banks, rollback, threshold
    running.py   run, check, alarms, demo
    capture.py   capture
    dashboard.py dashboard
    options.py   the options several commands share; types.py the argparse types of every value

Argparse only: each command calls one function of patchline.app (or the dashboard, or the
pipeline checker). Heavy imports (MindSpore, faiss) happen inside the commands, so `--help` and
input errors are instant and the runtime commands never load MindSpore. Any PatchlineError ends
the program with one sentence on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from patchline import __version__
from patchline.app.resolve import check_folder
from patchline.cli.banks import add_bank_commands
from patchline.cli.capture import add_capture_command
from patchline.cli.dashboard import add_dashboard_command
from patchline.cli.plc import add_opcua_cert_command
from patchline.cli.running import add_running_commands
from patchline.cli.training import add_training_commands
from patchline.cli.tune import add_tune_command
from patchline.cli.types import OneLineParser
from patchline.errors import PatchlineError


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every sub-command."""
    parser = OneLineParser(prog="patchline", description="PatchCore defect detection for production lines.")
    parser.add_argument("--version", action="version", version=f"patchline {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_training_commands(sub)
    add_running_commands(sub)
    add_bank_commands(sub)
    add_tune_command(sub)
    add_dashboard_command(sub)
    add_capture_command(sub)
    add_opcua_cert_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, run, turn user errors into one sentence and exit status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        for name in ("dataset", "images", "add"):
            if getattr(args, name, None) is not None:
                check_folder(getattr(args, name), "folder" if name == "images" else "dataset folder")
        return args.func(args)
    except PatchlineError as exc:
        print(f"patchline {args.command}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a vanished folder: the system's own words, in one sentence
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"patchline {args.command}: {exc.strerror or exc}{where}.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"patchline {args.command}: interrupted.", file=sys.stderr)
        return 130


