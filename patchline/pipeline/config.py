"""Read and check a pipeline file (MindX SDK pipeline JSON) before anything runs (docs/pipeline.md).

    { "<stream>": { "stream_config": {"deviceId": "0"},
                    "<element>": {"factory": …, "props": {…: "string"}, "next": "x" | ["x", "y:1"],
                                  "nextMeta": …}, … }, … }

Every problem — an unknown factory, a non-string or bad prop, a missing model, a dangling
`next`, a post-process module outside patchline.plugins — is a sentence naming the stream, the
element and the prop; loading collects all of them and raises them together (ConfigErrors).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from patchline.errors import ConfigError, ConfigErrors, problems_of
from patchline.pipeline.elements import COMMON_PROPS, Where, validate_props
from patchline.pipeline.factories import FACTORIES, element_class
from patchline.pipeline.stream_graph import SINK_NAME, SOURCE_NAME, check_graph, resolve_data_sources

log = logging.getLogger(__name__)
ELEMENT_KEYS = ("factory", "props", "next", "nextMeta")
_LINK = re.compile(r"^(?P<name>[^:\s]+)(?::(?P<port>[0-9]+))?$")


@dataclass(frozen=True)
class Link:
    """A `next` entry: the downstream element and its input port (`name:N`, default 0)."""

    target: str
    port: int = 0


@dataclass
class ElementConfig:
    """One checked element: raw props as written, parsed props, its class and its links."""

    name: str
    factory: str
    props: dict
    parsed: dict
    cls: type
    next: tuple[Link, ...] = ()
    next_meta: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()  # props given that have no effect here (MindX compatibility)
    non_strings: tuple[str, ...] = ()  # props written as numbers etc. (already reported)


@dataclass
class StreamConfig:
    """One stream: its elements in data-flow order (source first) and the links between them."""

    name: str
    stream_config: dict
    elements: dict[str, ElementConfig]
    order: list[str]
    source: str  # the first source (the only one unless the stream merges several)
    upstream: dict[str, str] = field(default_factory=dict)  # element → the (first) element feeding it
    sources: list[str] = field(default_factory=list)  # every source, in the file's order

    @property
    def sinks(self) -> list[str]:
        return [n for n in self.order if self.elements[n].factory == "appsink"]


@dataclass
class PipelineConfig:
    """A checked pipeline file: its streams by name."""

    path: Path
    streams: dict[str, StreamConfig]
    ignored: list[str] = field(default_factory=list)  # "stream 's', element 'e': prop (why)", one per element


def _names(value: Any, where: Where, key: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v for v in items):
        raise where.error(f"'{key}' must be an element name or a list of element names, got {value!r}.")
    return items


def _links(raw: dict, where: Where, problems: list[str]) -> tuple[tuple[Link, ...], tuple[str, ...]]:
    """The element's 'next' links and 'nextMeta' names; each problem is added to `problems`."""
    links, next_meta = [], ()
    for key in ("next", "nextMeta"):
        if key not in raw:
            continue
        try:
            names = _names(raw[key], where, key)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        if key == "nextMeta":
            next_meta = tuple(names)
            continue
        for text in names:
            match = _LINK.match(text)
            if match:
                links.append(Link(match["name"], int(match["port"] or 0)))
            else:
                problems.append(str(where.error(f"'next' entry '{text}' is not an element name or name:port.")))
    return tuple(links), next_meta


def _factory_problem(name: str, factory: Any, where: Where) -> str | None:
    if not isinstance(factory, str) or not factory:
        return str(where.error("has no 'factory'."))
    if factory not in FACTORIES:
        return str(where.error(f"unknown factory '{factory}'; this runner implements {', '.join(sorted(FACTORIES))}."))
    if factory == "appsrc" and not SOURCE_NAME.match(name):
        return str(where.error("an appsrc element must be named appsrc<N>, e.g. appsrc0."))
    if factory == "appsink" and not SINK_NAME.match(name):
        return str(where.error("an appsink element must be named appsink<N>, e.g. appsink0."))
    return None


def _parse_structure(name: str, raw: Any, where: Where, problems: list[str]) -> ElementConfig | None:
    """An element's factory, props and links, props not yet validated (parsed = None). Every
    structural problem is added to `problems`; the element is still returned (its props then get
    checked too, so one reading reports everything) unless its factory or props cannot be known.
    Props that are not strings are kept as the string they should have been and reported here."""
    if not isinstance(raw, dict):
        problems.append(str(where.error("must be an object with 'factory', 'props' and 'next'.")))
        return None
    problems.extend(str(where.error(f"key '{key}' is not allowed; an element has only {', '.join(ELEMENT_KEYS)}."))
                    for key in raw if key not in ELEMENT_KEYS)
    factory = raw.get("factory")
    factory_problem = _factory_problem(name, factory, where)
    if factory_problem:
        problems.append(factory_problem)
    props = raw.get("props", {})
    if not isinstance(props, dict):
        problems.append(str(where.error(f"'props' must be an object of string values, got {type(props).__name__}.")))
    links, next_meta = _links(raw, where, problems)
    if factory_problem or not isinstance(props, dict):
        return None
    written = {}
    for key, value in props.items():
        if isinstance(value, str):
            written[key] = value
            continue
        text = json.dumps(value).strip(chr(34))
        problems.append(str(where.error(f"every prop value must be a string (write \"{text}\"), got {json.dumps(value)}.",
                                        key)))
        written[key] = text
    return ElementConfig(name, factory, written, None, element_class(factory), links, next_meta,
                         non_strings=tuple(k for k, v in props.items() if not isinstance(v, str)))


