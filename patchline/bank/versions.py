"""A line's bank versions over time: list them, go back to one, prune old ones.

Versions are the folders `<root>/<line>/<version>/`; `CURRENT` names the live one. Going back
rewrites `CURRENT` atomically after checking the target loads (checksums, fields), so a running
pipeline's watcher switches between two frames; pruning never removes the live version.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from patchline.bank.leftovers import remove_leftovers
from patchline.bank.store import CURRENT_FILE, write_text_atomic, current_version, load_bank, read_meta
from patchline.errors import BankError
from patchline.names import check_name

log = logging.getLogger("patchline.bank")


@dataclass(frozen=True)
class VersionInfo:
    """One version folder: what bank.json says of it, or why it cannot be read (`damaged`)."""

    version: str
    live: bool
    created: str | None = None
    n_images: int | None = None
    n_patches: int | None = None
    threshold: float | None = None
    false_alarm_rate: float | None = None
    aggregation: str | None = None
    damaged: str | None = None


def _line_dir(root: Path, line: str) -> Path:
    check_name(line, "line")
    line_dir = Path(root) / line
    if not line_dir.is_dir():
        raise BankError(f"line {line} has no banks under {root} (no folder {line_dir}).")
    return line_dir


def list_versions(root: str | Path, line: str) -> list[VersionInfo]:
    """Every version of `line`, oldest first (version names are UTC time stamps)."""
    line_dir = _line_dir(Path(root), line)
    try:
        live = current_version(Path(root), line)
    except BankError:
        live = None
    out = []
    for folder in sorted(p for p in line_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            meta = read_meta(folder)
        except BankError as exc:
            out.append(VersionInfo(folder.name, folder.name == live, damaged=str(exc)))
            continue
        training = meta.get("training") or {}
        policy = meta.get("threshold_policy") or {}
        out.append(VersionInfo(folder.name, folder.name == live, meta.get("created"), training.get("n_images"),
                               meta.n_patches, meta.threshold, policy.get("false_alarm_rate"), meta.aggregation))
    return out


def rollback(root: str | Path, line: str, version: str) -> str:
    """Make `version` the live bank of `line` (it must load cleanly); returns the version it replaced."""
    line_dir = _line_dir(Path(root), line)
    check_name(version, "version")
    if not (line_dir / version).is_dir():
        known = ", ".join(v.version for v in list_versions(root, line)) or "none"
        raise BankError(f"line {line} has no version {version} (versions: {known}).")
    load_bank(Path(root), line, version)  # checksums and fields, before anything changes
    try:
        previous = current_version(Path(root), line)
    except BankError:
        previous = None
    write_text_atomic(line_dir / CURRENT_FILE, version + "\n")
    return previous


def prune(root: str | Path, line: str, keep: int) -> list[str]:
    """Remove all but the newest `keep` versions of `line`, never the live one, and the leftovers of
    crashed or refused bank writes (leftovers.py; not while a write is under way); returns the
    versions removed."""
    if keep < 1:
        raise BankError(f"--keep must be at least 1, got {keep}.")
    versions = list_versions(root, line)
    removed_leftovers = remove_leftovers(Path(root) / line)
    if removed_leftovers is None:
        log.warning("a bank write into line %s is under way: its half-written files are left alone", line)
    kept = {v.version for v in versions[-keep:]} | {v.version for v in versions if v.live}
    removed = []
    for info in versions:
        if info.version not in kept:
            shutil.rmtree(Path(root) / line / info.version)
            removed.append(info.version)
    return removed


def versions_table(line: str, versions: list[VersionInfo]) -> str:
    """The versions as a text table, the live one marked."""
    head = f"{'':2}{'version':<20}{'created':<27}{'images':>7}{'patches':>9}{'aggregation':>13}{'threshold':>11}{'FA rate':>9}"
    rows = [f"line {line}: {len(versions)} version(s)", head]
    for v in versions:
        mark = "* " if v.live else "  "
        if v.damaged:
            rows.append(f"{mark}{v.version:<20}damaged: {v.damaged}")
            continue
        rows.append(f"{mark}{v.version:<20}{v.created or '':<27}{v.n_images if v.n_images is not None else '':>7}"
                    f"{v.n_patches:>9}{v.aggregation:>13}{v.threshold:>11.4g}"
                    f"{v.false_alarm_rate if v.false_alarm_rate is not None else '':>9}")
    return "\n".join(rows)
