"""No import circle among selfsim's modules: imports anywhere in a file count (function-level, TYPE_CHECKING)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "selfsim"


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under the package `root` (packages by their __init__)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        name = ".".join(path.with_suffix("").relative_to(root.parent).parts)
        out[name.removesuffix(".__init__")] = path
    return out


def imported(module: str, path: Path, tree: ast.AST) -> set[str]:
    """Every dotted name `module` imports anywhere in its file, relative imports resolved."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                keep = len(parts) - node.level + (1 if path.name == "__init__.py" else 0)
                base = ".".join(parts[:keep] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return names


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package modules it imports (a name resolves to its longest known module prefix).

    Importing one's own parent packages does not count: Python runs them first anyway.
    """
    mods = module_files(root)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for module, path in mods.items():
        for name in imported(module, path, ast.parse(path.read_text(), filename=str(path))):
            while name and name not in mods:
                name = name.rpartition(".")[0]
            if name and name != module and not module.startswith(name + "."):
                graph[module].add(name)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, edges = work[-1]
            w = next(edges, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
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
    return found


def test_finds_a_circle_through_function_level_and_type_checking_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .b import thing\n")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.sub.b import thing\n")
    (pkg / "sub" / "b.py").write_text("def thing():\n    from ..c import other\n    return other\n")
    (pkg / "c.py").write_text("import pkg.a\nimport os\n")
    (pkg / "d.py").write_text("from pkg import a\n")
    assert circles(import_graph(pkg)) == [["pkg.a", "pkg.c", "pkg.sub.b"]]


def test_selfsim_has_no_import_circle():
    found = circles(import_graph(PACKAGE))
    assert not found, "import circle(s) in selfsim/: " + "; ".join(" <-> ".join(c) for c in found)
