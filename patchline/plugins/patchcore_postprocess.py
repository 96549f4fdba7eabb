"""The PatchCore post-process: layer features → embed → bank search → image score → verdict payload.

Every step is the shared code path (`embed`, `Bank.patch_scores`, `scoring.judge`), so the pipeline
scores a frame exactly as `evaluate` does.
The bank is the line's LiveBank (live_bank.py): swapped whole, in the background, after a retrain.
A host that switches recipes (stream option `recipe_lines`) has every recipe line's bank loaded and
checked at start; each frame is judged with the line the host chose for it at the source
(`frame.judge_line`), so a switch happens between two frames and a verdict names its line.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np

from patchline.bank import live as live_bank
from patchline.core.embed import embed
from patchline.core.preprocess import crop_box
from patchline.core.scoring import judge
from patchline.names import check_name
from patchline.paths import banks_root
from patchline.pipeline.elements import Prop, positive_float
from patchline.pipeline.geometry import JudgedLine
from patchline.report.snapshots import encode_snapshot, snapshot_name, snapshot_picture

log = logging.getLogger(__name__)


class PatchCorePostProcess:
    """Scores frames of one product line against its live bank; one verdict payload per frame.

    props: line (bank name), banks (banks root), bankCheckInterval (seconds between CURRENT checks).
    The host's --line / --banks (context.options "line", "banks_root") win over the file's props;
    context.options "recipe_lines": further lines a frame may be judged with (frame.judge_line).
    A bank that does not fit the stream (backbone, resize, imagesize, layers, embedding_dim) is
    refused at start with a BankError naming the field. The host's frame.tags join the payload.
    """

    max_batch = 8  # frames waiting together are embedded in one call
    # The search dominates a frame's CPU and is thread-safe (faiss searches, numpy, one bank
    # reference per batch), so two workers share it when frames wait.
    workers = 2

    PROPS = {
        "line": Prop(required=True, help="the product line (its bank's name)"),
        "banks": Prop(help="the banks root folder (default ./faiss-index-precision)"),
        "bankCheckInterval": Prop(default="0.5", parse=positive_float, help="seconds, e.g. 0.5"),
    }

    def __init__(self, name: str, props: dict, context):
        self.name = name
        self.context = context
        self.line = check_name(context.options.get("line") or props["line"], "line")
        root = Path(context.options.get("banks_root") or props.get("banks") or banks_root())
        geometry = context.geometry
        lines = [self.line] + [check_name(n, "line") for n in context.options.get("recipe_lines") or ()
                               if n != self.line]
        self.lives: dict[str, live_bank.LiveBank] = {}
        try:
            for line in dict.fromkeys(lines):
                self.lives[line] = live_bank.acquire(root, line, geometry.expected_bank(), geometry.layer_channels,
                                                     props.get("bankCheckInterval") or 0.5)
                self.lives[line].listeners.append(context.on_bank)
        except BaseException:
            self.close()
            raise
        self.live = self.lives[self.line]
        geometry.judged = JudgedLine(self.line, lambda: self.bank_version, lambda: self.live.state.meta)
        self.stage_seconds = {"embed": 0.0, "search": 0.0, "aggregate_map": 0.0}  # summed over frames
        self._stage_lock = threading.Lock()
        log.info("stream %s: line %s scores against bank %s", context.stream, self.line, self.bank_version)

    @property
    def bank_version(self) -> str:
        return self.live.state.version

    def _payload(self, frame, state, verdict: str, score: float | None, line: str | None = None) -> dict:
        return {
            "frame_id": frame.frame_id,
            "camera": frame.camera or self.context.camera,
            "channel": frame.channel,
            "line": line or self.line,
            "timestamp": frame.iso_time(),
            "score": score,
            "threshold": state.meta.threshold,
            "verdict": verdict,
            "aggregation": state.meta.aggregation,
            "bank_version": state.version,
            **frame.timing_fields(),
            "source": frame.source,
            **frame.tags,
        }

    def process(self, frame) -> dict:
        """Frame with `tensors` {layer: (1, C, h, w) float32} → verdict payload (docs/mqtt.md: the verdict message)."""
        return self.process_batch([frame])[0]

    def process_batch(self, frames: list) -> list[dict]:
        """Payloads of frames waiting together: per line they are judged with, one embed call, then
        each frame searched and judged.

        A line's bank is taken once, so its frames see one bank, old or new, never a mix; when a
        line's batch fails, each of its frames is judged alone against that bank."""
        groups: dict[str, list] = {}
        for frame in frames:
            groups.setdefault(frame.judge_line or self.line, []).append(frame)
        payloads = {}
        for line, group in groups.items():
            payloads.update(self._judge_line(line, group))
        return [payloads[id(frame)] for frame in frames]

    def _judge_line(self, line: str, frames: list) -> dict[int, dict]:
        """{id(frame): payload} of frames judged with `line`'s live bank."""
        live = self.lives.get(line)
        if live is None:  # the host asked for a line this stream did not load: an error verdict, not a crash
            state = self.live.state
            return {id(f): {**self._payload(f, state, "error", None, line),
                            "reason": f"line {line} is not loaded in stream {self.context.stream}"} for f in frames}
        state = live.state
        payloads = {id(f): {**self._payload(f, state, "error", None, line), "reason": f.error}
                    for f in frames if f.error is not None}
        scored = [f for f in frames if f.error is None]
        if scored:
            try:
                payloads.update(self._judge(scored, state, line))
            except Exception:  # a frame must never stop the stream
                for frame in scored:
                    payloads[id(frame)] = self._judge_alone(frame, state, line)
        return payloads

    def _judge_alone(self, frame, state, line: str) -> dict:
        try:
            return self._judge([frame], state, line)[id(frame)]
        except Exception as exc:
            log.exception("stream %s: frame %s failed in %s", self.context.stream, frame.frame_id, self.name)
            return {**self._payload(frame, state, "error", None, line), "reason": f"{self.name}: {exc}"}

    def _judge(self, frames: list, state, line: str) -> dict[int, dict]:
        """{id(frame): payload} for error-free frames: embed all, search and judge each."""
        m = state.meta
        t0 = time.perf_counter()
        features = {layer: np.concatenate([f.tensors[layer] for f in frames]) if len(frames) > 1
                    else frames[0].tensors[layer] for layer in m.layers}
        embeddings = embed(features, m.layers, m.patchsize, m.target_dim)
        t1 = time.perf_counter()
        patch_scores = state.patch_scores(embeddings, m.aggregation, m.threshold, m.pixel_threshold)
        t2 = time.perf_counter()
        verdicts = [judge(scores, m.aggregation, m.threshold, m.pixel_threshold, m.imagesize,
                          crop_box(frame.frame_shape, m.resize, m.imagesize, m.resize_type), m.score_reference)
                    for frame, scores in zip(frames, patch_scores)]
        t3 = time.perf_counter()
        with self._stage_lock:  # two workers add to the same totals
            spent = self.stage_seconds
            spent["embed"] += t1 - t0
            spent["search"] += t2 - t1
            spent["aggregate_map"] += t3 - t2
        n = len(frames)
        payloads = {}
        for frame, verdict in zip(frames, verdicts):
            frame.timings.update(embed=(t1 - t0) / n, search=(t2 - t1) / n, aggregate_map=(t3 - t2) / n)
            payload = self._payload(frame, state, "defect" if verdict.defect else "good", verdict.score, line)
            if verdict.region is not None:
                payload["region"] = verdict.region
            if verdict.defect and self.context.options.get("snapshots") and frame.image is not None:
                self._attach_snapshot(payload, frame.image, verdict)
            payloads[id(frame)] = payload
        return payloads

    def _attach_snapshot(self, payload: dict, crop: np.ndarray, verdict) -> None:
        """payload["snapshot"]: the JPEG's name; payload["_snapshot_jpeg"]: its bytes, for the host to
        keep and publish (it pops the key before anything is sent). Draws the map the verdict's region
        was outlined on."""
        caption = (f"{payload['line']} / {payload['camera']}  frame {payload['frame_id']}  "
                   f"score {payload['score']:.4g} > {payload['threshold']:.4g}  {payload['timestamp']}")
        name = snapshot_name(payload)
        identity = {k: payload[k] for k in ("line", "camera", "frame_id", "score", "timestamp")}
        payload["snapshot"] = name
        payload["_snapshot_jpeg"] = encode_snapshot(snapshot_picture(crop, verdict.amap, verdict.level, caption),
                                                    {"name": name, **identity})

    def close(self) -> None:
        for live in self.lives.values():
            if self.context.on_bank in live.listeners:
                live.listeners.remove(self.context.on_bank)
            live_bank.release(live)
        self.lives = {}
