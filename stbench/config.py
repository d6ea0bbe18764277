"""Settings: the training-settings schema, checking every declared or given value once, resolving a run's
settings (engine defaults < dataset < model declaration < command line) and hashing them."""
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple


from .errors import UserError, nearest
from .safeload import yaml_text

PROFILES = ("smoke", "quick", "paper")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("onecycle", "cosine", "constant")
SELECTIONS = ("last", "val", "test")
SEED_MAX = 2 ** 63 - 1


@dataclass(frozen=True)
class Setting:
    """The type and range of one setting: ``kind`` is int, number, bool, str or any; ``None`` is a value
    only where ``optional``."""

    kind: str
    minimum: Optional[float] = None
    above: Optional[float] = None  # strictly greater than
    below: Optional[float] = None  # strictly less than
    choices: Sequence[str] = ()
    optional: bool = False

    def check(self, key: str, value: Any, where: str) -> Any:
        """The value, converted where harmless (``1e-4`` given as text, 2 for 2.0); else one-line UserError."""
        if value is None:
            if self.optional:
                return None
            raise UserError(f"{where}: {key} needs a value ({self.describe()})")
        converted = _convert(self.kind, value)
        if converted is _BAD:
            raise UserError(f"{where}: {key} must be {self.describe()}, got {value!r}")
        if self.choices and converted not in self.choices:
            raise UserError(f"{where}: {key} must be one of {', '.join(self.choices)}, got {value!r}"
                            f"{nearest(str(value), self.choices)}")
        if self.minimum is not None and converted < self.minimum:
            raise UserError(f"{where}: {key} must be {self.describe()}, got {value!r}")
        if self.above is not None and converted <= self.above:
            raise UserError(f"{where}: {key} must be {self.describe()}, got {value!r}")
        if self.below is not None and converted >= self.below:
            raise UserError(f"{where}: {key} must be {self.describe()}, got {value!r}")
        return converted

    def describe(self) -> str:
        words = {"int": "a whole number", "number": "a number", "bool": "true or false", "str": "a word",
                 "any": "a value"}[self.kind]
        if self.minimum is not None:
            words += f" >= {self.minimum:g}"
        if self.above is not None:
            words += f" > {self.above:g}"
        if self.below is not None:
            words += f" < {self.below:g}"
        return words + (" or null" if self.optional else "")


_BAD = object()


def _convert(kind: str, value: Any) -> Any:
    if kind == "any":
        return value
    if kind == "bool":
        return value if isinstance(value, bool) else _BAD
    if kind == "str":
        return value if isinstance(value, str) else _BAD
    if isinstance(value, bool):
        return _BAD
    if kind == "int":
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return _BAD
    if isinstance(value, (int, float)):  # number
        return value
    if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as text
        try:
            return float(value)
        except ValueError:
            return _BAD
    return _BAD


# Training settings every run resolves; a model's or dataset's declaration overrides them per profile.
TRAIN_SCHEMA: Dict[str, Setting] = {
    "epochs": Setting("int", minimum=0),
    "batch_size": Setting("int", minimum=1),
    "eval_batch_size": Setting("int", minimum=1),
    "lr": Setting("number", above=0),
    "optimizer": Setting("str", choices=OPTIMIZERS),
    "weight_decay": Setting("number", minimum=0),
    "schedule": Setting("str", choices=SCHEDULES),
    "grad_clip": Setting("number", above=0, optional=True),
    "train_samples": Setting("int", minimum=1, optional=True),
    "test_samples": Setting("int", minimum=1, optional=True),
    # model selection (never on the test split unless select_on is 'test', OpenSTL's procedure)
    "val_every": Setting("int", minimum=0),  # a validation pass every N epochs; 0: none
    "val_samples": Setting("int", minimum=1, optional=True),
    "select_on": Setting("str", choices=SELECTIONS),
    "select_metric": Setting("str"),
    "patience": Setting("int", minimum=1, optional=True),  # validation passes without improvement, then stop
    # training features of the reference configs
    "warmup_epochs": Setting("number", minimum=0),  # linear warm-up before the schedule
    "ema_decay": Setting("number", above=0, below=1, optional=True),  # evaluate an EMA of the weights
    "accumulate": Setting("int", minimum=1),  # micro-batches per optimizer step (the batch stays global)
}
TRAIN_KEYS = frozenset(TRAIN_SCHEMA)
# What only evaluation reads: changing it never changes the trained weights.
EVALUATION_KEYS = frozenset({"eval_batch_size", "test_samples"})
# The settings that change nothing at these values; a run's identity leaves them out, so runs made before
# a setting existed keep their names.
NEUTRAL: Dict[str, Any] = dict(val_every=0, select_on="last", select_metric="mse", patience=None,
                               warmup_epochs=0, ema_decay=None, accumulate=1)
