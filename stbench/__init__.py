"""stbench: a plugin-based benchmark harness for spatio-temporal predictive learning."""
__version__ = "0.1.0"

from .data import ArrayClips, Clips, DatasetSpec  # noqa: E402
from .errors import UserError  # noqa: E402
from .hookspecs import hookimpl  # noqa: E402
from .metrics import FrameMetric, Metric, MetricContext, MetricSpec, NotAvailable, Unavailable  # noqa: E402
from .models import ModelSpec, MultiTaskModel, STModel, TaskView, load_yaml  # noqa: E402
from .tasks import Task, parse_task  # noqa: E402

__all__ = [
    "ArrayClips", "Clips", "DatasetSpec", "FrameMetric", "Metric", "MetricContext", "MetricSpec", "ModelSpec",
    "MultiTaskModel", "NotAvailable", "STModel", "Task", "TaskView", "Unavailable", "UserError", "hookimpl",
    "load_yaml", "parse_task", "__version__",
]
