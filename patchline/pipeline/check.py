"""`patchline check`: everything `patchline run` would refuse, found without running a frame.

The file is loaded (schema and props, every problem at once), then each stream's elements are
built as `run` builds them — models opened and each one's input compared with what its
`dataSource` gives, the line's bank loaded and checked against the models — except its source,
which is only described (no camera is dialled). The result is each stream's graph (element →
element, with tensor shapes) and the list of problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from patchline.errors import PatchlineError
from patchline.pipeline.geometry import shape_text
from patchline.pipeline.config import ElementConfig, StreamConfig, load_pipeline
from patchline.pipeline.elements import StreamContext


@dataclass
class StreamCheck:
    """One stream's graph, a line per element in data-flow order, and its problems."""

    name: str
    graph: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _model_paths(cfg: StreamConfig) -> list[str]:
    return [str(el.parsed["modelPath"]) for n in cfg.order for el in [cfg.elements[n]]
            if el.factory == "mxpi_tensorinfer" and el.parsed]


def _describe(el: ElementConfig, element) -> str:
    """What the built element does to a frame, with the shapes it produces."""
    p = el.parsed or {}
    if el.factory == "appsrc":
        return "frames from the host (`patchline run --source FOLDER | rtsp://…`)"
    if el.factory == "mxpi_rtspsrc":
        return f"camera {p.get('rtspUrl')}"
    if el.factory in ("mxpi_imagedecoder", "mxpi_videodecoder"):
        return "encoded frame → (H, W, 3) uint8 RGB, (H, W) for gray"
    if el.factory == "mxpi_imageresize":
        if element.resize_type == "stretch":
            return f"stretched to {element.resize} × {element.resize} px"
        return f"shorter side → {element.resize} px, aspect kept"
    if el.factory in ("mxpi_imagecrop", "mxpi_opencvcentercrop"):
        return f"centre crop → ({element.size}, {element.size}) pixels"
    if el.factory == "mxpi_imagenormalize":
        size = element.context.geometry.imagesize
        return f"ImageNet mean / std → (3, {size}, {size}) float32"
    if el.factory == "mxpi_tensorinfer":
        ins = ", ".join(f"{i.name} {shape_text(i.shape)}" for i in element.session.get_inputs())
        outs = ", ".join(f"{o.name} {shape_text(o.shape)}" for o in element.session.get_outputs())
        return f"{p['modelPath']}: {ins} → {outs}"
    if el.factory == "mxpi_classpostprocessor":
        impl = element.impl
        live = getattr(impl, "live", None)
        if live is None:
            return f"{p['pythonModule']}.{p['className']}"
        bank = live.state
        m = bank.meta
        return (f"line {impl.line}: bank {bank.version} ({bank.path}), {m.n_patches} × {m.embedding_dim} patches of "
                f"{m.backbone} {'+'.join(m.layers)} at {m.resize} / {m.imagesize} px, {m.search['kind']} search, "
                f"{m.aggregation} > {m.threshold:.4g} is a defect")
    return el.factory


def check_stream(cfg: StreamConfig, path: str, options: Mapping) -> StreamCheck:
    """Build the stream's elements (not its source) as `run` would; its graph and problems."""
    result = StreamCheck(cfg.name)
    where = f"{path}: stream '{cfg.name}'"
    context = StreamContext(stream=cfg.name, camera=cfg.name, pipeline_path=path, options=dict(options))
    built: dict[str, object] = {}
    try:
        for name in cfg.order:
            el = cfg.elements[name]
            if name in cfg.sources:
                continue
            try:
                built[name] = el.cls(name, el.parsed, context)
            except PatchlineError as exc:
                message = f"{where}, element '{name}': {exc}"
                if el.factory == "mxpi_classpostprocessor":
                    message += f" (the stream's models: {', '.join(_model_paths(cfg)) or 'none'})"
                result.problems.append(message)
                break  # later elements rely on what this one would have told them
        for name in cfg.order:  # described once all are built: a later element may complete an earlier one
            el = cfg.elements[name]
            if name in cfg.sources or name in built:
                result.graph.append(f"{name} ({el.factory}): {_describe(el, built.get(name))}"
                                    + (f" → {_targets(el)}" if el.next else ""))
    finally:
        for element in built.values():
            try:
                element.close()
            except Exception:  # closing must reach every element
                pass
    return result


def _targets(el: ElementConfig) -> str:
    return ", ".join(link.target for link in el.next) or "(end)"


def check_pipeline(path: str | Path, line: str | None = None, banks_root: str | Path | None = None,
                   allow_plugins: Iterable[str] = ()) -> tuple[list[StreamCheck], list[str]]:
    """Every stream of the file checked (see module doc), and the props the file gives that have no
    effect here. A file that does not load raises ConfigErrors listing all its problems; build
    problems are in each StreamCheck.problems."""
    config = load_pipeline(path, allow_plugins)
    options = {"line": line, "banks_root": str(banks_root) if banks_root else None, "ort_threads": 1,
               "model_workers": 1}
    return [check_stream(cfg, str(config.path), options) for cfg in config.streams.values()], config.ignored


def report(checks: list[StreamCheck], ignored: list[str] = ()) -> tuple[str, list[str]]:
    """(the graphs and the props without effect as text, every problem)."""
    lines = []
    for check in checks:
        lines.append(f"stream {check.name}")
        lines += [f"  {line}" for line in check.graph]
    lines += [f"note: no effect here: {note}" for note in ignored]
    return "\n".join(lines), [p for c in checks for p in c.problems]

