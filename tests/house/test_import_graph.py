"""The house's imports point one way: every import of every project module (top level and inside
functions) is read, the module graph built, and it must have no cycle of any length and no edge
from a lower layer to a higher one (the order is docs/ARCHITECTURE.md's "Layers")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from kit import ROOT

PACKAGES = ("configcheck", "model", "train", "orchestrator")
# lowest first; a module may import its own layer (without a cycle) and the ones below
# (``orchestrator.backends`` itself: the registry, the interface and the shared state vocabulary;
# each backend's subpackage sits above them)
LAYERS = ("configcheck", "model", "train", "orchestrator.faults",
          # the plugin registry and each backend's options: read by name, importing nothing above
          "orchestrator.plugins", "orchestrator.backends.slurm.options", "orchestrator.backends.ray.options",
          "orchestrator.search", "orchestrator.sweep", "orchestrator.cost", "orchestrator.store", "orchestrator.tracking",
          "orchestrator.backends", "orchestrator.backends.slurm", "orchestrator.backends.ray", "orchestrator.results",
          "orchestrator.decide", "orchestrator.rung_driver", "orchestrator.search_driver", "orchestrator.study",
          "orchestrator.submit",
          "orchestrator.cli")


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Project modules ``name`` imports anywhere in its file (``from pkg import mod`` counts mod)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found |= imports_of(node, name, path, known)
    return found - {name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(path, name, set(mods)) for name, path in mods.items()}


def layer(module: str) -> int:
    """The index of the longest LAYERS prefix naming the module (a subpackage may sit elsewhere
    than its package: ``orchestrator.search.stopping`` below the sweep language)."""
    hits = [(len(prefix), i) for i, prefix in enumerate(LAYERS) if module == prefix or module.startswith(prefix + ".")]
    assert hits, f"{module} is in no layer: add it to LAYERS and docs/ARCHITECTURE.md"
    return max(hits)[1]


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_of_any_length() -> None:
    assert cycles(graph()) == []


def test_every_import_points_down_the_layers() -> None:
    g = graph()
    up = sorted(f"{a} -> {b}" for a, bs in g.items() for b in bs if layer(b) > layer(a))
    assert up == [], "imports against the layer order:\n" + "\n".join(up)


def test_the_checks_can_fail() -> None:
    """A cycle and an upward edge added on purpose are found (the graph test is not vacuous)."""
    g = {k: set(v) for k, v in graph().items()}
    g["orchestrator.sweep.spec"].add("orchestrator.store.sweepdir")  # store imports sweep: a loop now
    assert cycles(graph()) == [] and cycles(g)
    assert any("orchestrator.sweep.spec" in c and "orchestrator.store.sweepdir" in c for c in cycles(g))
    assert layer("orchestrator.store.sweepdir") > layer("orchestrator.sweep.spec")


@pytest.mark.parametrize("pkg", ["train", "model"])
def test_the_trainer_and_the_models_never_import_the_orchestrator(pkg: str) -> None:
    g = graph()
    assert not [f"{a} -> {b}" for a, bs in g.items() if a.split(".")[0] == pkg for b in bs if b.startswith("orchestrator")]


def test_shared_code_compares_no_backend_name() -> None:
    """Outside backends/<name>/, code asks a backend (``runs_schedulers``, ``foreground()``,
    ``options()``, ``restarts()`` ...) instead of branching on its name."""
    import re

    shared = [p for d in ("cli", "results", "search", "sweep", "store", "tracking")
              for p in (ROOT / "orchestrator" / d).rglob("*.py")]
    shared += [ROOT / "orchestrator" / n for n in ("submit.py", "cost.py")]
    shared += [ROOT / "orchestrator" / "backends" / n for n in ("__init__.py", "base.py", "states.py")]
    shared += [ROOT / "orchestrator" / "plugins.py"]
    pattern = re.compile(r"""(==|!=|\bin)\s*\(?\s*["'](ray|slurm)["']|["'](ray|slurm)["']\s*(==|!=)""")
    hits = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for p in shared
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []


HEAVY = ("torch", "torchvision", "numpy", "PIL", "ray", "wandb", "submitit", "matplotlib", "pandas", "optuna")


def top_level_loads() -> dict[str, set[str]]:
    """module -> the heavy third-party packages importing it loads (through top-level imports,
    its own and those of the project modules it imports)."""
    mods = modules()
    direct: dict[str, tuple[set[str], set[str]]] = {}
    for name, path in mods.items():
        deps, heavy = set(), set()
        parts = name.split(".")
        deps |= {".".join(parts[:i]) for i in range(1, len(parts))} & set(mods)  # its packages run first
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for n in names:
                    if n.split(".")[0] in HEAVY:
                        heavy.add(n.split(".")[0])
                deps |= imports_of(node, name, path, set(mods))
        direct[name] = (deps - {name}, heavy)
    out: dict[str, set[str]] = {}

    def loads(m: str, seen: frozenset = frozenset()) -> set[str]:
        if m not in out:
            deps, heavy = direct[m]
            out[m] = set(heavy) | {h for d in deps if d not in seen for h in loads(d, seen | {m})}
        return out[m]

    return {m: loads(m) for m in mods}


def imports_of(node: ast.AST, name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules one import statement names (``from pkg import mod`` counts mod; the
    file's path decides the package of a relative import)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for n in (node,):
        if isinstance(n, ast.Import):
            targets = [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom):
            base = n.module or ""
            if n.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - n.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in n.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t:
                found.add(t)
    return found


def deferred_imports(loads: dict[str, set[str]]) -> list[tuple[str, int, set[str], bool]]:
    """Every import inside a function: (where, line, what heavy it loads, whether it says why)."""
    out = []
    mods = modules()
    for name, path in mods.items():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and node.col_offset > 0:
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                heavy = {n.split(".")[0] for n in names if n.split(".")[0] in HEAVY}
                heavy |= {h for m in imports_of(node, name, path, set(mods)) for h in loads[m]}
                said = "#" in lines[node.lineno - 1] or lines[node.lineno - 2].strip().startswith("#")
                out.append((f"{path.relative_to(ROOT)}", node.lineno, heavy, said))
    return out


def test_imports_inside_functions_only_defer_heavy_modules_and_say_why() -> None:
    """An import sits inside a function only when it loads torch, Ray, wandb, submitit (or the
    like) that the module's other callers never need, and a comment says so; everything else is
    imported at the top, where the graph is plain to see."""
    bad = [f"{where}:{line}" + ("" if heavy else " loads nothing heavy") + ("" if said else " says not why")
           for where, line, heavy, said in deferred_imports(top_level_loads()) if not heavy or not said]
    assert bad == []


def test_the_deferred_import_check_can_fail(tmp_path: Path) -> None:
    """A light module imported inside a function, and a heavy one without a comment, are found."""
    loads = top_level_loads()
    assert "torch" in loads["train.loop"] and not loads["orchestrator.sweep.spec"]
    found = deferred_imports(loads)
    assert found and all(heavy and said for _, _, heavy, said in found)
    src = "def f():\n    from orchestrator.sweep.spec import load_spec\n    import torch\n"
    node_light, node_heavy = ast.parse(src).body[0].body
    assert not imports_of(node_light, "x", tmp_path / "x.py", set(modules())) - {"orchestrator.sweep.spec"}
    assert not {h for m in imports_of(node_light, "x", tmp_path / "x.py", set(modules())) for h in loads[m]}
    assert isinstance(node_heavy, ast.Import) and node_heavy.names[0].name in HEAVY
