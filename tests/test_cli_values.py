"""Every command-line value is checked at the parser (issue 21, item 7): a bad value of any option of
any sub-command ends with exit status 2 and one line on stderr, never a traceback. The known cases
from the fault-injection run, then generated bad values (hypothesis) for every typed option of every
sub-command the parser has, found by walking the parser itself."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pipeline_support import patchline

from patchline.cli import build_parser, main

ONE_SOURCE = {"s": {"appsrc0": {"factory": "appsrc", "next": "mxpi_imagedecoder0"},
                    "mxpi_imagedecoder0": {"factory": "mxpi_imagedecoder", "props": {"outputDataFormat": "RGB"},
                                           "next": "appsink0"},
                    "appsink0": {"factory": "appsink"}}}


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, Path]:
    """A folder, a text file, a binary file, a FIFO, a pipeline file: things values can name."""
    base = tmp_path_factory.mktemp("values")
    (base / "folder").mkdir()
    (base / "text.yaml").write_text("line: {}\n")
    (base / "binary.bin").write_bytes(bytes(range(256)) * 8)
    os.mkfifo(base / "fifo")
    (base / "one.pipeline").write_text(json.dumps(ONE_SOURCE))
    return {"folder": base / "folder", "text": base / "text.yaml", "binary": base / "binary.bin", "fifo": base / "fifo",
            "pipeline": base / "one.pipeline", "base": base}


def run_main(argv: list[str]) -> tuple[int, str]:
    """`patchline ARGV` in this process: (exit status, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main(argv)
        except SystemExit as exc:
            status = exc.code
    return status, err.getvalue()


def assert_one_line(status: int, stderr: str, argv) -> None:
    assert status == 2, f"{argv}: exit {status}\n{stderr}"
    assert stderr.endswith("\n") and stderr.count("\n") == 1, f"{argv}: not one line:\n{stderr}"
    assert "Traceback" not in stderr and "Error:" not in stderr.split(":", 1)[0]


KNOWN = {  # the examples, each a traceback before
    "two --source values for a one-source file": (["run", "{pipeline}", "--source", "{folder}", "--source",
                                                   "{folder}"], "1 source(s)"),
    "tune --grid-sizes 224,abc": (["tune", "--line", "L", "--images", "{folder}", "--grid-sizes", "224,abc"], "abc"),
    'tune --grid-sizes ""': (["tune", "--line", "L", "--images", "{folder}", "--grid-sizes", ""], "grid-sizes"),
    "--config naming a folder": (["train", "--line", "L", "--images", "{folder}", "--config", "{folder}"], "config"),
    "--config naming a binary file": (["train", "--line", "L", "--images", "{folder}", "--config", "{binary}"],
                                      "text file"),
    "--banks naming a file": (["run", "{pipeline}", "--banks", "{text}"], "names a file"),
    "--snapshot-quota-mb nan": (["run", "{pipeline}", "--snapshot-quota-mb", "nan"], "finite"),
    "train --seed -1": (["train", "--line", "L", "--images", "{folder}", "--seed", "-1"], "seed"),
    "tune --out DIR": (["tune", "--line", "L", "--images", "{folder}", "--out", "{folder}"], "names a folder"),
    "--config naming a FIFO": (["tune", "--line", "L", "--images", "{folder}", "--config", "{fifo}"], "regular"),
    "feedback --false-alarm /dev/zero": (["feedback", "L", "--false-alarm", "/dev/zero"], "regular file"),
    "dashboard --port 0": (["dashboard", "--mqtt", "mqtt://127.0.0.1:1", "--port", "0"], "port"),
    "alarms --timeout inf": (["alarms", "--mqtt", "mqtt://127.0.0.1:1", "--timeout", "inf"], "finite"),
    "banks --keep 0": (["banks", "L", "--keep", "0"], "keep"),
    "a line name with a slash": (["rollback", "../etc", "v1"], "line"),
}


def _fill(argv: list[str], places: dict[str, Path]) -> list[str]:
    return [a.format(**{k: str(v) for k, v in places.items()}) for a in argv]


@pytest.mark.parametrize("case", sorted(KNOWN))
def test_known_malformed_command_lines_end_in_one_line(case, places):
    argv, words = KNOWN[case]
    argv = _fill(argv, places)
    status, stderr = run_main(argv)
    assert_one_line(status, stderr, argv)
    assert words in stderr


@pytest.mark.parametrize("case", ["two --source values for a one-source file", "--config naming a binary file",
                                  "--snapshot-quota-mb nan"])
def test_the_same_through_the_real_entry_point(case, places):
    argv = _fill(KNOWN[case][0], places)
    done = subprocess.run(patchline(*argv), cwd=places["base"], capture_output=True, text=True, timeout=120)
    assert_one_line(done.returncode, done.stderr, argv)


# -- generated bad values for every typed option of every sub-command ------------------------------


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _typed_actions():
    for command, parser in sorted(_subcommands().items()):
        for action in parser._actions:
            if action.type is not None and action.option_strings != ["-h", "--help"]:
                yield command, action


def _valid(action, places) -> str:
    """A value `action.type` accepts, for filling required arguments around the one under test."""
    candidates = ["L", "1", "224", "0.5", str(places["folder"]), str(places["text"]), "layer2",
                  str(places["base"] / "new.yaml"), "efficientnet_lite0"]
    for value in candidates:
        try:
            action.type(value)
            return value
        except (argparse.ArgumentTypeError, ValueError, TypeError):
            continue
    raise AssertionError(f"no valid sample value for {action.dest}")


def _argv(command: str, action, value: str, places) -> list[str]:
    """`command` with every required argument valid and `action` given `value`."""
    parser = _subcommands()[command]
    argv = [command]
    for other in parser._actions:
        if other is action or not (other.required or not other.option_strings) or isinstance(other, argparse._HelpAction):
            continue
        if other.option_strings:
            argv += [other.option_strings[0], _valid(other, places) if other.type else "mqtt://127.0.0.1:1"]
        elif other.nargs != "?":
            argv.append(_valid(other, places) if other.type else "x")
    if action.option_strings:
        argv.append(f"{action.option_strings[-1]}={value}")
    else:
        argv.insert(1, value)
    return argv


def _rejected(action, value: str) -> bool:
    try:
        action.type(value)
    except argparse.ArgumentTypeError:
        return True
    return False


HOSTILE_TEXT = st.one_of(
    st.sampled_from(["", " ", "nan", "NaN", "inf", "-inf", "1e999", "-1", "0", "-0.0", "1e-400", "99999999999999999999",
                     "abc", ",", "224,", ",224", "224,abc", "0x10", "1_000", "½", "/dev/zero", "/dev/null", "/proc/self",
                     "/", "../../etc/passwd", "a/b", "\x00", "layer9", "layer2+layer2", "-", "--"]),
    st.text(max_size=12),
    st.integers(-10**12, 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


def test_every_numeric_or_path_option_is_checked_by_a_cli_types_type():
    unchecked = [f"{command} {action.option_strings or action.dest}" for command, action in _typed_actions()
                 if action.type in (int, float, Path, str)]
    assert not unchecked, f"options parsed without range / finiteness / path checks: {unchecked}"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_generated_bad_values_for_every_option_end_in_one_line(places, data):
    command, action = data.draw(st.sampled_from(list(_typed_actions())), label="option")
    value = data.draw(HOSTILE_TEXT.filter(lambda v: "\x00" not in v and _rejected(action, v)), label="value")
    argv = _argv(command, action, value, places)
    status, stderr = run_main(argv)
    assert_one_line(status, stderr, argv)
