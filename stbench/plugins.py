"""The plugin manager: entry-point loading and the model / dataset / metric registries."""
import contextvars
import importlib
import importlib.metadata
import os
import sys
from typing import Dict, List, Tuple

import pluggy

from . import hookspecs
from .errors import UserError, unknown
from .tasks import Task, check_name, parse_task

ENTRY_POINT_GROUP = "stbench"
CORE_PLUGINS = ("stbench.metrics.pixel",)

pm = pluggy.PluginManager("stbench")
pm.add_hookspecs(hookspecs)

_state = {"loaded": False, "registries": None}
failures: List[Tuple[str, str]] = []  # (plugin, error) for plugins that failed and were skipped
_versions: Dict[str, str] = {}
_dists: Dict[str, str] = {}


class PluginError(UserError):
    """A conflict between plugins (a name registered twice)."""


def _allowed():
    """Names from STBENCH_PLUGINS (entry-point or distribution names), or None for all."""
    value = os.environ.get("STBENCH_PLUGINS")
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def load_plugins():
    """Register the core plugins and every entry point of the `stbench` group, once."""
    if _state["loaded"]:
        return
    _state["loaded"] = True

    from . import __version__

    for module_name in CORE_PLUGINS:
        if pm.get_plugin(module_name) is None:
            pm.register(importlib.import_module(module_name), name=module_name)
            _versions[module_name] = __version__
    allowed = _allowed()
    installed = set()
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist.name if entry_point.dist else entry_point.name
        installed |= {entry_point.name, dist}
        if allowed is not None and entry_point.name not in allowed and dist not in allowed:
            continue
        if pm.get_plugin(entry_point.name) is not None:
            raise PluginError(
                f"plugin name '{entry_point.name}' is used by two distributions: "
                f"'{_dists.get(entry_point.name, '?')}' and '{dist}'; rename one entry point or uninstall one"
            )
        try:
            module = entry_point.load()
        except Exception as error:  # a broken plugin must never break the others
            failures.append((entry_point.name, f"{type(error).__name__}: {error}"))
            continue
        pm.register(module, name=entry_point.name)
        _versions[entry_point.name] = entry_point.dist.version if entry_point.dist else "?"
        _dists[entry_point.name] = dist
    unmatched = sorted((allowed or set()) - installed)
    if unmatched:
        print(f"stbench: warning: STBENCH_PLUGINS names {', '.join(unmatched)}, which "
              f"{'is' if len(unmatched) == 1 else 'are'} not installed; installed plugins: "
              f"{', '.join(sorted(n for n in installed if not n.startswith('stbench-'))) or 'none'}", file=sys.stderr)


def check_spec(hook_name: str, spec) -> None:
    """What core checks once for every plugin alike when a spec registers: a safe name and, for models and
    datasets, declarations that fit the settings schema (a typo in a configs.yaml fails here)."""
    from .config import check_dataset_declarations, check_declarations

    check_name(spec.name, hook_name.split("_")[-1][:-1])
    if hook_name == "stbench_register_models":
        check_declarations(spec)
    elif hook_name == "stbench_register_datasets":
        check_dataset_declarations(spec)


_calling: "contextvars.ContextVar[str]" = contextvars.ContextVar("stbench_calling_plugin")


def _attributed(impl, hook_name: str) -> None:
    """Wrap one hookimpl so that what it registers is attributed to its plugin, and so that a plugin failing in
    the hook is reported and skipped while pluggy goes on to the others (a conflict, PluginError, still stops).
    Done once per hookimpl; pluggy keeps calling the hook in its documented order (tryfirst / trylast, then
    last registered first)."""
    function = impl.function
    if getattr(function, "_stbench_attributed", False) or impl.hookwrapper or impl.wrapper:
        return  # a wrapper registers nothing itself; it runs around the others

    def call(*args, **kwargs):
        token = _calling.set(impl.plugin_name)
        try:
            return function(*args, **kwargs)
        except PluginError:
            raise
        except Exception as error:  # a broken plugin must never break the others
            failures.append((impl.plugin_name, f"{hook_name}: {type(error).__name__}: {error}"))
            return None
        finally:
            _calling.reset(token)

    call._stbench_attributed = True
    call.__name__ = getattr(function, "__name__", "hookimpl")
    call.__wrapped__ = function
    impl.function = call


def _collect(hook_name: str) -> Dict[str, object]:
    """Call one registration hook through pluggy and collect what every plugin registers, by name."""
    registry: Dict[str, object] = {}
    caller = getattr(pm.hook, hook_name)
    for impl in caller.get_hookimpls():
        _attributed(impl, hook_name)

    def register(spec):
        plugin = _calling.get("?")
        check_spec(hook_name, spec)
        if spec.name in registry:
            raise PluginError(
                f"{hook_name.split('_')[-1][:-1]} '{spec.name}' is registered twice: by plugin "
                f"'{registry[spec.name].plugin}' and by plugin '{plugin}'; uninstall one or restrict "
                "plugins with STBENCH_PLUGINS"
            )
        spec.plugin = plugin
        registry[spec.name] = spec

    caller(register=register)
    return registry


def registries():
    if _state["registries"] is None:
        load_plugins()
        _state["registries"] = {
            "models": _collect("stbench_register_models"),
            "datasets": _collect("stbench_register_datasets"),
            "metrics": _collect("stbench_register_metrics"),
        }
        for name, error in failures:
            print(f"stbench: warning: plugin '{name}' failed to load and was skipped: {error}", file=sys.stderr)
    return _state["registries"]


def reset():
    """Forget everything loaded (tests use this after changing STBENCH_PLUGINS)."""
    for name, plugin in list(pm.list_name_plugin()):
        pm.unregister(plugin, name=name)
    _state.update(loaded=False, registries=None)
    failures.clear()
    _versions.clear()
    _dists.clear()


def models():
    return registries()["models"]


def datasets():
    return registries()["datasets"]


def metrics():
    return registries()["metrics"]


def get_model(name):
    found = models().get(name)
    if found is None:
        raise unknown("model", name, models())
    return found


def get_dataset(name):
    found = datasets().get(name)
    if found is None:
        raise unknown("dataset", name, datasets())
    return found


def get_metric(name):
    found = metrics().get(name)
    if found is None:
        raise unknown("metric", name, metrics())
    return found


def resolve_task(text) -> Task:
    """Parse a task and check it against its dataset: shape filled in, length within the data."""
    task = text if isinstance(text, Task) else parse_task(text)
    spec = get_dataset(task.dataset)
    if task.length > spec.max_length:
        raise UserError(
            f"task '{task.name}' needs clips of {task.length} frames but {spec.name} clips hold at most "
            f"{spec.max_length}; choose T_in + T_out <= {spec.max_length}"
        )
    return task.with_shape(spec.shape)


def plugin_info():
    """[{name, version, hooks}] for every registered plugin, plus failures."""
    registries()
    info = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        info.append({"name": name, "version": _versions.get(name, "?"), "hooks": hooks})
    return info
