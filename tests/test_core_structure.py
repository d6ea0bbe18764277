"""The shape of the core: no import cycle, argparse only in the CLI, no probing of plugin objects."""
import ast
from pathlib import Path

import stbench

CORE = Path(stbench.__file__).parent


def _imports(path: Path):
    """The stbench modules a core module imports (relative or absolute, at any depth of the file)."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(CORE.parent).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
                names = [f"{module}.{a.name}" for a in node.names] + [module]
            else:
                names = [node.module or ""]
            found |= {n for n in names if n.startswith("stbench")}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("stbench")}
    return found


def _graph():
    modules = {}
    for path in CORE.rglob("*.py"):
        name = ".".join(path.relative_to(CORE.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m in _imports(path) if m in modules and m != name and m != "stbench"}
    return graph


def test_the_core_import_graph_has_no_cycle():
    graph = _graph()
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                raise AssertionError(" -> ".join(stack + [node, nxt]))
            if nxt not in state:
                visit(nxt, stack + [node])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert "stbench.engine" not in graph and "stbench.joint" not in graph


def test_only_the_cli_knows_argparse():
    users = sorted(p.name for p in CORE.rglob("*.py") if "argparse" in p.read_text())
    assert users == ["cli.py"], users


def test_the_run_path_probes_no_plugin_object():
    for name in ("planning.py", "training.py", "evaluation.py", "running.py"):
        text = (CORE / name).read_text()
        assert "hasattr(" not in text and "getattr(" not in text, name


def test_every_option_of_every_command_has_a_help_line():
    import argparse

    from stbench.cli import build_parser

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, path + [name])
            elif not isinstance(action, argparse._HelpAction) and action.dest != "version":
                yield " ".join(path), action

    missing = [f"{command}: {action.option_strings or action.dest}" for command, action in walk(build_parser(), [])
               if not action.help]
    assert not missing, missing


# ---------------------------------------------------------------- tests that start processes are marked slow

SPAWNING_HELPERS = {"assert_user_error", "stbench", "smoke_run", "smoke_record", "assert_smoke_run", "sync_playwright",
                    "run_cli"}
SUBPROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output"}


def _starts_a_process(node, helpers=frozenset(SPAWNING_HELPERS)) -> bool:
    """Whether this node starts stbench (or a browser) in another process: a subprocess call other than a system
    tool named by a literal command (``mount``), a helper that does, or a local pool or local Slurm executor
    (``launcher="local"``, ``cluster="local"``, ``--launcher local``)."""
    if isinstance(node, (ast.List, ast.Tuple)):
        words = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
        return any(a == "--launcher" and b == "local" for a, b in zip(words, words[1:]))
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "subprocess":
        first = node.args[0] if node.args else None
        tool = isinstance(first, ast.List) and first.elts and isinstance(first.elts[0], ast.Constant)
        return name in SUBPROCESS_CALLS and not tool
    local = any(k.arg in ("launcher", "cluster") and isinstance(k.value, ast.Constant) and k.value.value == "local"
                for k in node.keywords)
    return name in helpers or local


def spawning_tests(path: Path):
    """{test name: marked slow?} for the tests of one file that start a process, directly, through a module-level
    helper, or through a fixture of the file that does."""
    tree = ast.parse(path.read_text())
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    helpers = SPAWNING_HELPERS | {alias.asname for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                                  for alias in node.names if alias.asname and alias.name in SPAWNING_HELPERS}
    direct = {name: any(_starts_a_process(n, helpers) for n in ast.walk(node))
              for name, node in functions.items()}
    calls = {name: {n.func.id for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
             for name, node in functions.items()}
    spawning = {name for name, found in direct.items() if found}
    while True:  # through helpers and fixtures, to a fixed point
        more = {name for name, node in functions.items() if name not in spawning and (
            calls[name] & spawning or {a.arg for a in node.args.args} & spawning)}
        if not more:
            break
        spawning |= more
    return {name: any("slow" in ast.unparse(d) for d in functions[name].decorator_list)
            for name in spawning if name.startswith("test_")}


def test_tests_that_start_processes_are_marked_slow():
    root = CORE.parent
    files = sorted(root.glob("tests/test_*.py")) + sorted(root.glob("plugins/*/tests/test_*.py"))
    found = {f"{path.relative_to(root)}::{name}": marked for path in files
             for name, marked in spawning_tests(path).items()}
    assert len(found) > 20  # the check sees them
    assert [name for name, marked in found.items() if not marked] == [], "mark these @pytest.mark.slow"
