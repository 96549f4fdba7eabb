"""The one rule for command-line values: argparse types that check type, range, finiteness and
what a path names (an existing folder, a regular text file, a folder to write into), and a parser
that reports a refused value in one line with exit status 2.

Each type raises argparse.ArgumentTypeError with the reason; `OneLineParser.error` prints
`patchline <command>: argument --x: <reason>` and exits 2 (no usage block, no traceback).
"""

from __future__ import annotations

import argparse
import math
import os
import stat
from pathlib import Path
from typing import Callable

from patchline.errors import ConfigError
from patchline.names import check_name

MAX_TEXT_FILE_BYTES = 4 * 1024 * 1024  # a settings or pipeline file is a few kilobytes


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2."""

    def _get_values(self, action, arg_strings):
        # argparse drops a lone '--' value (`--max-frames=--`) and hands the option an empty list,
        # past its type: refuse it here like any other bad value.
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            self.error(f"argument {'/'.join(action.option_strings)}: '--' is not a value")
        return super()._get_values(action, arg_strings)

    def error(self, message: str):
        """Print `<prog>: <message>` (and where to look) on one line; exit 2."""
        message = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help).\n")


def _refuse(text: str, what: str):
    raise argparse.ArgumentTypeError(f"{text!r} is not {what}")


def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An int type within [low, high] (either end open when None)."""
    def parse(text: str) -> int:
        try:
            value = int(text.strip(), 10)
        except (ValueError, AttributeError):
            _refuse(text, "a whole number")
        if (low is not None and value < low) or (high is not None and value > high):
            _refuse(text, _range_words(low, high, "a whole number"))
        return value
    parse.__name__ = "integer"
    return parse


def number(low: float | None = None, high: float | None = None, low_open: bool = False) -> Callable[[str], float]:
    """A finite float type within [low, high] ((low, high] when `low_open`)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except (ValueError, TypeError):
            _refuse(text, "a number")
        if not math.isfinite(value):
            _refuse(text, "a finite number")
        if (low is not None and (value < low or (low_open and value == low))) or (high is not None and value > high):
            _refuse(text, _range_words(low, high, "a number", low_open))
        return value
    parse.__name__ = "number"
    return parse


def _range_words(low, high, kind: str, low_open: bool = False) -> str:
    if low is not None and high is not None:
        return f"{kind} from {low}{' (excluded)' if low_open else ''} to {high}"
    if low is not None:
        return f"{kind} {'over' if low_open else 'of at least'} {low}"
    return f"{kind} of at most {high}"


def name(text: str) -> str:
    """A line, camera or version name (patchline.names)."""
    try:
        return check_name(text, "the")
    except ConfigError:
        _refuse(text, "a name of letters, digits, '_', '-' or '.' starting with a letter or digit")


def existing_folder(text: str) -> Path:
    """A folder that exists."""
    path = Path(text)
    if not text or not path.exists():
        raise argparse.ArgumentTypeError(f"{text!r} does not exist")
    if not path.is_dir():
        _refuse(text, "an existing folder")
    return path


def regular_file(text: str) -> Path:
    """An existing regular file (not a folder, device or FIFO) that can be read."""
    path = Path(text)
    try:
        mode = os.stat(path).st_mode if text else 0
    except OSError:
        mode = 0
    if not stat.S_ISREG(mode) or not os.access(path, os.R_OK):
        _refuse(text, "a readable regular file")
    return path


def text_file(text: str) -> Path:
    """A regular UTF-8 text file (a settings or pipeline file) of at most MAX_TEXT_FILE_BYTES."""
    path = regular_file(text)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_TEXT_FILE_BYTES + 1)
    except OSError:
        _refuse(text, "a readable regular file")
    if len(data) > MAX_TEXT_FILE_BYTES or b"\0" in data:
        _refuse(text, f"a text file (binary, or over {MAX_TEXT_FILE_BYTES // 1024 // 1024} MB)")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        _refuse(text, "a UTF-8 text file")
    return path


def folder_to_use(text: str) -> Path:
    """A folder that exists or can be made (the path is not a file, and its nearest existing
    parent is a folder)."""
    path = Path(text)
    if not text or (path.exists() and not path.is_dir()):
        _refuse(text, "a folder (it names a file)")
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        _refuse(text, "a folder that can be made")
    return path


def file_to_write(text: str) -> Path:
    """A file path to write: not a folder, in a folder that exists."""
    path = Path(text)
    if not text or path.is_dir() or text.endswith(os.sep):
        _refuse(text, "a file to write (it names a folder)")
    if not path.absolute().parent.is_dir():
        _refuse(text, "a file in an existing folder")
    return path


def listing(kind: Callable[[str], object], what: str) -> Callable[[str], list]:
    """A comma-separated, non-empty list of `kind` values (each checked by `kind`)."""
    def parse(text: str) -> list:
        parts = [p.strip() for p in text.split(",")]
        if not text.strip() or any(not p for p in parts):
            _refuse(text, f"a comma-separated list of {what} (no empty items)")
        try:
            return [kind(p) for p in parts]
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    parse.__name__ = "listing"
    return parse