VALIDATION_KEYS = frozenset({"val_samples", "select_on", "select_metric", "patience"})
TRAIN_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "smoke": dict(epochs=1, batch_size=4, eval_batch_size=4, lr=1e-3, optimizer="adam", weight_decay=0.0,
                  schedule="onecycle", grad_clip=None, train_samples=16, test_samples=8,
                  **NEUTRAL, val_samples=8),
    "quick": dict(epochs=2, batch_size=16, eval_batch_size=32, lr=1e-3, optimizer="adam", weight_decay=0.0,
                  schedule="onecycle", grad_clip=None, train_samples=2000, test_samples=1000,
                  **NEUTRAL, val_samples=200),
    # paper: validate every epoch and evaluate the best weights on validation (references select on test)
    "paper": dict(epochs=100, batch_size=16, eval_batch_size=16, lr=1e-3, optimizer="adam", weight_decay=0.0,
                  schedule="onecycle", grad_clip=None, train_samples=None, test_samples=None,
                  **{**NEUTRAL, "val_every": 1, "select_on": "val"}, val_samples=None),
}
SEED = Setting("int", minimum=0)
BUDGET_KEYS = frozenset({"epochs", "train_samples", "batch_size"})
EQUAL_BUDGET_PROFILES = ("quick",)
BUDGET_KINDS = ("epochs", "seconds", "macs")
_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise UserError(f"unknown profile '{profile}'{nearest(profile, PROFILES)}; choose one of {', '.join(PROFILES)}")
    return profile


def check_seed(seed: Any, where: str = "--seed") -> int:
    if isinstance(seed, str) and seed.strip().lstrip("-").isdigit():
        seed = int(seed)
    seed = SEED.check("seed", seed, where)
    if seed > SEED_MAX:
        raise UserError(f"{where}: seed must be at most 2**63-1, got {seed}")
    return seed


def check_device(device: Optional[str]) -> Optional[str]:
    """``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (whether this machine has it is checked when a run starts)."""
    if device is not None and not _DEVICE.match(str(device)):
        raise UserError(f"--device {device}: expected cpu, cuda, cuda:N or mps")
    return device


def check_train(values: Mapping[str, Any], where: str) -> Dict[str, Any]:
    """Training settings checked against :data:`TRAIN_SCHEMA`; an unknown key is one line naming the known."""
    checked = {}
    for key, value in values.items():
        if key not in TRAIN_SCHEMA:
            raise UserError(f"{where}: unknown training setting '{key}'{nearest(key, TRAIN_SCHEMA)}; "
                            f"known: {', '.join(sorted(TRAIN_SCHEMA))}")
        checked[key] = TRAIN_SCHEMA[key].check(key, value, where)
    return checked


# Integer hyper-parameters named like a width, a size, a count of layers or blocks: at least 1 (a zero width is a
# ZeroDivisionError or a convolution error deep in a model, not a setting). Applied where every declared value of
# the key agrees (mcvd's n_head_channels=-1, "use num_heads", keeps its meaning).
SIZE_NAME = re.compile(r"(^|_)(hid|width|widths|dim|channels|units|ngf|size|patch|kernel|layers|depth|heads|blocks|"
                       r"stride|experts|downsample)(_|$)|^(n_s|n_t)$", re.IGNORECASE)


def hparam_schema(model_spec) -> Dict[str, Setting]:
    """A model's hyper-parameters with their kinds, read off its declarations (declared values' types), and a
    range where the name says what it is: integer widths, sizes, patches, layers, heads and blocks are >= 1
    (:data:`SIZE_NAME`, where every declared value is). ``patch_size`` must also divide the frame (checked when
    a run is planned, where the frame is known: :func:`check_frame_fit`)."""
    kinds: Dict[str, set] = {}
    values_of: Dict[str, list] = {}
    for table in model_spec.hparams.values():
        for values in (table or {}).values():
            for key, value in (values or {}).items():
                kinds.setdefault(key, set()).add(_kind_of(value))
                values_of.setdefault(key, []).append(value)
    schema = {}
    for key, found in kinds.items():
        optional = "none" in found
        found.discard("none")
        if found == {"int", "number"}:
            found = {"number"}
        kind = found.pop() if len(found) == 1 else "any"
        sized = (kind == "int" and SIZE_NAME.search(key) is not None
                 and all(v >= 1 for v in values_of[key] if v is not None))
        schema[key] = Setting(kind, minimum=1 if sized else None, optional=optional)
    return schema


