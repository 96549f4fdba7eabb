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

log = logging.getLogger(__name__)
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
    ignored: tuple[str, ...] = ()  # props given that have no effect here (MindX compatibility)


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


def _parse_structure(name: str, raw: Any, where: Where) -> ElementConfig:
    """An element's factory, props (all strings) and links, props not yet validated (parsed = None)."""
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
    problems = [str(where.error(f"every prop value must be a string (write \"{json.dumps(value).strip(chr(34))}\"), "
                                f"got {json.dumps(value)}.", key))
                for key, value in props.items() if not isinstance(value, str)]
    if problems:
        raise ConfigErrors(problems)
    links = []
    if "next" in raw:
        for text in _names(raw["next"], where, "next"):
            match = _LINK.match(text)
            if not match:
                raise where.error(f"'next' entry '{text}' is not an element name or name:port.")
            links.append(Link(match["name"], int(match["port"] or 0)))
    next_meta = tuple(_names(raw["nextMeta"], where, "nextMeta")) if "nextMeta" in raw else ()
    return ElementConfig(name, factory, dict(props), None, element_class(factory), tuple(links), next_meta)


def _ancestors(name: str, upstream: dict[str, str]) -> Iterable[str]:
    while name in upstream:
        name = upstream[name]
        yield name


def _check_links(stream: str, elements: dict[str, ElementConfig], path: str,
                 problems: list[str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Check every 'next' and 'nextMeta' link, adding each problem to `problems`; (element → its
    (first) upstream element, element → every element that sends to it)."""
    upstream: dict[str, str] = {}
    inputs = {n: getattr(el.cls, "inputs", 1) for n, el in elements.items()}
    merged: dict[str, list[str]] = {}
    for name, el in elements.items():
        where = Where(path, stream, name)
        if len(el.next) > 1 and not getattr(el.cls, "fans_out", False):
            problems.append(str(where.error(f"'next' lists {len(el.next)} elements; put a tee (or mxpi_distributor) "
                                            f"in front of them to fan out.")))
        for link in el.next:
            if link.target not in elements:
                problems.append(str(where.error(f"'next' names '{link.target}', which is not an element of stream "
                                                f"'{stream}'.")))
                continue
            if link.target == name:
                problems.append(str(where.error("'next' names the element itself.")))
                continue
            ports = inputs[link.target]
            if ports == 1 and link.port != 0:
                problems.append(str(where.error(f"'next' entry '{link.target}:{link.port}': {link.target} has one "
                                                f"input port, 0.")))
            elif ports == 1 and link.target in upstream:
                problems.append(str(where.error(f"'{link.target}' already gets frames from "
                                                f"'{upstream[link.target]}'; an element has one input (merge "
                                                f"streams with mxpi_parallel2serial).")))
            else:
                upstream.setdefault(link.target, name)
                merged.setdefault(link.target, []).append(name)
        for meta in el.next_meta:
            if meta not in elements:
                problems.append(str(where.error(f"'nextMeta' names '{meta}', which is not an element of stream "
                                                f"'{stream}'.")))
    return upstream, merged


def _check_graph(stream: str, elements: dict[str, ElementConfig], path: str,
                 problems: list[str]) -> tuple[list[str], list[str], dict] | None:
    """Check links, sources and sinks, adding each problem to `problems`; (data-flow order,
    source names, element → (first) upstream element), or None when no order can be made."""
    found_before = len(problems)
    upstream, merged = _check_links(stream, elements, path, problems)
    if len(problems) > found_before:
        return None  # with a broken link, what it would reach is unknown: more checks would only add noise
    sources = [n for n, el in elements.items() if getattr(el.cls, "is_source", False)]
    for name in sources:
        if name in upstream:
            problems.append(str(Where(path, stream, name).error(f"is a source but '{upstream[name]}' sends frames to it.")))
    if not sources:
        problems.append(f"{path}: stream '{stream}' has no source (appsrc<N> or mxpi_rtspsrc).")
        return None
    if len(sources) > 1 and not any(len(v) > 1 for v in merged.values()):
        problems.append(f"{path}: stream '{stream}' has {len(sources)} sources ({', '.join(sources)}) but nothing "
                        f"merges them; send them into one mxpi_parallel2serial.")
    order = _flow_order(sources, elements)
    unlinked = [n for n in elements if n not in order]
    for name in unlinked:
        problems.append(str(Where(path, stream, name).error(
            f"is not linked from the source{'s' if len(sources) > 1 else ''} {', '.join(repr(s) for s in sources)} "
            f"by any 'next' (or is part of a loop of 'next' links).")))
    if not any(elements[n].factory == "appsink" for n in order):
        problems.append(f"{path}: stream '{stream}' has no appsink<N> element, so its results go nowhere.")
    for name in order:
        el = elements[name]
        if el.factory == "appsink" and el.next:
            problems.append(str(Where(path, stream, name).error("is a sink; it cannot have 'next'.")))
        if not el.next and el.factory != "appsink":
            problems.append(str(Where(path, stream, name).error(
                "has no 'next': its frames would go nowhere (end with appsink<N>).")))
    for name in order:
        el = elements[name]
        if getattr(el.cls, "route", None) is not None and el.parsed and len(el.next) != len(el.parsed["channelIds"]):
            problems.append(str(Where(path, stream, name).error(
                f"lists {len(el.parsed['channelIds'])} channel(s) but has {len(el.next)} 'next' link(s); give one "
                f"link per channel, in the same order.", "channelIds")))
    return order, sources, upstream


def _flow_order(sources: list[str], elements: dict[str, ElementConfig]) -> list[str]:
    """The elements the sources reach, each after every element that feeds it (a merge after all
    its inputs); elements on a loop of 'next' links are left out."""
    reached, todo = set(), list(sources)
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(link.target for link in elements[name].next if link.target in elements)
    waiting = {n: 0 for n in reached}
    for name in reached:
        for link in elements[name].next:
            if link.target in waiting and link.target != name:
                waiting[link.target] += 1
    order, ready = [], [s for s in sources if waiting.get(s) == 0]
    while ready:
        name = ready.pop(0)
        order.append(name)
        for link in elements[name].next:
            if link.target in waiting and link.target != name:
                waiting[link.target] -= 1
                if waiting[link.target] == 0:
                    ready.append(link.target)
    return order


def _is_producer(el: ElementConfig) -> bool:
    return el.factory in PRODUCERS or (el.factory == "mxpi_parallel2serial" and bool((el.parsed or {}).get("dataSource")))


def _resolve_data_sources(stream: str, elements: dict[str, ElementConfig], order: list[str], upstream: dict[str, str],
                          path: str, problems: list[str]) -> None:
    """Default each dataSource to the nearest upstream producer; check given ones are upstream.
    A merge (mxpi_parallel2serial) takes, per input, that input's nearest producer."""
    for name in order:
        el = elements[name]
        if el.parsed is None:
            continue
        where = Where(path, stream, name)
        if el.factory == "mxpi_parallel2serial":
            inputs = [n for n in order if any(link.target == name for link in elements[n].next)]
            reach = {a for i in inputs for a in (i, *_ancestors(i, upstream))}
            given = el.parsed["dataSource"]
            if given:
                for key in given:
                    if key not in reach:
                        problems.append(str(where.error(f"names '{key}', which does not feed this element.",
                                                        "dataSource")))
            else:
                keys = [next((a for a in (i, *_ancestors(i, upstream)) if _is_producer(elements[a])), None)
                        for i in inputs]
                el.parsed["dataSource"] = tuple(dict.fromkeys(k for k in keys if k))
            continue
        if "dataSource" in el.parsed:
            given = el.parsed["dataSource"]
            ancestors = list(_ancestors(name, upstream))
            if given is None:
                el.parsed["dataSource"] = next((a for a in ancestors if _is_producer(elements[a])), None)
            elif given not in ancestors:
                problems.append(str(where.error(f"names '{given}', which is not upstream of this element.",
                                                "dataSource")))
        if el.factory == "mxpi_tensorinfer" and el.parsed["dataSource"] is None:
            problems.append(str(where.error("has no upstream mxpi_imagenormalize or mxpi_tensorinfer to read from.",
                                            "dataSource")))
        if el.factory == "mxpi_dataserialize":
            for key in el.parsed["outputDataKeys"]:
                if key not in elements:
                    problems.append(str(where.error(f"names '{key}', which is not an element of stream '{stream}'.",
                                                    "outputDataKeys")))


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
            where = Where(path_text, stream, name)
            try:
                el = _parse_structure(name, raw, where)
            except ConfigError as exc:
                problems.extend(problems_of(exc))
                broken = True  # its links are unknown: the graph checks would only add noise
                continue
            common = {k: v for k, v in el.props.items()
                      if el.factory.startswith("mxpi_") and k in COMMON_PROPS and k not in el.cls.PROPS}
            own = {k: v for k, v in el.props.items() if k not in common}
            try:
                validate_props({k: COMMON_PROPS[k] for k in common}, common, where)
                el.parsed = el.cls.validate(own, where, options)
            except ConfigError as exc:
                problems.extend(problems_of(exc))
            schema = {**el.cls.PROPS, **COMMON_PROPS}
            el.ignored = tuple(k for k in el.props if k in schema and schema[k].ignored  # given, not as patchline does
                               and (k in common or k in el.cls.PROPS) and el.props[k] != schema[k].default)
            if el.ignored:
                ignored.append(f"stream '{stream}', element '{name}': "
                               + ", ".join(f"{k} ({schema[k].ignored})" for k in el.ignored))
            elements[name] = el
        if not elements and not broken:
            problems.append(f"{path_text}: stream '{stream}' has no elements.")
        if broken or not elements:
            continue
        before = len(problems)
        graph = _check_graph(stream, elements, path_text, problems)
        if graph is None:
            continue
        order, sources, upstream = graph
        if len(problems) == before:
            _resolve_data_sources(stream, elements, order, upstream, path_text, problems)
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
