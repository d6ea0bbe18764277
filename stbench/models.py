"""The model contract: STModel, ModelSpec and how hyper-parameters resolve."""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

FAMILIES = ("recurrent", "recurrent-free", "hybrid", "baseline")
PROFILES = ("smoke", "quick", "paper")


class STModel(nn.Module):
    """A spatio-temporal predictor: ``[B, T_in, C, H, W] -> [B, t_out, C, H, W]``.

    Subclasses implement :meth:`forward`; :meth:`loss` defaults to the MSE of
    ``forward`` against the target. Recurrent models override ``loss`` with
    scheduled sampling, TAU adds its divergence term, and so on.
    """

    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor, t_out: int) -> torch.Tensor:  # pragma: no cover - contract
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x, t_out)")

    def loss(self, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        """Training loss for one batch; ``step`` counts optimizer steps from 0."""
        return F.mse_loss(self(x, y.shape[1]), y)


@dataclass
class ModelSpec:
    """One registered model.

    ``hparams`` maps profile -> dataset name (or ``"default"``) -> settings.
    Settings hold the model's own hyper-parameters and, optionally, training
    settings (``epochs``, ``lr``, ``batch_size``, ...; see
    :data:`stbench.engine.TRAIN_DEFAULTS`), which override the engine's.

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
    description: str = ""
    multitask: bool = False
    checkpoint_ignore: Sequence[str] = ()
    checkpoint_rename: Sequence[Tuple[str, str]] = ()
    plugin: Optional[str] = None  # filled in by the registry

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"model '{self.name}': family must be one of {FAMILIES}, got '{self.family}'")

    def settings_for(self, profile: str, dataset: str, like: Optional[str] = None) -> Dict[str, Any]:
        """The declared settings for a profile and dataset: dataset entry over ``default``."""
        table = self.hparams.get(profile, {}) or {}
        merged = dict(table.get("default", {}) or {})
        for key in (like, dataset):
            if key and key in table:
                merged.update(table[key] or {})
        return merged

    def known_keys(self):
        return {k for per_profile in self.hparams.values() for per_ds in (per_profile or {}).values()
                for k in (per_ds or {})}


def load_yaml(path) -> Dict[str, Any]:
    """Read a YAML file of hyper-parameters (used by plugins for configs beside the model)."""
    import yaml

    with open(Path(path), encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
