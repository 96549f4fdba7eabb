"""What every pipeline element shares: its props schema, its context, and the one `process` method.

A pipeline file gives each element a factory and string props. The element class declares its
props (`PROPS`); `validate_props` parses them once at load time, so `process` trusts them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from patchline.errors import ConfigError, ConfigErrors
from patchline.pipeline.geometry import StreamGeometry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prop:
    """One prop of an element: required or not, its default, and a parser raising ValueError."""

    required: bool = False
    default: str | None = None
    parse: Callable[[str], Any] = str
    help: str = ""
    ignored: str = ""  # why it has no effect here (accepted for MindX files; a value other than the
    # default is listed as a warning at load)




def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(f"{text!r} is not a positive integer")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"{text!r} is negative")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(f"{text!r} is not a positive number")
    return value


def one_of(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return text
    parse.choices = choices  # shown by the element reference (pipeline/element_docs.py)
    return parse


# Props every MindX plugin has (its plugin reference, "common properties"); patchline checks their
# values and lists them as without effect: there is one device, and every element runs in its thread.
COMMON_PROPS = {
    "status": Prop(parse=one_of("0", "1"), ignored="every element runs in its own thread"),
    "deviceId": Prop(parse=non_negative_int, ignored="there is no accelerator device; ONNX Runtime runs on the CPU"),
}


def float_list(n: int) -> Callable[[str], tuple[float, ...]]:
    def parse(text: str) -> tuple[float, ...]:
        values = tuple(float(v) for v in text.split(","))
        if len(values) != n:
            raise ValueError(f"{text!r} needs {n} comma-separated numbers")
        return values
    return parse


def name_list(text: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    if not names:
        raise ValueError("it names nothing")
    return names


@dataclass
class Where:
    """Where a prop sits, for error sentences: file, stream, element."""

    path: str
    stream: str
    element: str

    def error(self, message: str, prop: str | None = None) -> ConfigError:
        at = f"{self.path}: stream '{self.stream}', element '{self.element}'"
        return ConfigError(f"{at}, prop '{prop}': {message}" if prop else f"{at}: {message}")


@dataclass
class StreamContext:
    """What a stream's elements know about their stream and host.

    geometry: what the elements before one told it while the stream was built, in link order (a
    typed StreamGeometry: sizes, models, backbone, and the line the post-process judges).
    on_result(payload), on_status(camera, state, **extra) and on_bank(line, version) reach the host;
    on_sink(appsink name, frame), when set, takes the whole frame instead of on_result (a host API
    that answers with every element's metadata, patchline.mindx).
    """

    stream: str
    camera: str
    pipeline_path: str
    live: bool = False
    geometry: StreamGeometry = field(default_factory=StreamGeometry)
    options: dict = field(default_factory=dict)
    on_result: Callable[[dict], None] = lambda payload: None
    on_status: Callable[..., None] = lambda camera, state, **extra: None
    on_bank: Callable[[str, str], None] = lambda line, version: None
    on_sink: Callable[[str, Any], None] | None = None

    @property
    def line(self) -> str | None:
        """The product line the stream judges (None for a stream without a post-process)."""
        return self.geometry.judged.name if self.geometry.judged is not None else None

    def bank_version(self) -> str | None:
        """The judged line's live bank version, now."""
        return self.geometry.judged.version() if self.geometry.judged is not None else None

    def bank_meta(self):
        """The judged line's live BankMeta, now (drift compares with its calibration)."""
        return self.geometry.judged.meta() if self.geometry.judged is not None else None


class Element:
    """A pipeline element: `process(frame)` returns the frame (changed in place), or None to drop it.

    handles_errors: whether `process` is called for frames that already carry an error (the
    post-process and sinks must see them, image ops just pass them on).
    max_batch: how many waiting frames `process_batch` may take at once (1: one at a time).
    workers: threads that may run `process_batch` at once on different batches (results still
    leave in arrival order); more than 1 only for thread-safe elements that are a stream's
    bottleneck. Capped at the CPU count.
    """

    FACTORY = ""
    PROPS: Mapping[str, Prop] = {}
    handles_errors = False
    is_source = False
    max_batch = 1
    workers = 1

    def __init__(self, name: str, props: Mapping[str, Any], context: StreamContext):
        self.name = name
        self.props = dict(props)
        self.context = context

    @classmethod
    def validate(cls, props: Mapping[str, str], where: Where, options: Mapping[str, Any]) -> dict:
        """Parse string props against PROPS; ConfigError naming the prop on any problem."""
        return validate_props(cls.PROPS, props, where)

    def process(self, frame):  # pragma: no cover - every element overrides it
        raise NotImplementedError

    def process_batch(self, frames: list) -> list:
        """Process frames that were waiting together; one result (frame or None) per frame, in order.
        Elements that gain from batching (models, the post-process) override it."""
        return [self.process(frame) for frame in frames]

    def close(self) -> None:
        """Release what the element holds (sessions, threads); called once at shutdown."""


def validate_props(schema: Mapping[str, Prop], props: Mapping[str, str], where: Where) -> dict:
    """{prop: parsed value} for every prop in schema (defaults filled, None when absent and optional).

    Every problem of the element is found before raising: ConfigErrors lists them, one per prop."""
    problems = []
    unknown = sorted(set(props) - set(schema))
    known = ", ".join(sorted(schema)) or "none"
    for name in unknown:
        problems.append(str(where.error(f"is not a prop of this element (known props: {known}).", name)))
    parsed = {}
    for name, spec in schema.items():
        text = props.get(name, spec.default)
        if text is None:
            if spec.required:
                hint = f" ({spec.help})" if spec.help else ""
                problems.append(str(where.error(f"is required{hint}.", name)))
            parsed[name] = None
            continue
        try:
            parsed[name] = spec.parse(text)
        except ValueError as exc:
            hint = f"; expected {spec.help}" if spec.help else ""
            problems.append(str(where.error(f"bad value {text!r}: {exc}{hint}.", name)))
    if problems:
        raise ConfigErrors(problems)
    return parsed
