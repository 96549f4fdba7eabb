"""Writes docs/pipeline-elements.md, the pipeline element reference, from the element classes
themselves so it cannot drift from the code:
`python -m patchline.pipeline.element_docs > docs/pipeline-elements.md` (tests/test_docs.py checks it).
"""

from __future__ import annotations

import importlib
import inspect

from patchline.pipeline.elements import COMMON_PROPS
from patchline.pipeline.factories import FACTORIES, SOURCE_OVERRIDES, element_class

POSTPROCESS = "patchline.plugins.patchcore_postprocess:PatchCorePostProcess"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _props_table(props: dict) -> list[str]:
    if not props:
        return ["No props.", ""]
    rows = ["| prop | required | default | values | what it does here |", "|---|---|---|---|---|"]
    for name, prop in props.items():
        choices = getattr(prop.parse, "choices", None)
        values = ", ".join(f"`{c}`" if c else '`""`' for c in choices) if choices else ""
        use = f"no effect here: {prop.ignored}" if prop.ignored else prop.help
        default = f"`{prop.default}`" if prop.default is not None else ""
        rows.append(f"| `{name}` | {'yes' if prop.required else ''} | {_cell(default)} | {_cell(values)} | "
                    f"{_cell(use)} |")
    return rows + [""]


def _summary(cls) -> list[str]:
    doc = inspect.getdoc(cls) or ""
    return [doc.split("\n\n")[0].replace("\n", " "), ""] if doc else []


def element_reference() -> str:
    """Markdown: every factory a pipeline file may name, its props with defaults and allowed values."""
    out = ["# Pipeline elements", "",
           "Every `factory` a pipeline file may name, as patchline runs it. Props are strings, as in the",
           "MindX SDK; a prop left out takes the default shown (the SDK's default, read from its plugin",
           "reference). Every MindX element also accepts the common props below. Props marked *no effect",
           "here* are checked and accepted so an SDK file loads unchanged; a value other than the default",
           "is listed once, in a warning at load and in `patchline check`.",
           "",
           "Written from the code by `python -m patchline.pipeline.element_docs`; a test keeps it current.", "",
           "## Common props of every `mxpi_*` element", ""]
    out += _props_table(COMMON_PROPS)
    for factory in FACTORIES:
        cls = element_class(factory)
        out += [f"## `{factory}`", ""] + _summary(cls) + _props_table(getattr(cls, "PROPS", {}))
        if factory == "mxpi_classpostprocessor":
            module, name = POSTPROCESS.split(":")
            post = getattr(importlib.import_module(module), name)
            out += [f"### `pythonModule: {module}`, `className: {name}`", ""] + _summary(post)
            out += _props_table(post.PROPS)
    out += ["## Sources given with `patchline run --source`", "",
            "`--source` replaces a file's source element (one `--source` per source element, in the file's order):", ""]
    for kind, spec in SOURCE_OVERRIDES.items():
        module, name = spec.split(":")
        cls = getattr(importlib.import_module(module), name)
        out += [f"- **{kind}** (`{'rtsp://…' if kind == 'rtsp' else 'a folder'}`): " + " ".join(_summary(cls)).strip()]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(element_reference(), end="")