def check_frame_fit(hparams: Mapping[str, Any], shape: Sequence[int], where: str) -> None:
    """A ``patch_size`` must divide the frame's height and width (patches tile the frame exactly)."""
    patch = hparams.get("patch_size")
    if isinstance(patch, bool) or not isinstance(patch, int) or patch < 1:
        return
    height, width = int(shape[-2]), int(shape[-1])
    if height % patch or width % patch:
        fits = [p for p in range(1, min(height, width) + 1) if height % p == 0 and width % p == 0]
        raise UserError(f"{where}: patch_size must divide the frame's height and width ({height} x {width}), got "
                        f"{patch}; choose one of {', '.join(map(str, fits))}")


def _kind_of(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "str"
    return "any"


def check_declarations(model_spec) -> None:
    """Check a model's declarations once, when its plugin registers: a dataset entry may set only the keys
    its profile's ``default`` declares; training settings must fit :data:`TRAIN_SCHEMA`. A typo fails here
    (and so in the plugin's own tests), never silently at run time."""
    where = f"model '{model_spec.name}'"
    for section in (model_spec.hparams, model_spec.train):
        for profile in section:
            if profile not in PROFILES:
                raise UserError(f"{where}: unknown profile '{profile}' in its declarations{nearest(profile, PROFILES)}")
    for profile, table in model_spec.hparams.items():
        known = set((table or {}).get("default", {}) or {})
        for dataset, values in (table or {}).items():
            unknown = sorted(set(values or {}) - known)
            if unknown:
                raise UserError(f"{where}, profile {profile}, {dataset}: '{unknown[0]}' is neither a hyper-parameter "
                                f"its default declares{nearest(unknown[0], known | TRAIN_KEYS)} nor a training "
                                f"setting; known: {', '.join(sorted(known | TRAIN_KEYS))}")
    for profile, table in model_spec.train.items():
        for dataset, values in (table or {}).items():
            check_train(values or {}, f"{where}, profile {profile}, {dataset}")


def check_dataset_declarations(dataset_spec) -> None:
    for profile, values in (dataset_spec.train_defaults or {}).items():
        if profile not in PROFILES:
            raise UserError(f"dataset '{dataset_spec.name}': unknown profile '{profile}' in train_defaults")
        check_train(values or {}, f"dataset '{dataset_spec.name}', profile {profile}")


def parse_overrides(items: Iterable[str], option: str = "--set") -> Dict[str, Any]:
    """`KEY=VALUE` strings to a dict; values are read as YAML scalars (2 -> int, false -> bool)."""
    overrides = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            example = "ssim_data_range=2" if option == "--metric-option" else "delta_t=2"
            raise UserError(f"{option} expects KEY=VALUE, got '{item}' (e.g. {option} {example})")
        try:
            overrides[key.strip()] = yaml_text(value, f"{option} {key.strip()}", budget=1000) if value.strip() else None
        except UserError as error:
            if "expand to more" in str(error):
                raise
            overrides[key.strip()] = value
    return overrides


def check_override_keys(overrides: Dict[str, Any], model_specs) -> Dict[str, Any]:
    """Every --set key must be a training setting or a hyper-parameter some named model declares; each
    value is checked against its setting's kind and range (for training settings, once for all)."""
    known = set(TRAIN_KEYS)
    for spec in model_specs:
        known |= spec.known_keys()
    for key in overrides:
        if key not in known:
            raise UserError(f"--set {key}: no named model declares '{key}'{nearest(key, known)}; "
                            f"known keys: {', '.join(sorted(known))}")
    checked = dict(overrides)
    checked.update(check_train({k: v for k, v in overrides.items() if k in TRAIN_KEYS}, "--set"))
    return checked


def resolve(model_spec, dataset_spec, profile: str, overrides: Dict[str, Any]) -> Tuple[Dict, Dict, Dict]:
    """(train settings, model hyper-parameters, overrides applied) for one run, every default explicit.

    Order: engine defaults of the profile < the dataset's ``train_defaults`` < the model's declaration
    for (profile, dataset, or the dataset it is declared ``hparams_like``) < the command line. A
    hyper-parameter override applies only to models that declare that key, so `--set delta_t=2` reaches
    ustep and leaves tau alone; its value is checked against the kind the model declares.

    Equal budgets: in the ``quick`` profile (the table that compares models on a laptop CPU) a model's
    own ``epochs`` / ``train_samples`` / ``batch_size`` are not applied, so every model trains under the
    same budget (the engine's and the dataset's) unless the command line says otherwise
    (:func:`ignored_budget` names what a model declared). ``paper`` follows each model's published schedule.
    """
    train, hparams, applied, _ = resolve_with_sources(model_spec, dataset_spec, profile, overrides)
    return train, hparams, applied


def resolve_with_sources(model_spec, dataset_spec, profile: str, overrides: Dict[str, Any]):
    """:func:`resolve`, and where each setting came from: ``{"train": {key: source}, "hparams": {...}}``."""
    like = dataset_spec.hparams_like
    train = dict(TRAIN_DEFAULTS[profile])
    sources = {"train": dict.fromkeys(train, f"engine default ({profile} profile)"), "hparams": {}}
    dataset_defaults = dataset_spec.train_defaults.get(profile, {}) or {}
    train.update(dataset_defaults)
    sources["train"].update(dict.fromkeys(dataset_defaults, f"dataset {dataset_spec.name} ({profile} profile)"))
    declared = model_spec.train_for(profile, dataset_spec.name, like)
    applied_declared = {k: v for k, v in declared.items()
                        if not (profile in EQUAL_BUDGET_PROFILES and k in BUDGET_KEYS)}
    train.update(applied_declared)
    model = f"model {model_spec.name}'s declaration ({profile} profile)"
    sources["train"].update(dict.fromkeys(applied_declared, model))
    hparams = model_spec.hparams_for(profile, dataset_spec.name, like)
    sources["hparams"] = dict.fromkeys(hparams, model)
    schema = hparam_schema(model_spec)
    applied = {}
    for key, value in overrides.items():
        if key in TRAIN_KEYS:
            train[key] = applied[key] = value
            sources["train"][key] = "command line (--set)"
        elif key in schema:
            hparams[key] = applied[key] = schema[key].check(key, value, f"--set for model '{model_spec.name}'")
            sources["hparams"][key] = "command line (--set)"
    train = check_train(train, f"{model_spec.name} on {dataset_spec.name} ({profile})")
    check_selection(train, f"{model_spec.name} on {dataset_spec.name} ({profile})")
    return train, hparams, applied, sources


def check_selection(train: Mapping[str, Any], where: str) -> None:
    """Selection and early stopping need validation passes; a micro-batch must be a whole number of clips."""
    if train["val_every"] == 0 and (train["select_on"] != "last" or train["patience"] is not None):
        what = "patience" if train["select_on"] == "last" else f"select_on={train['select_on']}"
        raise UserError(f"{where}: {what} needs validation passes; set val_every >= 1 (e.g. --set val_every=1)")
    if train["batch_size"] % train["accumulate"]:
        raise UserError(f"{where}: accumulate={train['accumulate']} must divide batch_size={train['batch_size']} "
                        "(the batch stays the global one; each micro-batch is batch_size / accumulate clips)")


def training_identity(train: Mapping[str, Any]) -> Dict[str, Any]:
    """The training settings that decide what a run is: evaluation-only keys out, settings at their neutral
    value out, and the validation settings out when the run never validates."""
    validates = train.get("val_every", 0) > 0
    return {k: v for k, v in train.items()
            if k not in EVALUATION_KEYS and not (k in NEUTRAL and v == NEUTRAL[k])
            and not (k in VALIDATION_KEYS and not validates)}


def ignored_budget(model_spec, dataset_spec, profile: str) -> Dict[str, Any]:
    """The budget settings a model declared for an equal-budget profile, which :func:`resolve` did not apply."""
    if profile not in EQUAL_BUDGET_PROFILES:
        return {}
    declared = model_spec.train_for(profile, dataset_spec.name, dataset_spec.hparams_like)
    return {k: v for k, v in declared.items() if k in BUDGET_KEYS}


def config_hash(config: Dict[str, Any]) -> str:
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
