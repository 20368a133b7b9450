"""The packages' module import graph has no cycles.

Built from the sources with `ast`, so it sees every import a run could execute: module-level ones, those
inside functions and methods, and those under `if TYPE_CHECKING:` (a circle there is still a circle in the
design, and it becomes a runtime one the day the annotation is needed at run time). An import names the
most specific module of ours it reaches (`from a.b import c` is `a.b.c` when that is a module, else
`a.b`), as import-linter counts it.
"""

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]


def modules(root: Path, packages: list[str]) -> dict[str, Path]:
    """Every module of the packages: dotted name -> source file (a package is its __init__.py)."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if "__pycache__" in parts:
                continue
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph(root: Path, packages: list[str]) -> dict[str, set[str]]:
    """module -> the modules of ours it imports anywhere in its source (functions, TYPE_CHECKING included)."""
    known = modules(root, packages)
    graph = {name: set() for name in known}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                           for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle (a -> b -> ... -> a) for each strongly connected group of two or more modules."""
    return [_shortest_cycle(graph, group) for group in circular_groups(graph)]


def circular_groups(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected groups of two or more modules: each module of one reaches every other."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def connect(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(groups, key=min)


def _shortest_cycle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """The shortest cycle inside one group, by a breadth-first search back to each start (ties: by name)."""
    best = None
    for start in sorted(group):
        previous, frontier, found = {start: None}, [start], None
        while frontier and found is None:
            following = []
            for v in frontier:
                for w in sorted(graph[v] & group):
                    if w == start and found is None:
                        path = [v]
                        while previous[path[-1]] is not None:
                            path.append(previous[path[-1]])
                        found = path[::-1] + [start]
                    elif w not in previous:
                        previous[w] = v
                        following.append(w)
            frontier = following
        if found and (best is None or len(found) < len(best)):
            best = found
    return best


def test_the_packages_have_no_import_cycles():
    graph = import_graph(ROOT, PACKAGES)
    found = circular_groups(graph)
    assert not found, f"{len(found)} group(s) of modules import each other in a circle:\n" + "\n".join(
        f"{' -> '.join(_shortest_cycle(graph, group))}" + (f" (the group: {', '.join(sorted(group))})"
                                                            if len(group) > 2 else "") for group in found)


def test_the_graph_sees_function_level_and_type_checking_imports(tmp_path):
    """A tree whose only cycles run through an import inside a function, one under TYPE_CHECKING and one
    relative import: all three are found, the acyclic part is not reported."""
    files = {
        "pkg/__init__.py": "",
        "pkg/a.py": "def f():\n    from pkg import b\n",
        "pkg/b.py": "import pkg.a\nimport os\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.sub.d import D\n",
        "pkg/sub/d.py": "from . import c\nfrom ..a import f\n",
        "pkg/e.py": "class E:\n    def m(self):\n        from .sub import d\n",
        "other/__init__.py": "",
        "other/f.py": "from pkg.e import E\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path, ["pkg", "other"])
    assert graph["pkg.sub.d"] == {"pkg.sub.c", "pkg.a"} and graph["pkg.e"] == {"pkg.sub.d"}
    assert graph["other.f"] == {"pkg.e"} and graph["pkg.b"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.a"], ["pkg.sub.c", "pkg.sub.d", "pkg.sub.c"]]
