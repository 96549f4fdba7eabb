"""The stream graph a pipeline file describes: its links checked (each `next` names an element,
sources take nothing in, sinks send nothing on, no cycle), the order frames flow in, and which
element's output each `dataSource` reads. Problems are sentences naming the stream and element."""

from __future__ import annotations

import re
from typing import Iterable

from patchline.pipeline.elements import Where

# Annotations name patchline.pipeline.config.ElementConfig, which this module does not import
# (config imports this one).

SOURCE_NAME = re.compile(r"^appsrc[0-9]+$")
SINK_NAME = re.compile(r"^appsink[0-9]+$")
# The SDK's reserved metadata keys, which mxpi_dataserialize may name beside elements: the frame's
# channel / frame id / end-of-stream flag, and the name of the element whose image the frame carries.
RESERVED_KEYS = ("ReservedFrameInfo", "ReservedVisionList")
# Elements whose output other elements read through `dataSource`. An appsrc is one too when no image
# element stands between it and the reader: a host sends tensors under its name (SDK SendProtobuf).
PRODUCERS = ("mxpi_imagenormalize", "mxpi_tensorinfer", "mxpi_classpostprocessor")


def upstream_of(name: str, upstream: dict[str, str]) -> Iterable[str]:
    while name in upstream:
        name = upstream[name]
        yield name


def check_links(stream: str, elements: dict[str, ElementConfig], path: str,
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


def check_graph(stream: str, elements: dict[str, ElementConfig], path: str,
                 problems: list[str]) -> tuple[list[str], list[str], dict] | None:
    """Check links, sources and sinks, adding each problem to `problems`; (data-flow order,
    source names, element → (first) upstream element), or None when no order can be made."""
    found_before = len(problems)
    upstream, merged = check_links(stream, elements, path, problems)
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
    order = flow_order(sources, elements)
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


def flow_order(sources: list[str], elements: dict[str, ElementConfig]) -> list[str]:
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


def is_producer(el: ElementConfig) -> bool:
    return el.factory in PRODUCERS or (el.factory == "mxpi_parallel2serial" and bool((el.parsed or {}).get("dataSource")))


def nearest_producer(ancestors: list[str], elements: dict[str, ElementConfig]) -> str | None:
    """The first producer upstream; an appsrc counts when only flow elements (queue, tee…) stand between."""
    for name in ancestors:
        el = elements[name]
        if is_producer(el) or el.factory == "appsrc":
            return name
        if el.factory.startswith(("mxpi_image", "mxpi_video", "mxpi_opencv")):
            return next((a for a in ancestors if is_producer(elements[a])), None)
    return None


def resolve_data_sources(stream: str, elements: dict[str, ElementConfig], order: list[str], upstream: dict[str, str],
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
            reach = {a for i in inputs for a in (i, *upstream_of(i, upstream))}
            given = el.parsed["dataSource"]
            if given:
                for key in given:
                    if key not in reach:
                        problems.append(str(where.error(f"names '{key}', which does not feed this element.",
                                                        "dataSource")))
            else:
                keys = [next((a for a in (i, *upstream_of(i, upstream)) if is_producer(elements[a])), None)
                        for i in inputs]
                el.parsed["dataSource"] = tuple(dict.fromkeys(k for k in keys if k))
            continue
        if "dataSource" in el.parsed:
            given = el.parsed["dataSource"]
            ancestors = list(upstream_of(name, upstream))
            if given is None:
                el.parsed["dataSource"] = nearest_producer(ancestors, elements)
            elif given not in ancestors:
                problems.append(str(where.error(f"names '{given}', which is not upstream of this element.",
                                                "dataSource")))
        if el.factory == "mxpi_tensorinfer" and el.parsed["dataSource"] is None:
            problems.append(str(where.error("has no upstream appsrc, mxpi_imagenormalize or mxpi_tensorinfer to read from.",
                                            "dataSource")))
        if el.factory == "mxpi_dataserialize":
            for key in el.parsed["outputDataKeys"]:
                if key not in elements and key not in RESERVED_KEYS:
                    problems.append(str(where.error(f"names '{key}', which is not an element of stream '{stream}'.",
                                                    "outputDataKeys")))
