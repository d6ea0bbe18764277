"""The metric contract: streaming metrics over de-normalised [B, T, C, H, W] tensors.

Importing this package is cheap (no torch): ``MetricSpec`` and ``NotAvailable`` are declarations
from :mod:`stbench.specs`; the base classes (``MetricContext``, ``Metric``, ``FrameMetric``,
``Unavailable``) live in :mod:`stbench.metrics.base` and load on first access.
"""
from ..specs import MetricSpec, NotAvailable, lazy_exports

__all__ = ["FrameMetric", "Metric", "MetricContext", "MetricSpec", "NotAvailable", "Unavailable"]

__getattr__ = lazy_exports(__name__, {"base": ("FrameMetric", "Metric", "MetricContext", "Unavailable")})