def _parse_element(name: str, raw: Any, where: Where, options: dict,
                   problems: list[str]) -> tuple[ElementConfig | None, bool]:
    """One element read and its props checked, every problem added to `problems`: (the element, or
    None when its factory or props are unknown; whether its structure (keys, factory, links,
    non-string props) had a problem)."""
    found = len(problems)
    el = _parse_structure(name, raw, where, problems)
    structural = len(problems) > found
    if el is None:
        return None, structural
    common = {k: v for k, v in el.props.items()
              if el.factory.startswith("mxpi_") and k in COMMON_PROPS and k not in el.cls.PROPS}
    own = {k: v for k, v in el.props.items() if k not in common}
    for check in (lambda: validate_props({k: COMMON_PROPS[k] for k in common}, common, where),
                  lambda: el.cls.validate(own, where, options)):
        try:
            parsed = check()
        except ConfigError as exc:  # a non-string prop is reported once, by the structure check
            problems.extend(p for p in problems_of(exc) if not any(f", prop '{k}':" in p for k in el.non_strings))
            parsed = None
    el.parsed = parsed
    schema = {**el.cls.PROPS, **COMMON_PROPS}
    el.ignored = tuple(k for k in el.props if k in schema and schema[k].ignored  # given, not as patchline does
                       and (k in common or k in el.cls.PROPS) and el.props[k] != schema[k].default)
    return el, structural


def parse_pipeline(data: Any, path: str | Path = "<pipeline>", allow_plugins: Iterable[str] = (),
                   check_files: bool = True) -> PipelineConfig:
    """Check already-parsed pipeline JSON; see load_pipeline."""
    path_text = str(path)
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path_text} must hold a JSON object with one entry per stream.")
    options = {"allow_plugins": tuple(allow_plugins), "check_files": check_files,
               "pipeline_dir": Path(path).parent if Path(path_text).is_file() else None}
    streams, problems, ignored = {}, [], []
    for stream, body in data.items():
        if not isinstance(body, dict):
            problems.append(f"{path_text}: stream '{stream}' must be an object of elements.")
            continue
        stream_config = body.get("stream_config", {})
        if not isinstance(stream_config, dict) or not all(isinstance(v, str) for v in stream_config.values()):
            problems.append(f"{path_text}: stream '{stream}': stream_config must be an object of string values.")
        elements, broken = {}, False
        for name, raw in body.items():
            if name == "stream_config":
                continue
            el, structural = _parse_element(name, raw, Where(path_text, stream, name), options, problems)
            broken = broken or structural  # links unknown or wrong: graph checks would only add noise
            if el is not None:
                elements[name] = el
                if el.ignored:
                    schema = {**el.cls.PROPS, **COMMON_PROPS}
                    ignored.append(f"stream '{stream}', element '{name}': "
                                   + ", ".join(f"{k} ({schema[k].ignored})" for k in el.ignored))
        if not elements and not broken:
            problems.append(f"{path_text}: stream '{stream}' has no elements.")
        if broken or not elements:
            continue
        before = len(problems)
        graph = check_graph(stream, elements, path_text, problems)
        if graph is None:
            continue
        order, sources, upstream = graph
        if len(problems) == before:
            resolve_data_sources(stream, elements, order, upstream, path_text, problems)
        streams[stream] = StreamConfig(stream, dict(stream_config), elements, order, sources[0], upstream, sources)
    if problems:
        raise ConfigErrors(problems)
    if ignored:
        log.warning("%s: props kept for MindX compatibility that have no effect here — %s", path_text,
                    "; ".join(ignored))
    return PipelineConfig(Path(path), streams, ignored)


def load_pipeline(path: str | Path, allow_plugins: Iterable[str] = (), check_files: bool = True) -> PipelineConfig:
    """Read and check a pipeline file; ConfigError (one sentence naming stream, element, prop) on any problem.

    allow_plugins: post-process modules outside patchline.plugins the operator allowed by name.
    check_files: whether model files must exist (False to check a file's structure alone).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"pipeline file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read pipeline file {path}: {exc}.") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") from None
    except RecursionError:
        raise ConfigError(f"{path} nests its JSON too deeply to be a pipeline file.") from None
    return parse_pipeline(data, path, allow_plugins, check_files)
