"""The metric base classes: MetricContext, Metric, FrameMetric and Unavailable (they need torch)."""
import contextlib
import weakref
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch

from ..specs import NotAvailable


@dataclass
class MetricContext:
    """What a metric may need to know about the data it scores."""

    dataset: str = ""
    task: str = ""
    value_range: Optional[Tuple[float, float]] = (0.0, 1.0)
    data_range: float = 1.0
    spatial_norm: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)

    def clip(self, pred: torch.Tensor) -> torch.Tensor:
        """Clip a prediction to the native value range (bounded data only)."""
        if self.value_range is None:
            return pred
        return pred.clamp(self.value_range[0], self.value_range[1])




class Metric(ABC):
    """A streaming metric: ``reset()``, ``update(pred, true)``, ``compute()`` (abstract: a metric missing one
    cannot be constructed).

    ``update`` receives de-normalised tensors ``[B, T, C, H, W]``. Set-level metrics (FVD) keep
    statistics across updates. ``compute()`` returns ``{key: float or NotAvailable}``; the key ``name``
    is reported under the registered ``MetricSpec.name`` whatever ``name`` says, other keys (``csi_74``)
    as they are. The optional parts below have defaults here, so the engine calls them on every metric.
    """

    name = "metric"
    # An ensemble metric (CRPS, spread/skill) scores K samples of each clip together: ``update_ensemble``
    # gets ``[K, B, T, C, H, W]`` instead of ``update``; with one sample it reports NotAvailable.
    ensemble: bool = False

    @abstractmethod
    def reset(self) -> None:
        """Forget everything scored so far (called before each evaluation pass)."""

    @abstractmethod
    def update(self, pred: torch.Tensor, true: torch.Tensor) -> None:
        """Score one batch: ``pred`` and ``true`` ``[B, T, C, H, W]``, de-normalised."""

    @abstractmethod
    def compute(self) -> Dict[str, Union[float, NotAvailable]]:
        """``{key: value}`` over every batch since :meth:`reset`."""

    def update_ensemble(self, preds: torch.Tensor, true: torch.Tensor) -> None:
        """An ensemble metric's update: ``preds`` ``[K, B, T, C, H, W]`` (K samples), ``true`` ``[B, T, C, H, W]``."""
        raise NotImplementedError(f"{type(self).__name__} is not an ensemble metric")

    def per_frame(self) -> Optional[Dict[str, List[float]]]:
        """``{key: [value per predicted frame]}``, or ``None`` (default) when not defined per frame."""
        return None

    def per_clip(self) -> Optional[Dict[str, List[float]]]:
        """``{key: [value per test clip, in test order]}`` for significance tests, or ``None`` (default)."""
        return None

    def provenance(self) -> Dict[str, str]:
        """What the numbers depend on beyond the data, e.g. the weight file and its sha256 (default: none)."""
        return {}


class _DoubleCopies:
    """The float64 copies of the last batch's tensors: evaluation hands the same prediction and target to every
    metric, and each frame metric works in float64, so the copies are made once per batch, not once per metric.
    A tensor changed in place since (its version counter moved) is copied again."""

    def __init__(self):
        self.entries = []  # (weak reference to the tensor, its version, its float64 copy)

    def get(self, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.dtype == torch.float64:
            return tensor
        for ref, version, copy in self.entries:
            if ref() is tensor and tensor._version == version:
                return copy
        copy = tensor.double()
        self.entries = [e for e in self.entries if e[0]() is not None][-3:] + [(weakref.ref(tensor), tensor._version,
                                                                               copy)]
        return copy


_DOUBLES = _DoubleCopies()


@contextlib.contextmanager
def one_thread(active: bool = True):
    """torch's intra-op threads set to one inside, restored after. For elementwise metrics on a CPU: their
    operations are small and many, and on a machine whose cores are busy with other work, waiting for a second
    OpenMP thread at every operation made them 3x to 60x slower than on one thread (measured on a shared 2-core
    machine, benchmarks/ssim_speed.py); one thread keeps their time bounded whatever the load."""
    threads = torch.get_num_threads()
    if not active or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class FrameMetric(Metric):
    """A metric defined per (clip, frame) and averaged over clips and frames.

    Subclasses implement ``frame_values(pred, true) -> [B, T]``; this class
    streams sums per frame index, so per-frame curves come for free. ``frame_values`` receives float64
    tensors unless the subclass sets ``as_given`` (it then gets the tensors as they came and keeps its own
    precision: SSIM works in float32 on mean-shifted values).
    """

    as_given: bool = False
    # elementwise metrics set it: frame_values runs on one CPU thread (see one_thread); a network (LPIPS) does not
    single_thread: bool = False

    def __init__(self, name: str, context: MetricContext):
        self.name, self.context = name, context
        self.reset()

    def reset(self):
        self._sum = None
        self._count = 0
        self._clips: List[torch.Tensor] = []

    @abstractmethod
    def frame_values(self, pred, true) -> torch.Tensor:
        """``[B, T]``: the metric's value for every clip and frame of the batch."""

    def update(self, pred, true):
        if pred.shape != true.shape or pred.ndim != 5:
            raise ValueError(f"{self.name}: pred {tuple(pred.shape)} and true {tuple(true.shape)} "
                             "must both be [B, T, C, H, W]")
        with one_thread(self.single_thread and pred.device.type == "cpu"):
            values = (self.frame_values(pred, true) if self.as_given
                      else self.frame_values(_DOUBLES.get(pred), _DOUBLES.get(true)))
        values = values.double().cpu()
        self._clips.append(values.mean(1))
        values = values.sum(0)
        self._sum = values if self._sum is None else self._sum + values
        self._count += pred.shape[0]

    def _per_frame_means(self) -> torch.Tensor:
        if self._sum is None:
            raise ValueError(f"{self.name}: no data was scored")
        return self._sum / self._count

    def finish(self, per_frame_mean: torch.Tensor, overall: torch.Tensor):
        """Hook for derived metrics (RMSE): map averaged values to reported ones."""
        return per_frame_mean, overall

    def compute(self):
        frames = self._per_frame_means()
        _, overall = self.finish(frames, frames.mean())
        return {self.name: float(overall)}

    def per_frame(self):
        frames = self._per_frame_means()
        frames, _ = self.finish(frames, frames.mean())
        return {self.name: [float(v) for v in frames]}

    def per_clip(self):
        """The clip-level value (mean over its frames, then ``finish``: RMSE's root per clip)."""
        if not self._clips:
            return None
        clips = torch.cat(self._clips)
        _, clips = self.finish(clips, clips)
        return {self.name: [float(v) for v in clips]}


class Unavailable(Metric):
    """A metric that cannot be computed here: it scores nothing and reports :class:`NotAvailable`."""

    def __init__(self, name: str, reason: str):
        self.name, self.reason = name, reason

    def reset(self):
        pass

    def update(self, pred, true):
        pass

    def compute(self):
        return {self.name: NotAvailable(self.reason)}


