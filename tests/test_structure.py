"""The package's shape (DESIGN.md §3), read from the source: layers without cycles, small modules,
one threshold rule, MindSpore only where banks and models are built, nothing importing the CLI."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "patchline"
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def _import_graph() -> dict[str, set[str]]:
    """module → the patchline modules it imports anywhere (module level or inside functions)."""
    mods = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for module, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                target = resolve(name) if name.startswith("patchline") else None
                # `from patchline.x import y` also names the package patchline.x itself: not an edge back
                if target and target != module and not module.startswith(target + "."):
                    graph[module].add(target)
    return graph


def _folder(module: str) -> str:
    """patchline.core.scoring → patchline.core; a top-level module is its own node."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or (PACKAGE / parts[-1]).is_dir() else module


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_between_files_or_between_folders():
    graph = _import_graph()
    assert _cycles(graph) == []
    folders: dict[str, set[str]] = {}
    for module, targets in graph.items():
        folders.setdefault(_folder(module), set()).update(_folder(t) for t in targets if _folder(t) != _folder(module))
    assert _cycles(folders) == []


def test_the_pipeline_framework_imports_no_plugin_and_nothing_imports_the_cli():
    graph = _import_graph()
    framework = {m: t for m, t in graph.items() if m.startswith("patchline.pipeline")}
    assert framework and not any(t.startswith("patchline.plugins") for ts in framework.values() for t in ts)
    importers = sorted(m for m, targets in graph.items() if "patchline.cli" in targets)
    assert importers == ["patchline.__main__"]


def test_no_module_is_longer_than_400_lines():
    long = {str(p.relative_to(REPO)): n for p in _modules().values() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_score_vs_threshold_rule_is_written_once():
    rule = re.compile(r"[<>]=?\s*[\w.\[\]\"']*threshold\b")
    code = [(p, line) for folder in ("patchline", "bench") for p in (REPO / folder).rglob("*.py")
            if not any(part.startswith(".") for part in p.relative_to(REPO).parts)  # bench/.venv-anomalib
            for line in p.read_text().splitlines()
            if rule.search(line.split("#")[0]) and "pixel_threshold" not in line and not line.strip().startswith('"""')]
    assert [(str(p.relative_to(REPO)), line.strip()) for p, line in code] == \
        [("patchline/core/scoring.py", "return np.asarray(image_scores) > threshold")]


def test_mindspore_and_torch_are_imported_only_where_banks_and_models_are_built():
    heavy = re.compile(r"^\s*(import|from)\s+(mindspore|torch)\b", re.M)
    allowed = (PACKAGE / "training", PACKAGE / "models")
    offenders = [str(p.relative_to(REPO)) for p in PACKAGE.rglob("*.py")
                 if heavy.search(p.read_text()) and not p.is_relative_to(allowed[0]) and not p.is_relative_to(allowed[1])]
    assert offenders == []
