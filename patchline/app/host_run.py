"""`patchline run PIPELINE --host-api`: the run driven through the MindX SDK's host API.

The pipeline file's stream is cut at its PatchCore post-process (host_plan.py). The part before it
is created with StreamManagerApi.CreateMultipleStreams — the MindX SDK's where it is installed, so
an Ascend box decodes, resizes and runs both models on its NPU; patchline's runner otherwise — and
the host sends the --source folder's images into it, takes the layer tensors back, and runs the
post-process, judging and every sink (MQTT, snapshots, …) itself, as the reference application
does. Verdicts are the ones `patchline run` gives without --host-api (tests/test_host_api_run.py).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Iterable

from patchline.app.drift import DriftRule
from patchline.app.host_plan import APPSINK, HostPlan, plan_host_stream
from patchline.app.host_stream import HostStream, sdk_binding
from patchline.app.run import RunRouter, default_sinks
from patchline.app.run_settings import RunSettings
from patchline.app.sinks import MqttSink, Sink, SummarySink
from patchline.core.preprocess import list_images
from patchline.errors import ConfigError, PatchlineError
from patchline.pipeline.config import load_pipeline
from patchline.pipeline.elements import StreamContext

log = logging.getLogger("patchline.app.run")


def _one_stream(settings: RunSettings):
    """(the file's config, its one stream's config, the split, the folder's images); ConfigError otherwise."""
    config = load_pipeline(settings.pipeline, settings.allow_plugins)
    if len(config.streams) != 1:
        raise ConfigError(f"--host-api runs a file with one stream; {settings.pipeline} has {len(config.streams)}.")
    if len(settings.sources) != 1 or not Path(settings.sources[0]).is_dir():
        raise ConfigError("--host-api sends a folder's images with SendData: give one --source FOLDER.")
    paths = list_images(settings.sources[0])
    if not paths:
        raise ConfigError(f"--source {settings.sources[0]} holds no images (.png, .jpg, .bmp, .tif).")
    (cfg,) = config.streams.values()
    raw = json.loads(Path(config.path).read_text())[cfg.name]
    return config, cfg, plan_host_stream(raw, cfg, Path(config.path).resolve().parent), paths


def _model_outputs(cfg, plan: HostPlan):
    """(the device part's StreamGeometry, each model element → its output names in tensor order), read
    from the elements as `run` builds them (models opened and closed again: the device stream has its own)."""
    context = StreamContext(stream=cfg.name, camera=cfg.name, pipeline_path="<host>",
                            options={"ort_threads": 1, "model_workers": 1})
    device = plan.device[cfg.name]
    built = []
    try:
        for name in cfg.order:
            if name in device and name not in cfg.sources and name != APPSINK:
                built.append(cfg.elements[name].cls(name, cfg.elements[name].parsed, context))
    finally:
        for element in built:
            element.close()
    return context.geometry, {m: tuple(out.name for out in context.geometry.models[m].outputs) for m in plan.models}


def _post_process(settings: RunSettings, cfg, plan: HostPlan, router: RunRouter, camera: str):
    """The host's PatchCore element, built on the device part's geometry (its bank checked against it)."""
    geometry, outputs = _model_outputs(cfg, plan)
    options = {"line": settings.line, "banks_root": str(settings.banks_root) if settings.banks_root else None,
               "snapshots": settings.snapshots is not None}
    context = StreamContext(stream=cfg.name, camera=camera, pipeline_path=str(settings.pipeline), geometry=geometry,
                            options=options, on_bank=router.on_bank)
    props = plan.post_props  # as the file's mxpi_classpostprocessor parsed them: the class and its own props
    post = props["class"](plan.post_process, props["class_props"], context)
    router.contexts = {camera: context}
    return post, outputs


def _stop_on_signals(stop: threading.Event) -> dict:
    """SIGINT / SIGTERM stop sending (frames sent are still judged); the handlers they replaced."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}


def _run_stream(host: HostStream, settings: RunSettings, paths, stop: threading.Event) -> float:
    """Feed and drain until the folder is done or the run is stopped; the seconds it ran."""
    previous = _stop_on_signals(stop)
    began = time.perf_counter()
    feeder = threading.Thread(target=host.feed, args=(paths, stop, settings.loop_folder, settings.folder_fps),
                              name="host-api-feed", daemon=True)
    feeder.start()
    try:
        host.drain()
    finally:
        stop.set()
        feeder.join(5.0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return time.perf_counter() - began


def run_host_api(settings: RunSettings, sinks: Iterable[Sink] = ()) -> int:
    """Run one RunSettings through StreamManagerApi (module doc); print a summary unless quiet. Returns 0;
    PatchlineError when the stream manager refuses the device stream or the stream stops answering."""
    settings.check()
    config, cfg, plan, paths = _one_stream(settings)
    stop, summary = threading.Event(), SummarySink()
    router = RunRouter([*default_sinks(settings), *sinks], summary, settings.max_frames, stop.set,
                       DriftRule(window=settings.drift_window) if settings.drift_window else DriftRule())
    camera = settings.camera or cfg.name
    binding = sdk_binding()
    post, outputs = _post_process(settings, cfg, plan, router, camera)
    api = binding.StreamManagerApi()
    try:
        code = api.InitManager()
        code = code or api.CreateMultipleStreams(json.dumps(plan.device).encode())
        if code != 0:
            raise PatchlineError(f"{binding.name} refused the device part of {settings.pipeline} (code {code}); "
                                 f"its log says why.")
        host = HostStream(binding, api, plan, outputs, post, camera, router.on_result)
        line, version = post.line, post.bank_version
        router.bank_versions[line] = version
        for sink in router.sinks:
            if isinstance(sink, MqttSink):
                sink.start({line: [camera]}, router.bank_versions)
        router.on_status(camera, "online", source=str(settings.sources[0]))
        seconds = _run_stream(host, settings, paths, stop)
        router.on_status(camera, "online", fps=round(summary.per_camera[camera] / max(seconds, 1e-9), 2),
                         errors=summary.errors_per_camera[camera], **router.drift_fields(camera))
    finally:
        api.DestroyAllStreams()
        post.close()
        for sink in router.sinks:
            sink.close()
    if not settings.quiet:
        rows = [f"patchline run {config.path} --host-api ({binding.name}): {seconds:.1f} s",
                f"  stream {cfg.name} (camera {camera}, line {line}): {host.sent} frames sent, {host.results} results, "
                f"{summary.per_camera[camera] / max(seconds, 1e-9):.1f} frames/s, {summary.errors_per_camera[camera]} errors"]
        for sink in [summary, *router.sinks]:
            rows += sink.summary_lines()
        print("\n".join(rows))
    if host.fatal:
        raise PatchlineError(host.fatal)
    return 0
