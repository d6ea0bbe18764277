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
