"""stbench: a plugin-based benchmark harness for spatio-temporal predictive learning."""
__version__ = "0.1.0"

# Declarations are imported now and cost no torch; the classes that need torch load on first access
# (PEP 562), so `stbench --help`, `list` and `plugins` never import torch or a model.
from .config import TRAIN_KEYS, Setting, hparam_schema  # noqa: E402
from .errors import DiskFull, UserError, nearest, require  # noqa: E402
from .hookspecs import hookimpl  # noqa: E402
from .safeload import checked_npy, checked_npz_member, yaml_text  # noqa: E402
from .specs import (DatasetSpec, MetricSpec, ModelSpec, NotAvailable, SampleData, default_data_root,  # noqa: E402
                    lazy, lazy_exports, load_yaml)
from .tasks import Task, parse_task  # noqa: E402

# Every name a plugin needs; a plugin imports from `stbench`, never from a module inside it.
__all__ = [
    "ArrayClips", "Clips", "DatasetSpec", "DiskFull", "FrameMetric", "Metric", "MetricContext", "MetricSpec",
    "ModelSpec", "MultiTaskModel", "NotAvailable", "PluginError", "STModel", "SampleData", "Setting", "TRAIN_KEYS",
    "Task", "TaskView", "Unavailable", "UserError", "as_disk_full", "checked_npy", "checked_npz_member",
    "checked_prediction", "default_data_root", "free_bytes", "hookimpl", "hparam_schema", "lazy", "lazy_exports",
    "load_yaml", "nearest", "parse_task", "plugins", "require", "yaml_text", "__version__",
]

# Loaded on first access (PEP 562): torch for data / metrics / models; the file and plugin helpers are light
# but only some plugins need them, so `import stbench` never pays for them.
_HEAVY = {
    "ArrayClips": "data", "Clips": "data",
    "FrameMetric": "metrics.base", "Metric": "metrics.base", "MetricContext": "metrics.base",
    "Unavailable": "metrics.base",
    "MultiTaskModel": "models", "STModel": "models", "TaskView": "models", "checked_prediction": "models",
    "PluginError": "plugins",
    # the registries themselves (get_model, get_dataset, datasets(), ...), for a plugin composing another's models
    "plugins": "plugins",
    "as_disk_full": "files", "free_bytes": "files",
}


def __getattr__(name):
    module = _HEAVY.get(name)
    if module is None:
        raise AttributeError(f"module 'stbench' has no attribute {name!r}")
    import importlib

    found = importlib.import_module(f"{__name__}.{module}")
    return found if module == name else getattr(found, name)


def __dir__():
    return sorted(set(globals()) | set(_HEAVY))
