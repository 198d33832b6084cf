"""Product code stays product code: chalicelib/ and app.py never import the demo or the test kit (they are not
deployed), and chalicelib's modules import one another without a cycle, read from the source (AST).

A cycle counts module-level imports only (those run when a module is loaded, `if TYPE_CHECKING:` blocks
excepted): an import inside a function runs later, once every module is loaded. The demo and the test
kit may not be imported anywhere, not even lazily inside a function.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "chalicelib"
NOT_PRODUCT = ("netguard_demo", "netguard_testkit")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def product_files() -> dict[str, Path]:
    files = {module_name(p): p for p in sorted(LIB.rglob("*.py"))}
    files["app"] = ROOT / "app.py"
    return files


def is_package(name: str) -> bool:
    return (ROOT / Path(*name.split(".")) / "__init__.py").exists()


def absolute(name: str, module: str | None, level: int) -> str:
    """`from ..x import y` in `name` -> the module it names (`x` resolved against name's package)."""
    if not level:
        return module or ""
    package = name.split(".") if is_package(name) else name.split(".")[:-1]
    base = package[:len(package) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imported(name: str, node: ast.Import | ast.ImportFrom, known: set[str]) -> list[str]:
    """The modules one import statement loads: for `from p import n`, p.n when it is a module, else p."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    source = absolute(name, node.module, node.level)
    found = [f"{source}.{alias.name}" for alias in node.names if f"{source}.{alias.name}" in known]
    return found or [source]


def all_imports(name: str, tree: ast.AST, known: set[str]) -> list[tuple[int, str]]:
    """Every import anywhere in the module, with its line, and importlib.import_module("...") of a constant."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found += [(node.lineno, target) for target in imported(name, node, known)]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)):
            found.append((node.lineno, str(node.args[0].value)))
    return found


def module_level_imports(name: str, body: list[ast.stmt], known: set[str]) -> list[str]:
    """Imports run when the module loads: top-level statements and the blocks of top-level if/try/with and
    class bodies; not function bodies, not `if TYPE_CHECKING:`."""
    found: list[str] = []
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found += imported(name, node, known)
        elif isinstance(node, ast.If):
            test = ast.unparse(node.test)
            if test not in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                found += module_level_imports(name, node.body, known)
            found += module_level_imports(name, node.orelse, known)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                found += module_level_imports(name, block, known)
        elif isinstance(node, (ast.With, ast.ClassDef)):
            found += module_level_imports(name, node.body, known)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (a path returning to its start), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_product_code_never_imports_the_demo_or_the_test_kit() -> None:
    files = product_files()
    assert "chalicelib.cli" in files and "chalicelib.handlers" in files, "the walk found no chalicelib module"
    bad = [f"{path.relative_to(ROOT)}:{line} imports {target}"
           for name, path in files.items()
           for line, target in all_imports(name, ast.parse(path.read_text(encoding="utf-8")), set(files))
           if target.split(".")[0] in NOT_PRODUCT]
    assert not bad, bad


def test_chalicelib_modules_import_one_another_without_a_cycle() -> None:
    graph = import_graph()
    assert any(graph.values()), "the walk found no import between chalicelib modules"
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or ())


def test_the_cycle_check_can_fail() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import x\n"
                     "def f():\n    from . import y\nfrom .z import n\n")
    assert module_level_imports("chalicelib.w", tree.body, {"chalicelib.z"}) == ["typing", "chalicelib.z"]
    assert sorted(t for _, t in all_imports("chalicelib.w", tree, set())) == [
        "chalicelib", "chalicelib", "chalicelib.z", "typing"]


def test_the_demo_is_a_subcommand_the_cli_finds_by_entry_point() -> None:
    """`netguard demo` (make demo) exists without chalicelib naming it: netguard_demo registers it."""
    from chalicelib.cli import build_parser

    args = build_parser().parse_args(["demo"])
    assert args.command == "demo" and callable(args.run)


def import_graph() -> dict[str, set[str]]:
    files = {name: path for name, path in product_files().items() if name.startswith("chalicelib")}
    known = set(files)
    return {name: {target for target in module_level_imports(name, ast.parse(path.read_text(encoding="utf-8")).body,
                                                              known) if target in known and target != name}
            for name, path in files.items()}


def closure(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every chalicelib module loading `start` loads (a package's __init__ runs before its modules)."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(2, len(parts))] + sorted(graph.get(name, ()))
    return seen


def test_the_pure_stages_do_not_load_the_code_that_writes() -> None:
    """policy (validating a control's remediation) and decide (choosing what to do) read the actions' declarations
    (actions/catalog.py) only: loading them loads no module that makes or binds a write (actions.base, the
    executor, and whatever imports it: the family modules, remediate)."""
    graph = import_graph()
    writers = {name for name in graph if "chalicelib.actions.base" in closure(graph, name)}
    assert {"chalicelib.actions.base", "chalicelib.actions.notebook", "chalicelib.remediate",
            "chalicelib.pipeline"} <= writers, sorted(writers)  # the check can fail
    for stage in ("chalicelib.policy", "chalicelib.decide", "chalicelib.actions.catalog"):
        loaded = closure(graph, stage)
        assert "chalicelib.actions.catalog" in loaded
        assert not loaded & writers, f"{stage} loads {sorted(loaded & writers)}"
