"""The package's shape (docs/design.md, "What each folder may import"), read from the source: layers
without cycles, small modules, functions and classes, no reading of another module's private names,
one threshold rule, MindSpore only where banks and models are built, nothing importing the CLI, and
no document cited that the repository does not hold."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "patchline"
MAX_LINES = 400
MAX_FUNCTION_LINES = 60
MAX_PARAMETERS = 8
MAX_CLASS_LINES = 250


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
    assert all(m == "patchline.__main__" or m.startswith("patchline.cli") for m in importers), importers


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


def _trees():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(REPO), ast.parse(path.read_text())


def _is_data_table(node: ast.FunctionDef) -> bool:
    """A function whose body (after its docstring) only returns or assigns one literal table."""
    body = node.body[1:] if node.body and isinstance(node.body[0], ast.Expr) and \
        isinstance(node.body[0].value, ast.Constant) else node.body
    return len(body) == 1 and isinstance(body[0], (ast.Return, ast.Assign)) and \
        isinstance(body[0].value, (ast.Dict, ast.List, ast.Tuple, ast.Set))


def _parameters(node: ast.FunctionDef) -> int:
    """Named parameters, without self / cls (*args and **kwargs are not counted)."""
    a = node.args
    names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    return len(names) - (1 if names and names[0] in ("self", "cls") else 0)


def test_no_function_is_longer_than_60_lines_or_takes_more_than_8_parameters():
    long, wide = {}, {}
    for path, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not _is_data_table(node):
                where = f"{path}:{node.lineno} {node.name}"
                if (n := node.end_lineno - node.lineno + 1) > MAX_FUNCTION_LINES:
                    long[where] = n
                if (n := _parameters(node)) > MAX_PARAMETERS:
                    wide[where] = n
    assert (long, wide) == ({}, {})


def test_no_class_is_longer_than_250_lines():
    long = {f"{path}:{node.lineno} {node.name}": n for path, tree in _trees() for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef) and (n := node.end_lineno - node.lineno + 1) > MAX_CLASS_LINES}
    assert long == {}


def test_no_module_reads_another_modules_private_names():
    """`from patchline.x import _name` and `x._name` on an imported patchline module are both reads."""
    reads = []
    for path, tree in _trees():
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("patchline"):
                reads += [f"{path}:{node.lineno} {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
                imported |= {a.asname or a.name for a in node.names}
            elif isinstance(node, ast.Import):
                imported |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name.startswith("patchline")}
        reads += [f"{path}:{node.lineno} {node.value.id}.{node.attr}" for node in ast.walk(tree)
                  if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                  and node.value.id in imported and node.attr.startswith("_") and not node.attr.startswith("__")]
    assert reads == []


def test_no_file_cites_a_document_the_repository_does_not_hold():
    """Markdown links resolve inside the repository, and no text names the design notes that live
    outside it (the design is docs/design.md)."""
    outside = re.compile(r"\b(DESIGN|DATA)\.md\b|\bDESIGN §|\bDATA §")
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    cited, broken = [], []
    files = [p for folder in ("patchline", "docs", "tests", "scripts", "tools", "configs", ".ci")
             for p in (REPO / folder).rglob("*") if p.is_file() and p.suffix in (".py", ".md", ".sh", ".yaml", ".conf", "")]
    for path in [REPO / "README.md", REPO / "pyproject.toml", *files]:
        text = path.read_text(errors="replace")
        rel = str(path.relative_to(REPO))
        cited += [f"{rel}: {m.group(0)}" for m in outside.finditer(text) if path != Path(__file__)]
        if path.suffix == ".md":
            broken += [f"{rel}: {m.group(1)}" for m in link.finditer(text)
                       if "://" not in m.group(1) and not (path.parent / m.group(1)).exists()]
    assert (cited, broken) == ([], [])


TRAINING_ONLY = ("patchline.training", "patchline.models")
NOT_IN_THE_RUNTIME = ("mindspore", "torch", "skimage", "matplotlib", "hypothesis", "playwright", "onnx",
                      "pipeline_support", "sample_data", "browser")


def test_runtime_test_modules_need_nothing_the_runtime_install_lacks():
    """Modules marked `runtime` also run in a runtime-only install (scripts/runtime_check.sh): they and
    every patchline module they reach import no training code, MindSpore, torch, scikit-image,
    matplotlib or test-only helpers."""
    graph = _import_graph()
    mods = _modules()

    def reach(start: set[str]) -> set[str]:
        seen, todo = set(), list(start)
        while todo:
            m = todo.pop()
            if m in graph and m not in seen:
                seen.add(m)
                todo += graph[m]
        return seen

    marked = [p for p in sorted((REPO / "tests").glob("test_*.py")) if "pytestmark = pytest.mark.runtime" in p.read_text()]
    assert len(marked) >= 10
    problems = []
    for path in marked:
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        patchline_mods = {n if n in mods else n.rpartition(".")[0] for n in names if n.startswith("patchline")}
        for module in sorted(reach({m for m in patchline_mods if m in mods}) | names):
            if module.startswith(TRAINING_ONLY) or module.split(".")[0] in NOT_IN_THE_RUNTIME:
                problems.append(f"{path.name}: {module}")
        for module in reach({m for m in patchline_mods if m in mods}):
            source = mods[module].read_text()
            heavy = re.findall(r"^\s*(?:import|from)\s+(mindspore|torch|skimage|matplotlib)\b", source, re.M)
            if heavy and module not in ("patchline.report.plots",):  # plots import matplotlib inside their functions
                problems.append(f"{path.name}: {module} imports {heavy[0]}")
    assert problems == []
