"""Resolving a run's settings: engine defaults < dataset < model declaration < command line."""
import hashlib
import json
from typing import Any, Dict, Iterable, Tuple

import yaml

from .errors import UserError, nearest
from .models import PROFILES

# Training settings every run resolves; a model's or dataset's declaration overrides them per profile.
TRAIN_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "smoke": dict(epochs=1, batch_size=4, eval_batch_size=4, lr=1e-3, optimizer="adam", weight_decay=0.0,
                  schedule="onecycle", grad_clip=None, train_samples=16, test_samples=8),
    "quick": dict(epochs=2, batch_size=16, eval_batch_size=32, lr=1e-3, optimizer="adam", weight_decay=0.0,
                  schedule="onecycle", grad_clip=None, train_samples=2000, test_samples=1000),
    "paper": dict(epochs=100, batch_size=16, eval_batch_size=16, lr=1e-3, optimizer="adam", weight_decay=0.0,
                  schedule="onecycle", grad_clip=None, train_samples=None, test_samples=None),
}
TRAIN_KEYS = frozenset(TRAIN_DEFAULTS["paper"])
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("onecycle", "cosine", "constant")


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise UserError(f"unknown profile '{profile}'{nearest(profile, PROFILES)}; choose one of {', '.join(PROFILES)}")
    return profile


def parse_overrides(items: Iterable[str]) -> Dict[str, Any]:
    """`KEY=VALUE` strings to a dict; values are read as YAML scalars (2 -> int, false -> bool)."""
    overrides = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects KEY=VALUE, got '{item}' (e.g. --set delta_t=2)")
        try:
            overrides[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            overrides[key.strip()] = value
    return overrides


def resolve(model_spec, dataset_spec, profile: str, overrides: Dict[str, Any]) -> Tuple[Dict, Dict, Dict]:
    """(train settings, model hyper-parameters, overrides applied) for one run, every default explicit.

    A hyper-parameter override applies only to models that declare that key,
    so `--set delta_t=2` reaches ustep and leaves tau alone.
    """
    train = dict(TRAIN_DEFAULTS[profile])
    train.update(dataset_spec.train_defaults.get(profile, {}) or {})
    declared = model_spec.settings_for(profile, dataset_spec.name, dataset_spec.hparams_like)
    hparams = {}
    for key, value in declared.items():
        (train if key in TRAIN_KEYS else hparams)[key] = value
    applied = {}
    model_keys = model_spec.known_keys()
    for key, value in overrides.items():
        if key in TRAIN_KEYS:
            train[key] = applied[key] = value
        elif key in model_keys:
            hparams[key] = applied[key] = value
    if train["optimizer"] not in OPTIMIZERS:
        raise UserError(f"optimizer '{train['optimizer']}' is not one of {', '.join(OPTIMIZERS)}")
    if train["schedule"] not in SCHEDULES:
        raise UserError(f"schedule '{train['schedule']}' is not one of {', '.join(SCHEDULES)}")
    for key in ("epochs", "batch_size", "eval_batch_size"):
        if not isinstance(train[key], int) or train[key] < (0 if key == "epochs" else 1):
            raise UserError(f"{key} must be a whole number {'>= 0' if key == 'epochs' else '>= 1'}, got {train[key]!r}")
    return train, hparams, applied


def check_override_keys(overrides: Dict[str, Any], model_specs) -> None:
    """Every --set key must be a training setting or a hyper-parameter some named model declares."""
    known = set(TRAIN_KEYS)
    for spec in model_specs:
        known |= spec.known_keys()
    for key in overrides:
        if key not in known:
            raise UserError(f"--set {key}: no named model declares '{key}'{nearest(key, known)}; "
                            f"known keys: {', '.join(sorted(known))}")


def config_hash(config: Dict[str, Any]) -> str:
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
