"""The model contract: STModel (one task), MultiTaskModel (joint training) and ModelSpec."""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import PROFILES, TRAIN_KEYS  # noqa: F401 - PROFILES is part of this module's API

FAMILIES = ("recurrent", "recurrent-free", "hybrid", "baseline")


class STModel(nn.Module):
    """A spatio-temporal predictor: ``[B, T_in, C, H, W] -> [B, t_out, C, H, W]``.

    Subclasses implement :meth:`forward`. Every other hook has a default here, and the trainer
    calls each of them on every model, so a model overrides only what it needs:

    - :meth:`loss` (default: MSE of ``forward`` against the target). Recurrent models override it
      with scheduled sampling, TAU adds its divergence term, and so on.
    - :meth:`optimizer_param_groups` (default: ``None``, every trainable parameter goes to the run's
      optimizer).
    - :meth:`on_epoch_start` (default: nothing), called before every training epoch.
    - :meth:`record_notes` (default: none), facts for the run record and the leaderboard's notes.
    """

    def forward(self, x: torch.Tensor, t_out: int) -> torch.Tensor:  # pragma: no cover - contract
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x, t_out)")

    def loss(self, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        """Training loss for one batch; ``step`` counts optimizer steps from 0."""
        return F.mse_loss(checked_prediction(self(x, y.shape[1]), y), y)

    def optimizer_param_groups(self, train_cfg: Mapping[str, Any]) -> Optional[List[Dict[str, Any]]]:
        """Parameter groups for the optimizer, or ``None`` for every trainable parameter in one group.

        A group may name its own ``optimizer`` (``adam``, ``adamw`` or ``sgd``) with its own
        ``lr`` / ``weight_decay`` (UniSTD trains its ranks with SGD as the paper does); the
        trainer gives such a group an optimizer of its own, which the schedule does not drive.
        """
        return None

    def on_epoch_start(self, epoch: int) -> None:
        """Called before training epoch ``epoch`` (0-based), also after a resume."""

    def record_notes(self) -> Dict[str, Any]:
        """Facts about this built model for the run record (e.g. which pretrained weights it holds)."""
        return {}


def checked_prediction(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``pred``, or a ValueError saying how its shape differs from the targets' (never a silent broadcast)."""
    if pred.shape != y.shape:
        raise ValueError(f"forward(x, t_out) returned {tuple(pred.shape)} for targets {tuple(y.shape)}; "
                         "it must return [B, t_out, C, H, W]")
    return pred


class MultiTaskModel(STModel):
    """One model trained on several tasks at once (``stbench run --joint``).

    ``forward(x, t_out, task)`` and ``loss(x, y, step, task)`` take the task's name. A
    :class:`ModelSpec` that declares ``build_joint`` returns one of these from it; the trainer
    passes each batch's task, and evaluation and profiling see one task at a time through
    :meth:`for_task`.
    """

    def forward(self, x: torch.Tensor, t_out: int, task: Optional[str] = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x, t_out, task)")

    def loss(self, x: torch.Tensor, y: torch.Tensor, step: int, task: Optional[str] = None) -> torch.Tensor:
        return F.mse_loss(checked_prediction(self(x, y.shape[1], task), y), y)

    def for_task(self, task: str) -> "TaskView":
        """A single-task :class:`STModel` sharing every parameter with this model."""
        return TaskView(self, str(task))


class TaskView(STModel):
    """One task of a :class:`MultiTaskModel`, seen as a plain :class:`STModel`."""

    def __init__(self, model: MultiTaskModel, task: str):
        super().__init__()
        self.model, self.task = model, task

    def forward(self, x: torch.Tensor, t_out: int) -> torch.Tensor:
        return self.model(x, t_out, task=self.task)

    def loss(self, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        return self.model.loss(x, y, step, task=self.task)

    def record_notes(self) -> Dict[str, Any]:
        return self.model.record_notes()


@dataclass
class ModelSpec:
    """One registered model.

    ``build(task, hparams) -> STModel`` builds it for one task. ``build_joint(tasks,
    {task name: hparams}) -> MultiTaskModel`` (optional) builds one model for several tasks.

    Declarations, each ``profile -> dataset name (or "default") -> settings``, a dataset entry
    merged over ``default``:

    - ``hparams``: the model's own hyper-parameters. The keys a profile's ``default`` declares are
      the model's hyper-parameters (with the declared values' types); a dataset entry may set only
      those. Core checks every declaration when the plugin registers and every ``--set`` against
      them (:func:`stbench.config.check_declarations`).
    - ``train``: training settings (``epochs``, ``lr``, ``batch_size``, ...; see
      :data:`stbench.config.TRAIN_SCHEMA`) that override the engine's and the dataset's defaults.
      Training keys found in ``hparams`` (one YAML file declaring both) are moved here when the
      spec is made, so the two sections are always apart.

    ``checkpoint_ignore`` holds ``fnmatch`` patterns of state-dict keys that another
    implementation's checkpoints carry but this model does not have because they are never used
    (OpenSTL's ConvLSTM ``cell_list.*.conv_o.*``); an imported checkpoint drops them and the run
    record names them. Any other mismatch is an error.

    ``checkpoint_rename`` holds ``(pattern, replacement)`` regular-expression pairs that map another
    implementation's state-dict keys (after ``checkpoint_ignore``) to this model's: a key is rewritten
    by the first rule whose pattern matches its start and whose result names one of the model's
    entries (see :mod:`stbench.checkpoints`). stbench's own checkpoints are never renamed.
    """

    name: str
    family: str
    build: Callable[..., STModel]
    hparams: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    train: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    description: str = ""
    build_joint: Optional[Callable[..., MultiTaskModel]] = None
    checkpoint_ignore: Sequence[str] = ()
    checkpoint_rename: Sequence[Tuple[str, str]] = ()
    plugin: Optional[str] = None  # filled in by the registry

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"model '{self.name}': family must be one of {FAMILIES}, got '{self.family}'")
        model, train = {}, {p: {d: dict(v or {}) for d, v in (t or {}).items()} for p, t in self.train.items()}
        for profile, table in (self.hparams or {}).items():
            model[profile] = {}
            for dataset, values in (table or {}).items():
                values = dict(values or {})
                moved = {k: values.pop(k) for k in list(values) if k in TRAIN_KEYS}
                model[profile][dataset] = values
                if moved:
                    train.setdefault(profile, {}).setdefault(dataset, {}).update(moved)
        self.hparams, self.train = model, train

    @property
    def multitask(self) -> bool:
        return self.build_joint is not None

    @staticmethod
    def _merged(table, dataset: str, like: Optional[str]) -> Dict[str, Any]:
        merged = dict(table.get("default", {}) or {})
        for key in (like, dataset):
            if key and key in table:
                merged.update(table[key] or {})
        return merged

    def hparams_for(self, profile: str, dataset: str, like: Optional[str] = None) -> Dict[str, Any]:
        """The declared hyper-parameters for a profile and dataset: ``default`` < ``like`` < the dataset."""
        return self._merged(self.hparams.get(profile, {}) or {}, dataset, like)

    def train_for(self, profile: str, dataset: str, like: Optional[str] = None) -> Dict[str, Any]:
        """The declared training settings for a profile and dataset, merged the same way."""
        return self._merged(self.train.get(profile, {}) or {}, dataset, like)

    def settings_for(self, profile: str, dataset: str, like: Optional[str] = None) -> Dict[str, Any]:
        """Hyper-parameters and training settings together (what the declaration says for this pair)."""
        return {**self.hparams_for(profile, dataset, like), **self.train_for(profile, dataset, like)}

    def known_keys(self):
        """The model's hyper-parameter names (training settings are not among them)."""
        return {k for per_profile in self.hparams.values() for per_ds in (per_profile or {}).values()
                for k in (per_ds or {})}


def load_yaml(path) -> Dict[str, Any]:
    """Read a YAML file of declarations (used by plugins for configs beside the model)."""
    import yaml

    with open(Path(path), encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
