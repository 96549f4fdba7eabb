"""Read and check a pipeline file (MindX SDK pipeline JSON) before anything runs (DESIGN §5).

    { "<stream>": { "stream_config": {"deviceId": "0"},
                    "<element>": {"factory": …, "props": {…: "string"}, "next": "x" | ["x", "y:1"],
                                  "nextMeta": …}, … }, … }

Every problem — an unknown factory, a non-string or bad prop, a missing model, a dangling
`next`, a post-process module outside patchline.plugins — is a ConfigError naming the stream,
the element and the prop, raised at load time.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from patchline.errors import ConfigError
from patchline.pipeline.elements import Where
from patchline.pipeline.factories import FACTORIES, element_class

ELEMENT_KEYS = ("factory", "props", "next", "nextMeta")
SOURCE_NAME = re.compile(r"^appsrc[0-9]+$")
SINK_NAME = re.compile(r"^appsink[0-9]+$")
_LINK = re.compile(r"^(?P<name>[^:\s]+)(?::(?P<port>[0-9]+))?$")
# Elements whose output other elements read through `dataSource`.
PRODUCERS = ("mxpi_imagenormalize", "mxpi_tensorinfer", "mxpi_classpostprocessor")


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


@dataclass
class StreamConfig:
    """One stream: its elements in data-flow order (source first) and the links between them."""

    name: str
    stream_config: dict
    elements: dict[str, ElementConfig]
    order: list[str]
    source: str
    upstream: dict[str, str] = field(default_factory=dict)

    @property
    def sinks(self) -> list[str]:
        return [n for n in self.order if self.elements[n].factory == "appsink"]


@dataclass
class PipelineConfig:
    """A checked pipeline file: its streams by name."""

    path: Path
    streams: dict[str, StreamConfig]


def _names(value: Any, where: Where, key: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v for v in items):
        raise where.error(f"'{key}' must be an element name or a list of element names, got {value!r}.")
    return items


def _parse_element(name: str, raw: Any, where: Where, options: dict) -> ElementConfig:
    if not isinstance(raw, dict):
        raise where.error("must be an object with 'factory', 'props' and 'next'.")
    extra = [k for k in raw if k not in ELEMENT_KEYS]
    if extra:
        raise where.error(f"key '{extra[0]}' is not allowed; an element has only {', '.join(ELEMENT_KEYS)}.")
    factory = raw.get("factory")
    if not isinstance(factory, str) or not factory:
        raise where.error("has no 'factory'.")
    if factory not in FACTORIES:
        raise where.error(f"unknown factory '{factory}'; this runner implements {', '.join(sorted(FACTORIES))}.")
    if factory == "appsrc" and not SOURCE_NAME.match(name):
        raise where.error("an appsrc element must be named appsrc<N>, e.g. appsrc0.")
    if factory == "appsink" and not SINK_NAME.match(name):
        raise where.error("an appsink element must be named appsink<N>, e.g. appsink0.")
    props = raw.get("props", {})
    if not isinstance(props, dict):
        raise where.error(f"'props' must be an object of string values, got {type(props).__name__}.")
    for key, value in props.items():
        if not isinstance(value, str):
            raise where.error(f"every prop value must be a string (write \"{json.dumps(value).strip(chr(34))}\"), "
                              f"got {json.dumps(value)}.", key)
    links = []
    if "next" in raw:
        for text in _names(raw["next"], where, "next"):
            match = _LINK.match(text)
            if not match:
                raise where.error(f"'next' entry '{text}' is not an element name or name:port.")
            links.append(Link(match["name"], int(match["port"] or 0)))
    next_meta = tuple(_names(raw["nextMeta"], where, "nextMeta")) if "nextMeta" in raw else ()
    cls = element_class(factory)
    parsed = cls.validate(props, where, options)
    return ElementConfig(name, factory, dict(props), parsed, cls, tuple(links), next_meta)


def _ancestors(name: str, upstream: dict[str, str]) -> Iterable[str]:
    while name in upstream:
        name = upstream[name]
        yield name


def _check_graph(stream: str, elements: dict[str, ElementConfig], path: str) -> tuple[list[str], str, dict]:
    """Check links, sources and sinks; return (data-flow order, source name, element → upstream element)."""
    upstream: dict[str, str] = {}
    for name, el in elements.items():
        where = Where(path, stream, name)
        if len(el.next) > 1 and el.factory != "tee":
            raise where.error(f"'next' lists {len(el.next)} elements; put a tee in front of them to fan out.")
        for link in el.next:
            if link.target not in elements:
                raise where.error(f"'next' names '{link.target}', which is not an element of stream '{stream}'.")
            if link.target == name:
                raise where.error("'next' names the element itself.")
            if link.port != 0:
                raise where.error(f"'next' entry '{link.target}:{link.port}': {link.target} has one input port, 0.")
            if link.target in upstream:
                raise where.error(f"'{link.target}' already gets frames from '{upstream[link.target]}'; "
                                  f"an element has one input.")
            upstream[link.target] = name
        for meta in el.next_meta:
            if meta not in elements:
                raise where.error(f"'nextMeta' names '{meta}', which is not an element of stream '{stream}'.")
    sources = [n for n, el in elements.items() if getattr(el.cls, "is_source", False)]
    if len(sources) != 1:
        raise ConfigError(f"{path}: stream '{stream}' needs exactly one source (appsrc<N> or mxpi_rtspsrc), "
                          f"found {len(sources)}.")
    source = sources[0]
    if source in upstream:
        raise Where(path, stream, source).error(f"is a source but '{upstream[source]}' sends frames to it.")
    order, todo = [], [source]
    while todo:
        name = todo.pop(0)
        if name in order:
            raise Where(path, stream, name).error("is part of a loop of 'next' links.")
        order.append(name)
        todo.extend(link.target for link in elements[name].next)
    unlinked = [n for n in elements if n not in order]
    if unlinked:
        raise Where(path, stream, unlinked[0]).error(f"is not linked from the source '{source}' by any 'next'.")
    if not any(elements[n].factory == "appsink" for n in order):
        raise ConfigError(f"{path}: stream '{stream}' has no appsink<N> element, so its results go nowhere.")
    for name in order:
        el = elements[name]
        if el.factory == "appsink" and el.next:
            raise Where(path, stream, name).error("is a sink; it cannot have 'next'.")
        if not el.next and el.factory != "appsink":
            raise Where(path, stream, name).error("has no 'next': its frames would go nowhere (end with appsink<N>).")
    return order, source, upstream


def _resolve_data_sources(stream: str, elements: dict[str, ElementConfig], upstream: dict[str, str], path: str):
    """Default each dataSource to the nearest upstream producer; check given ones are upstream."""
    for name, el in elements.items():
        where = Where(path, stream, name)
        if "dataSource" in el.parsed:
            given = el.parsed["dataSource"]
            ancestors = list(_ancestors(name, upstream))
            if given is None:
                el.parsed["dataSource"] = next((a for a in ancestors if elements[a].factory in PRODUCERS), None)
            elif given not in ancestors:
                raise where.error(f"names '{given}', which is not upstream of this element.", "dataSource")
        if el.factory == "mxpi_tensorinfer" and el.parsed["dataSource"] is None:
            raise where.error("has no upstream mxpi_imagenormalize or mxpi_tensorinfer to read from.", "dataSource")
        if el.factory == "mxpi_dataserialize":
            for key in el.parsed["outputDataKeys"]:
                if key not in elements:
                    raise where.error(f"names '{key}', which is not an element of stream '{stream}'.", "outputDataKeys")


def parse_pipeline(data: Any, path: str | Path = "<pipeline>", allow_plugins: Iterable[str] = (),
                   check_files: bool = True) -> PipelineConfig:
    """Check already-parsed pipeline JSON; see load_pipeline."""
    path_text = str(path)
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path_text} must hold a JSON object with one entry per stream.")
    options = {"allow_plugins": tuple(allow_plugins), "check_files": check_files}
    streams = {}
    for stream, body in data.items():
        if not isinstance(body, dict):
            raise ConfigError(f"{path_text}: stream '{stream}' must be an object of elements.")
        stream_config = body.get("stream_config", {})
        if not isinstance(stream_config, dict) or not all(isinstance(v, str) for v in stream_config.values()):
            raise ConfigError(f"{path_text}: stream '{stream}': stream_config must be an object of string values.")
        elements = {name: _parse_element(name, raw, Where(path_text, stream, name), options)
                    for name, raw in body.items() if name != "stream_config"}
        if not elements:
            raise ConfigError(f"{path_text}: stream '{stream}' has no elements.")
        order, source, upstream = _check_graph(stream, elements, path_text)
        _resolve_data_sources(stream, elements, upstream, path_text)
        streams[stream] = StreamConfig(stream, dict(stream_config), elements, order, source, upstream)
    return PipelineConfig(Path(path), streams)


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
    return parse_pipeline(data, path, allow_plugins, check_files)
