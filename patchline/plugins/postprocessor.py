"""mxpi_classpostprocessor with funcLanguage python: load a post-process class named in the file.

A pipeline file is configuration, not a way to run arbitrary code: `pythonModule` must live
under `patchline.plugins` unless the operator named it with `--allow-plugin MODULE`. The module
is imported only after that check.

A post-process class is built as `cls(name, props, context)` (props parsed against its own
`PROPS` when it declares them), has `process(frame) -> dict` (the result payload, also for frames
carrying an error), optionally `process_batch(frames) -> list[dict]` with `max_batch` (frames waiting
together, judged in one call) and `close()`.
"""

from __future__ import annotations

import importlib

from patchline.pipeline.elements import Element, Prop, Where, one_of, validate_props

ALLOWED_PREFIX = "patchline.plugins."
OWN_PROPS = {
    "funcLanguage": Prop(required=True, parse=one_of("python"), help="python"),
    "pythonModule": Prop(required=True, help="a module under patchline.plugins"),
    "className": Prop(required=True, help="the post-process class in pythonModule"),
    "dataSource": Prop(),
}


def plugin_allowed(module: str, allow_plugins) -> bool:
    """True for modules under patchline.plugins and for those the operator allowed by name."""
    return module.startswith(ALLOWED_PREFIX) or module in set(allow_plugins or ())


class ClassPostProcessor(Element):
    """Runs the configured class on each frame and stores its payload under this element's name."""

    FACTORY = "mxpi_classpostprocessor"
    PROPS = OWN_PROPS
    handles_errors = True

    @classmethod
    def validate(cls, props, where: Where, options) -> dict:
        own = validate_props(OWN_PROPS, {k: v for k, v in props.items() if k in OWN_PROPS}, where)
        module_name, class_name = own["pythonModule"], own["className"]
        if not plugin_allowed(module_name, options.get("allow_plugins")):
            raise where.error(
                f"module '{module_name}' is outside patchline.plugins; a pipeline file may not load other code "
                f"unless the operator passes --allow-plugin {module_name}.", "pythonModule")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise where.error(f"cannot import module '{module_name}' ({exc}).", "pythonModule") from None
        impl = getattr(module, class_name, None)
        if not isinstance(impl, type) or not callable(getattr(impl, "process", None)):
            raise where.error(f"module '{module_name}' has no post-process class '{class_name}' "
                              f"(a class with a process method).", "className")
        extra = {k: v for k, v in props.items() if k not in OWN_PROPS}
        schema = getattr(impl, "PROPS", None)
        class_props = validate_props(schema, extra, where) if schema is not None else dict(extra)
        return {**own, "class": impl, "class_props": class_props}

    def __init__(self, name, props, context):
        super().__init__(name, props, context)
        self.impl = props["class"](name, props["class_props"], context)
        self.max_batch = int(getattr(self.impl, "max_batch", 1))
        self.workers = int(getattr(self.impl, "workers", 1))

    def process(self, frame):
        return self.process_batch([frame])[0]

    def process_batch(self, frames: list) -> list:
        """The class's payloads, by its `process_batch(frames)` when it has one."""
        batched = getattr(self.impl, "process_batch", None)
        payloads = batched(frames) if batched is not None else [self.impl.process(f) for f in frames]
        for frame, payload in zip(frames, payloads):
            frame.meta[self.name] = payload
        return frames

    def close(self) -> None:
        close = getattr(self.impl, "close", None)
        if close is not None:
            close()
