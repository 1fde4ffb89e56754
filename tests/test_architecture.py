"""Package arrows run one way (elastic <- profiling <- search <- app <- bench), inside elastic/ and app/ too
(their subpackages are layers of their own), and no module imports itself round.

Imports are read with `ast` from the source files (nothing is executed), including the lazy imports
inside functions: a lazy import is still a dependency, it only moves the failure to run time.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("elastic", "profiling", "search", "app", "bench")  # each may import only those before it
# Inside a package: rank of each subpackage; a module may import a subpackage of lower rank or its own, never a
# peer of the same rank (the CLI and the dashboard both sit on the workflow layer and never import each other).
SUBLAYERS = {
    "elastic": {"rundir": 0, "model": 1, "data": 2, "training": 3, "export": 4},
    "app": {"config": 0, "workflow": 1, "cli": 2, "dashboard": 2, "main": 3},
}
PRODUCT = ("elastic", "profiling", "search", "app")
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in LAYERS for p in sorted((ROOT / pkg).rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module `name` refers to (a module, or the package whose attribute it names)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    """Module -> project modules it imports (at top level or inside functions)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for mod, path in modules.items():
        deps: set[str] = set()
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolve against this module's package
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                names = [f"{prefix}.{a.name}" for a in node.names] + [prefix]
            for name in names:
                target = _resolve(name, modules)
                if target and target != mod:
                    deps.add(target)
        # `from pkg import sub` adds both pkg and pkg.sub; the package itself is not a real edge
        graph[mod] = {d for d in deps if not (modules[d].name == "__init__.py" and any(
            o.startswith(d + ".") for o in deps))}
    return graph


def _layer(mod: str) -> int:
    return LAYERS.index(mod.split(".")[0])


def test_arrows_point_one_way():
    wrong = sorted(f"{m} -> {d}" for m, deps in import_graph().items() for d in deps if _layer(d) > _layer(m))
    assert not wrong, "imports against elastic <- profiling <- search <- app:\n" + "\n".join(wrong)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

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
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _sub(mod: str) -> tuple[str, str] | None:
    parts = mod.split(".")
    return (parts[0], parts[1]) if parts[0] in SUBLAYERS and len(parts) > 1 else None


def _wrong_sub_arrows(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for m, deps in graph.items():
        sm = _sub(m)
        for d in deps:
            sd = _sub(d)
            if sm and sd and sm[0] == sd[0] and sm[1] != sd[1]:
                ranks = SUBLAYERS[sm[0]]
                if ranks[sd[1]] >= ranks[sm[1]]:
                    wrong.append(f"{m} -> {d}")
    return sorted(wrong)


def test_every_module_of_elastic_and_app_sits_in_a_layer():
    """elastic/ is split into model, data, training, export (+ the run directory); app/ into config, workflow, cli,
    dashboard (+ the Streamlit entry file main.py): no module left beside them."""
    loose = sorted(m for m in import_graph() if m.split(".")[0] in SUBLAYERS
                   and (len(m.split(".")) < 2 or m.split(".")[1] not in SUBLAYERS[m.split(".")[0]]) and "." in m)
    assert not loose, f"modules outside the layers {SUBLAYERS}: {loose}"


def test_subpackage_arrows_point_one_way():
    wrong = _wrong_sub_arrows(import_graph())
    assert not wrong, f"imports against the subpackage layers {SUBLAYERS}:\n" + "\n".join(wrong)


def test_no_product_file_over_the_line_limit():
    long = sorted(f"{p.relative_to(ROOT)}: {n}" for pkg in PRODUCT for p in (ROOT / pkg).rglob("*.py")
                  if (n := len(p.read_text().splitlines())) > MAX_LINES)
    assert not long, f"product files over {MAX_LINES} lines:\n" + "\n".join(long)


def test_no_import_circles():
    cycles = _cycles(import_graph())
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_checker_sees_a_circle_and_a_wrong_arrow():
    """The checks above could fail: a made-up graph with a circle and an upward arrow is caught."""
    graph = {"search.a": {"search.b"}, "search.b": {"search.a", "app.x"}, "app.x": set()}
    assert _cycles(graph) == [["search.a", "search.b"]]
    assert [d for m, deps in graph.items() for d in deps if _layer(d) > _layer(m)] == ["app.x"]
    sub = {"elastic.model.a": {"elastic.training.b"}, "app.cli.c": {"app.dashboard.d", "app.workflow.e"},
           "app.workflow.e": {"app.config.f"}, "elastic.training.b": {"elastic.model.a"}}
    assert _wrong_sub_arrows(sub) == ["app.cli.c -> app.dashboard.d", "elastic.model.a -> elastic.training.b"]
    assert any(m.startswith("bench.") for m in import_graph()), "bench/ is missing from the import graph"


def test_the_workflow_layer_is_below_the_command_line_and_the_dashboard():
    """app.workflow holds the actions; the CLI, the pipeline's callers and the dashboard call it, never the
    other way round, and nothing outside the CLI builds or parses a `dynabert` command line in-process."""
    graph = import_graph()
    ui = ("app.cli", "app.dashboard", "app.main")
    wrong = sorted(f"{m} -> {d}" for m, deps in graph.items() if m.startswith("app.workflow")
                   for d in deps if d.startswith(ui))
    assert not wrong, "the workflow layer imports the user interface:\n" + "\n".join(wrong)
    in_process_cli = sorted(m for m, deps in graph.items() if not m.startswith("app.cli")
                            and any(d.startswith("app.cli") for d in deps))
    assert not in_process_cli, f"modules calling the CLI in-process instead of app.workflow: {in_process_cli}"
    bench_private = []
    for path in sorted((ROOT / "bench").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("app."):
                if node.module.startswith("app.cli") or any(a.name.startswith("_") for a in node.names):
                    bench_private.append(f"{path.name}: from {node.module} import {[a.name for a in node.names]}")
    assert not bench_private, "benches importing CLI or private names:\n" + "\n".join(bench_private)
