"""The package's import graph: no cycles, and every module imports only from its own layer or below
(docs/architecture.md shows the layers). Imports inside functions count: they are still dependencies."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "sagan_tf"

# Lowest first. A module may import modules of its own layer and of the layers above it in this list.
LAYERS = [
    ("foundations", ["compat", "logs", "configurables", "config", "images", "machine", "progress", "losses", "distribute",
                     "checkpointing", "reports"]),
    ("layers", ["layers"]),
    ("models", ["models"]),
    ("data and evaluation", ["data", "eval", "serving", "attention_maps"]),
    ("run directory and loop parts", ["restore", "actions"]),
    ("training loop", ["trainer"]),
    ("entry points", ["gin_registry", "experiments", "train", "evaluate", "export"]),
]


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules():
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(path, known):
    """The sagan_tf modules `path` imports (at top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sagan_tf"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in known else node.module)
    return found


def graph():
    known = modules()
    return {name: imports_of(path, known) - {name} for name, path in known.items()}


def layer_of(name):
    top = name.split(".")[1] if "." in name else ""
    for index, (_, members) in enumerate(LAYERS):
        if top in members:
            return index
    return None


def test_every_module_has_a_layer():
    assert [name for name in graph() if name != "sagan_tf" and layer_of(name) is None] == []


def test_no_module_imports_from_a_higher_layer():
    wrong = [f"{name} -> {target}" for name, targets in graph().items() if name != "sagan_tf"
             for target in targets if target != "sagan_tf" and layer_of(target) > layer_of(name)]
    assert wrong == []


def test_the_import_graph_has_no_cycle():
    edges = graph()
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(target):] + [target]))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_the_checker_sees_a_cycle_and_a_lazy_import(tmp_path):
    """The graph includes imports inside functions (restore's old lazy `import trainer`)."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from sagan_tf import trainer\n    from sagan_tf.models.factory import build_model\n")
    assert imports_of(source, modules()) == {"sagan_tf.trainer", "sagan_tf.models.factory"}


def test_the_commands_import_no_tensorflow_before_their_flags_are_read():
    """TF_ENABLE_ONEDNN_OPTS counts only if set before TensorFlow starts: `--onednn` once printed 'off' while the
    package's __init__ had already started TensorFlow with oneDNN on."""
    import subprocess
    import sys

    code = ("import sys, sagan_tf.train, sagan_tf.evaluate, sagan_tf.machine; assert 'tensorflow' not in sys.modules, 'started';"
            "from sagan_tf import SAGAN; assert SAGAN.__name__ == 'SAGAN' and 'tensorflow' in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
