"""What `patchline run --host-api` hands the MindX SDK's stream manager, and what the host keeps.

The reference application splits a PatchCore line the same way: the stream (appsrc → decode →
resize → crop → normalize → the layer models → appsink) runs where the SDK runs it — on an NPU
with the real SDK — and the host sends each image with SendData, takes the models' tensors with
GetResult(stream, b"appsink0", keys), and searches the bank, aggregates and judges itself.

`plan_host_stream(raw, cfg)` cuts one stream of a checked pipeline file at its PatchCore
post-process: everything before it becomes the device stream, ending in a new `appsink0`; the
post-process's props stay with the host. A file it cannot cut this way is refused in one sentence.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from patchline.errors import ConfigError
from patchline.pipeline.config import StreamConfig

POST_PROCESS = ("patchline.plugins.patchcore_postprocess", "PatchCorePostProcess")
APPSINK = "appsink0"
VISION_KEYS = ("mxpi_imagedecoder", "mxpi_imagecrop")  # image elements whose MxpiVisionList the host reads


@dataclass(frozen=True)
class HostPlan:
    """One stream split between the SDK and the host.

    device: the SDK stream's JSON ({stream name: {element: …}}), appsrc0 → … → last model → appsink0.
    models: the mxpi_tensorinfer elements in link order (their MxpiTensorPackageList keys).
    decoder / crop: the image elements whose MxpiVisionList tells the frame's size and the crop's
    pixels (None where the stream has none). source: the appsrc the host sends to. post_process: the host's PatchCore element name and props.
    """

    stream: str
    source: str
    device: dict
    models: tuple[str, ...]
    decoder: str | None
    crop: str | None
    post_process: str
    post_props: dict

    @property
    def keys(self) -> list[bytes]:
        """The metadata keys GetResult asks appsink0 for, as the SDK takes them (bytes)."""
        names = [n for n in (self.decoder, self.crop) if n] + list(self.models)
        return [n.encode() for n in names]


def _is_patchcore(el) -> bool:
    props = el.parsed or {}
    return el.factory == "mxpi_classpostprocessor" and (props.get("pythonModule"), props.get("className")) == POST_PROCESS


def _chain_to(cfg: StreamConfig, end: str) -> list[str]:
    """The elements from the stream's source to `end` (excluded), following the links back; ConfigError
    when that path branches or merges (a tee or several sources)."""
    chain, name = [], cfg.upstream.get(end)
    while name is not None:
        chain.append(name)
        el = cfg.elements[name]
        if len(el.next) != 1:
            raise ConfigError(f"stream '{cfg.name}': --host-api cuts a straight chain, and element '{name}' "
                              f"feeds {len(el.next)} elements before the post-process.")
        name = cfg.upstream.get(name)
    return chain[::-1]


def _beside_file(elements: dict, models: tuple[str, ...], pipeline_dir: Path | None) -> None:
    """A relative modelPath that names a model beside the pipeline file becomes that file's path: the
    device stream is created from JSON text, which has no folder of its own (the runner resolves such a
    path against the file's folder first, then the working directory)."""
    for name in models:
        props = elements[name].get("props", {})
        text = props.get("modelPath")
        if pipeline_dir is not None and isinstance(text, str) and not Path(text).is_absolute():
            beside = pipeline_dir / text
            if beside.is_file() or beside.with_suffix(".onnx").is_file():
                props["modelPath"] = str(beside)


def plan_host_stream(raw: dict, cfg: StreamConfig, pipeline_dir: Path | None = None) -> HostPlan:
    """The split of one checked stream (`raw`: its JSON as written, `cfg`: as parsed; pipeline_dir: the
    file's folder). ConfigError when the stream does not start at one appsrc, has no PatchCore
    post-process, or branches before it."""
    posts = [n for n in cfg.order if _is_patchcore(cfg.elements[n])]
    if len(posts) != 1:
        raise ConfigError(f"stream '{cfg.name}': --host-api runs the PatchCore post-process on the host and needs "
                          f"exactly one (pythonModule {POST_PROCESS[0]}); the stream has {len(posts)}.")
    post = posts[0]
    chain = _chain_to(cfg, post)
    if not chain or cfg.elements[chain[0]].factory != "appsrc" or len(cfg.sources) != 1:
        first = cfg.elements[chain[0]].factory if chain else "nothing"
        raise ConfigError(f"stream '{cfg.name}': --host-api sends each image with SendData, so the stream must start "
                          f"at one appsrc; it starts at {first}.")
    models = tuple(n for n in chain if cfg.elements[n].factory == "mxpi_tensorinfer")
    if not models or chain[-1] != models[-1]:
        raise ConfigError(f"stream '{cfg.name}': --host-api takes the models' tensors from appsink0, so the "
                          f"post-process must follow the last mxpi_tensorinfer directly.")
    elements = {n: copy.deepcopy(raw[n]) for n in chain}
    _beside_file(elements, models, pipeline_dir)
    elements[models[-1]]["next"] = APPSINK
    elements[APPSINK] = {"factory": "appsink"}
    device = {cfg.name: {"stream_config": copy.deepcopy(raw.get("stream_config", {"deviceId": "0"})), **elements}}
    first_of = {factory: next((n for n in chain if cfg.elements[n].factory == factory), None) for factory in VISION_KEYS}
    return HostPlan(cfg.name, chain[0], device, models, first_of["mxpi_imagedecoder"], first_of["mxpi_imagecrop"],
                    post, dict(cfg.elements[post].parsed))
