"""The `patchline` commands that look after a line's banks over time: grow (`train --add`),
`feedback`, `banks` (versions, prune) and `rollback`. Parsers and commands; the work is in
patchline.app.jobs, patchline.app.feedback and patchline.bank.versions."""

from __future__ import annotations

import sys
from pathlib import Path

from patchline.cli.options import add_banks, add_broker, add_quiet, add_weights, broker_from
from patchline.cli.types import existing_folder, integer, name, number, regular_file
from patchline.errors import PatchlineError


def grow(args, items, reason: str, cover: bool = False) -> int:
    """Grow args.line's live bank with `items` (training/grow.py) and print what changed; exit status."""
    from patchline.app.jobs import grow_line

    if not args.line or getattr(args, "category", None) or getattr(args, "images", None):
        raise PatchlineError("growing a bank takes --line NAME and the new good images only (no CATEGORY or --images).")
    result = grow_line(args.banks, args.line, items, args.weights, args.random_weights, not args.quiet, reason, cover)
    added = result.meta["training"]["added"]
    print(f"line {args.line}: bank {result.meta.version} grew from {result.meta['training']['grown_from']} by "
          f"{added['n_patches']} patches of {added['n_images']} images to {result.meta.n_patches} in "
          f"{result.seconds:.1f} s; threshold kept at {result.meta.threshold:.4f}")
    return 0


def cmd_feedback(args) -> int:
    """`patchline feedback`: false alarms' images grow the bank, given on the command line or over MQTT."""
    from patchline.core.preprocess import load_image

    if args.listen:
        import logging

        from patchline.app.feedback import listen_for_feedback

        logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        if not args.mqtt:
            raise PatchlineError("--listen needs --mqtt URL (the broker the operator consoles publish to).")
        return listen_for_feedback(broker_from(args), args.line, args.banks, args.weights, args.count,
                                   args.timeout, image_roots=args.image_root, snapshots=args.snapshots)
    if not args.false_alarm:
        raise PatchlineError("give --false-alarm IMAGE… (or --listen --mqtt URL for feedback over MQTT).")
    for path in args.false_alarm:
        load_image(path)  # each file must be a readable image before anything changes
    return grow(args, list(args.false_alarm), f"operator feedback: {len(args.false_alarm)} false alarm(s)",
                 cover=True)


def cmd_banks(args) -> int:
    """`patchline banks`: a line's versions, after pruning old ones when asked."""
    from patchline.bank.versions import list_versions, prune, versions_table

    if args.prune:
        from patchline.bank.leftovers import remove_leftovers

        leftovers = remove_leftovers(Path(args.banks) / args.line)
        if leftovers:
            print(f"line {args.line}: removed {len(leftovers)} half-written leftover(s) of earlier bank writes")
        removed = prune(args.banks, args.line, args.keep)
        print(f"line {args.line}: removed {len(removed)} version(s)" + (f": {', '.join(removed)}" if removed else ""))
    print(versions_table(args.line, list_versions(args.banks, args.line)))
    return 0


def cmd_rollback(args) -> int:
    """`patchline rollback`: make an earlier version live."""
    from patchline.bank.versions import rollback

    previous = rollback(args.banks, args.line, args.version)
    print(f"line {args.line}: live bank {previous} → {args.version} (running pipelines switch between two frames)")
    return 0


def cmd_threshold(args) -> int:
    """`patchline threshold`: a new live version with the threshold moved, from the kept held-out scores."""
    from patchline.bank.threshold import move_threshold

    before, after = move_threshold(args.banks, args.line, args.false_alarm_rate, args.value)
    promise = after["threshold_policy"]["promise"]
    print(f"line {args.line}: threshold {before.threshold:.4f} → {after.threshold:.4f} in version {after.version} "
          f"(from {before.version}; running pipelines switch between two frames; "
          f"`patchline rollback {args.line} {before.version}` undoes it)")
    print(f"  promises: {promise['text']}")
    if "warning" in promise:
        print(f"  warning: {promise['warning']}")
    return 0


def add_bank_commands(sub) -> None:
    """Add the feedback, banks and rollback sub-commands to the `patchline` parser."""
    p = sub.add_parser("feedback", help="operator feedback: images that alarmed but are good grow the line's bank")
    p.add_argument("line", type=name)
    p.add_argument("--false-alarm", nargs="+", type=regular_file, metavar="IMAGE",
                   help="image files (e.g. the alarm snapshots) an operator judged good")
    p.add_argument("--listen", action="store_true",
                   help="take feedback over MQTT on patchline/<line>/feedback (with --mqtt) and answer on …/reply")
    p.add_argument("--count", type=integer(1), help="with --listen: stop after this many messages")
    p.add_argument("--timeout", type=number(0, 10**9, low_open=True), help="with --listen: stop after this many seconds")
    p.add_argument("--image-root", action="append", type=existing_folder, default=[], metavar="DIR",
                   help="with --listen: a folder whose images (a line's --source folder) feedback may name, by "
                        "their path below it (repeatable)")
    p.add_argument("--snapshots", type=existing_folder, metavar="DIR",
                   help="with --listen: the line's --snapshots folder; feedback may name its snapshots by file name")
    add_broker(p, "broker URL mqtt://host:port (mqtts:// for TLS), with --listen")
    add_weights(p, "the backbone weights the bank was built with (when not packaged)")
    add_banks(p)
    add_quiet(p)
    p.set_defaults(func=cmd_feedback)

    p = sub.add_parser("banks", help="list a line's bank versions (the live one marked); --prune --keep N removes old ones")
    p.add_argument("line", type=name)
    add_banks(p)
    p.add_argument("--prune", action="store_true", help="remove all but the newest --keep versions (never the live "
                                                          "one) and any half-written bank a crash left")
    p.add_argument("--keep", type=integer(1), default=5, help="versions --prune keeps (default 5)")
    p.set_defaults(func=cmd_banks)

    p = sub.add_parser("rollback", help="make an earlier bank version live again (atomic; running pipelines follow)")
    p.add_argument("line", type=name)
    p.add_argument("version", type=name)
    add_banks(p)
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("threshold", help="move a line's threshold to another false-alarm rate (or a value) without "
                                         "retraining: a new live version from the kept held-out scores")
    p.add_argument("line", type=name)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--false-alarm-rate", type=number(0, 1, low_open=True), metavar="RATE",
                       help="target share of good parts that alarm, e.g. 0.05")
    which.add_argument("--value", type=number(0, 1e30, low_open=True), metavar="SCORE",
                       help="the threshold itself, as an image score")
    add_banks(p)
    p.set_defaults(func=cmd_threshold)

