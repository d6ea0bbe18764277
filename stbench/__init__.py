"""stbench: a plugin-based benchmark harness for spatio-temporal predictive learning."""
__version__ = "0.1.0"

# Declarations are imported now and cost no torch; the classes that need torch load on first access
# (PEP 562), so `stbench --help`, `list` and `plugins` never import torch or a model.
from .errors import UserError, require  # noqa: E402
from .hookspecs import hookimpl  # noqa: E402
from .specs import DatasetSpec, MetricSpec, ModelSpec, NotAvailable, lazy, load_yaml  # noqa: E402
from .tasks import Task, parse_task  # noqa: E402

__all__ = [
    "ArrayClips", "Clips", "DatasetSpec", "FrameMetric", "Metric", "MetricContext", "MetricSpec", "ModelSpec",
    "MultiTaskModel", "NotAvailable", "STModel", "Task", "TaskView", "Unavailable", "UserError", "hookimpl",
    "lazy", "load_yaml", "parse_task", "__version__",
]

_HEAVY = {
    "ArrayClips": "data", "Clips": "data",
    "FrameMetric": "metrics.base", "Metric": "metrics.base", "MetricContext": "metrics.base",
    "Unavailable": "metrics.base",
    "MultiTaskModel": "models", "STModel": "models", "TaskView": "models",
}


def __getattr__(name):
    module = _HEAVY.get(name)
    if module is None:
        raise AttributeError(f"module 'stbench' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__():
    return sorted(set(globals()) | set(_HEAVY))
