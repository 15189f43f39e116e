"""The core runs in a plain Python process with only torch: it must not import Ray or MLflow."""
import subprocess
import sys

CORE = ["raygan.config", "raygan.models", "raygan.losses", "raygan.regularizers", "raygan.augment",
        "raygan.data", "raygan.metrics", "raygan.engine.checkpoint", "raygan.tasks", "raygan.engine.loop"]


def test_core_imports_neither_ray_nor_mlflow():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in CORE)
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'mlflow', 'optuna'))\n"
        + "print(','.join(bad))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "", f"core pulled in: {p.stdout.strip()}"


def test_core_trains_in_a_plain_process_with_ray_and_mlflow_blocked(tmp_path):
    """Make `import ray` / `import mlflow` fail outright, then train and resume with the core alone."""
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('ray', 'mlflow'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import torch
torch.set_num_threads(1)
from raygan.config import load_config
from raygan.engine.loop import Trainer
cfg = load_config('digits', None, ['train.total_kimg=0.128', 'train.tick_kimg=0.064', 'tracking.enabled=false'])
t = Trainer(cfg, {str(tmp_path / 'run')!r}, evaluator=None)
s = t.run()
print(s['kimg'])
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip().splitlines()[-1] == "0.128"


# ------------------------------------------------------------------ import graph and registries
import ast  # noqa: E402
import collections  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _modules():
    mods = {}
    for f in sorted((ROOT / "raygan").rglob("*.py")):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    return mods


def _is_type_checking(node) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def import_graph():
    """module -> the raygan modules it imports, at module level or inside functions (not under
    `if TYPE_CHECKING`). Importing a.b.c also runs a and a.b (unless the importer is inside them);
    a package whose __init__ calls `import_modules(...)` imports every module directly under it."""
    mods = _modules()

    def resolve(name):
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name

    def parents(name):
        p = name.split(".")
        return [".".join(p[:i]) for i in range(1, len(p))]

    graph = {}
    for m, f in mods.items():
        tree = ast.parse(f.read_text(encoding="utf-8"))
        skip = {id(s) for n in ast.walk(tree) if _is_type_checking(n) for b in n.body for s in ast.walk(b)}
        is_pkg = f.name == "__init__.py"
        targets = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = m.split(".") if is_pkg else m.split(".")[:-1]
                    base = ".".join(pkg[:len(pkg) - node.level + 1] + ([base] if base else []))
                targets.update(f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names)
            elif is_pkg and isinstance(node, ast.Call) and getattr(node.func, "id", None) == "import_modules":
                targets.update(x for x in mods if x.rpartition(".")[0] == m)
        edges = set()
        for t in targets:
            r = resolve(t)
            if not r.startswith("raygan"):
                continue
            edges.add(r)
            edges.update(p for p in parents(r) if p not in parents(m))
        edges.discard(m)
        graph[m] = edges
    return graph


def find_cycle(graph):
    """One import circle as a list of modules (first == last), or None."""
    state = {}
    for start in sorted(graph):
        if start in state:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = "open"
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = "done"
                stack.pop()
                path.pop()
            elif state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = "open"
                stack.append((nxt, iter(sorted(graph.get(nxt, ())))))
                path.append(nxt)
    return None


def test_find_cycle_finds_a_function_local_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_import_graph_has_no_circle():
    """No circle among raygan's modules, counting function-local imports and registry scans."""
    graph = import_graph()
    assert "raygan.models.unet" in graph["raygan.models"]  # the scan is an edge
    assert "raygan.tasks" in graph["raygan.api"]  # a function-local import is an edge
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_no_import_after_the_first_definition():
    """Imports at the top of a module only: nothing is filled by an import at the bottom."""
    late = []
    for m, f in _modules().items():
        defined = None
        for node in ast.parse(f.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                if defined is not None:
                    late.append(f"{m}:{node.lineno} (after line {defined})")
                    break
            elif not (isinstance(node, (ast.Try,)) or _is_type_checking(node)
                      or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))):
                defined = defined or node.lineno
    assert late == []


def test_every_registry_is_filled_one_way():
    """An entry registers in the module that defines its table or in a module of a package whose
    __init__ scans its modules; a table never lives in the __init__ that scans (no circle)."""
    mods = _modules()
    tables, registering = {}, collections.defaultdict(set)
    for m, f in mods.items():
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) \
                    and str(getattr(node.value.func, "id", "")).endswith("Registry"):
                tables[node.targets[0].id] = m
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "register" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id.isupper():
                registering[node.func.value.id].add(m)
    assert {"ARCHITECTURES", "GENERATORS", "METRICS", "EXTRACTORS", "TASKS", "SOURCES"} <= set(tables)
    bad = []
    for table, where in tables.items():
        if mods[where].name == "__init__.py":
            bad.append(f"{table} lives in {where}/__init__.py")
        for m in registering[table] - {where}:
            pkg = m.rpartition(".")[0]
            if "import_modules(__name__, __path__)" not in mods[pkg].read_text(encoding="utf-8"):
                bad.append(f"{m} registers into {table}, but {pkg} does not scan its modules")
    assert bad == []


def test_config_is_a_bottom_layer():
    """raygan.config reaches nothing above it (no tasks, data, metrics, engine), function-local imports
    included, with no exception listed: a task plugs its options and checks in (raygan.config.sections)."""
    graph = import_graph()
    seen, todo = set(), [m for m in graph if m == "raygan.config" or m.startswith("raygan.config.")]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(graph[m])
    assert sorted(m for m in seen if not m.startswith("raygan.config")) == ["raygan.errors"]


# the floors of DESIGN.md's tree, lowest first: a module imports its own floor or below, never above
FLOORS = [
    ["raygan.errors", "raygan.registry", "raygan.paths", "raygan.options", "raygan.metric_names"],
    ["raygan.config"],
    ["raygan.models", "raygan.losses", "raygan.regularizers", "raygan.ada", "raygan.augment", "raygan.degradations",
     "raygan.data", "raygan.metrics", "raygan.engine"],  # the core
    ["raygan.tasks", "raygan.precheck"],  # precheck: the task layer's checks, from names.json where torch is not loaded
    ["raygan.engine.loop"],  # the one loop, over any registered task
    ["raygan.hosts.storage", "raygan.hosts.runstore"],  # the run directory
    ["raygan.tracking"],  # MLflow
    ["raygan.hosts", "raygan.experiments"],  # a run in this process
    ["raygan.distributed"],  # Ray
    ["raygan.api"],
    ["raygan.cli", "raygan.__main__", "raygan"],
]


def floor(module: str) -> int:
    """The floor of the longest FLOORS prefix naming `module`."""
    hits = [(len(name), i) for i, names in enumerate(FLOORS) for name in names
            if module == name or module.startswith(name + ".")]
    assert hits, f"{module} is on no floor"
    return max(hits)[1]


def test_imports_point_downwards_only():
    """Every import (function-local ones included) reaches the importer's floor or below; a
    package __init__ that imports nothing (a folder's docstring) is on every floor."""
    graph = import_graph()
    empty = {m for m, edges in graph.items() if not edges}
    up = [f"{m} -> {t}" for m, edges in sorted(graph.items()) for t in sorted(edges - empty) if floor(t) > floor(m)]
    assert up == []
    # the rule can fail: the loop is above the tasks it runs, so a task importing it would be flagged
    assert floor("raygan.tasks.generate.task") < floor("raygan.engine.loop")
