"""The package's import graph: no cycles, and every module imports only from its own layer or below
(docs/architecture.md shows the layers). Imports inside functions count: they are still dependencies."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "sagan_tf"

# Lowest first. A module may import modules of its own layer and of the layers above it in this list.
LAYERS = [
    ("foundations", ["commands", "compat", "logs", "configurables", "gin_files", "config", "images", "machine",
                     "progress", "losses", "optimizers", "distribute", "checkpointing", "records", "memory"]),
    ("layers", ["layers"]),
    ("models", ["models"]),
    ("data and evaluation", ["data", "eval", "serving", "attention_maps"]),
    ("run directory and loop parts", ["restore", "actions"]),
    ("training loop", ["trainer"]),
    ("entry points", ["gin_registry", "train", "evaluate", "export"]),
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

    code = ("import sys, sagan_tf.train, sagan_tf.evaluate, sagan_tf.export, sagan_tf.machine; assert 'tensorflow' not in sys.modules, 'started';"
            "from sagan_tf import SAGAN; assert SAGAN.__name__ == 'SAGAN' and 'tensorflow' in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


# The line between the library and the lab (tools/): the library never imports, runs or path-walks the lab.
TOOLS = PACKAGE.parent / "tools"


def _code_strings(tree):
    """String constants in executed code (docstrings left out: they may name the commands)."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_the_library_imports_nothing_from_the_lab():
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            wrong += [f"{path.name}: {name}" for name in names if name.split(".")[0] in ("lab", "tools", "tests")]
    assert wrong == []


def test_the_library_runs_no_tools_path():
    """Messages may tell the user about a tool; no executed code builds a path into tools/ (os.path.join(..., 'tools'))."""
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and any(isinstance(a, ast.Constant) and a.value in ("tools", "tools/")
                                                  for a in node.args):
                wrong.append(f"{path.name}:{node.lineno}")
        wrong += [f"{path.name}: {text!r}" for text in _code_strings(tree)
                  if text.startswith("tools/") and text.endswith(".py")]
    assert wrong == []


def test_no_tool_puts_the_checkout_on_the_path():
    """`python tools/x.py` puts tools/ on the path (the lab); sagan_tf comes from the installed package. Only
    the reference's own sources (reference_biggan_step.py, --biggan_dir) may be added."""
    wrong = []
    for path in TOOLS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("insert", "append")
                    and ast.unparse(node.func.value) == "sys.path" and "biggan_dir" not in ast.unparse(node)):
                wrong.append(f"{path.relative_to(TOOLS)}:{node.lineno}")
    assert wrong == []


# What the lab keeps in one place: a timing loop, the machine description, the record writer.
SHARED_LOGIC = ("perf_counter", "/proc/cpuinfo", "json.dump(", "os.replace(", "getrusage")


def test_the_tools_repeat_no_timing_loop_or_machine_description():
    """`duplicates` lists code shared between places in tools/; none of it may be a timing loop, a machine
    description or a record writer (flag definitions alike in shape are not logic)."""
    import re
    import shutil
    import subprocess

    if shutil.which("duplicates") is None:
        pytest.skip("the duplicates command is not installed here")
    done = subprocess.run(["duplicates", "--repo", str(TOOLS), "--seconds", "60", "--most", "200"],
                          capture_output=True, text=True, timeout=120)
    copied = []
    for row in done.stdout.splitlines():
        for name, first, last in re.findall(r"(\S+\.py):(\d+)-(\d+)", row):
            lines = (TOOLS / name).read_text().splitlines()[int(first) - 1:int(last)]
            if any(marker in line for line in lines for marker in SHARED_LOGIC):
                copied.append(row)
    assert copied == [], done.stdout
