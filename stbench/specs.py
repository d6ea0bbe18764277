"""The declarations plugins register (ModelSpec, DatasetSpec, MetricSpec) and `lazy`, all importable without torch.

A plugin's entry module builds its specs from these at registration time; the heavy code (models,
readers, metric networks) sits behind :func:`lazy` references and is imported only when a command
calls it. ``stbench --help``, ``list`` and ``plugins`` therefore never import torch.
"""
import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .config import TRAIN_KEYS, Setting

if TYPE_CHECKING:  # for type hints only; importing torch here would make every declaration cost it
    import torch

# The hints "STModel", "MultiTaskModel" (stbench.models), "Clips" (stbench.data), "Metric" and "MetricContext"
# (stbench.metrics.base) stay strings that are never imported here: those modules import this one.

FAMILIES = ("recurrent", "recurrent-free", "hybrid", "baseline")
DATA_ROOT_VARIABLE = "STBENCH_DATA_ROOT"

Number = Union[float, Sequence[float]]


class lazy:  # noqa: N801 - used like a function: lazy("package.module:attribute")
    """A callable standing for ``package.module:attribute``, imported on its first call.

    ``lazy("stbench_tau.model:build_tau")(task, hparams)`` imports ``stbench_tau.model`` then and
    forwards the call; the repr names the target, so a listing or an error says what it points to.
    """

    __slots__ = ("target", "_resolved")

    def __init__(self, target: str):
        module, sep, attribute = str(target).partition(":")
        if not sep or not module or not attribute:
            raise ValueError(f"lazy target must look like 'package.module:attribute', got {target!r}")
        self.target, self._resolved = str(target), None

    def resolve(self) -> Callable[..., Any]:
        """The target itself (imported now if it was not yet)."""
        if self._resolved is None:
            module, _, attribute = self.target.partition(":")
            try:
                found = importlib.import_module(module)
            except ImportError as error:  # say which plugin code needed the missing module
                raise type(error)(f"cannot load {self.target}: {error}", name=error.name) from error
            for part in attribute.split("."):
                found = getattr(found, part)
            self._resolved = found
        return self._resolved

    def __call__(self, *args, **kwargs):
        return self.resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"lazy({self.target!r})"

    def __reduce__(self):  # worker processes get the target's name and import it themselves
        return lazy, (self.target,)

    def __eq__(self, other) -> bool:
        return isinstance(other, lazy) and other.target == self.target

    def __hash__(self) -> int:
        return hash(self.target)


def lazy_exports(package: str, modules: Mapping[str, Sequence[str]]) -> Callable[[str], Any]:
    """A PEP 562 ``__getattr__`` for a plugin package whose names live in submodules loaded on first use.

    ``modules`` maps a submodule of ``package`` (or, with a dot in it, any module by its full name) to the
    names it provides, so ``from stbench_tau import TAUModel`` keeps working while ``import stbench_tau``
    stays cheap.
    """
    owner = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str):
        module = owner.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module if "." in module else f"{package}.{module}"), name)

    return __getattr__


def load_yaml(path) -> Dict[str, Any]:
    """Read a YAML file of declarations (used by plugins for configs beside the model), with the bounded reader
    every YAML file stbench reads goes through (:mod:`stbench.safeload`)."""
    from .safeload import yaml_file

    return yaml_file(Path(path)) or {}


def default_data_root() -> str:
    """Where datasets live unless a command names ``--data-root``: ``$STBENCH_DATA_ROOT`` or ``./data``.

    The CLI sets the variable from ``--data-root`` before plugins load, so a plugin that registers
    datasets found on disk (declared by YAML files) and every worker process see the same root.
    """
    return os.environ.get(DATA_ROOT_VARIABLE) or "data"


@dataclass(frozen=True)
class NotAvailable:
    """A value a metric cannot give here, with the reason (no weights, too few frames, ...).

    ``compute()`` returns it in place of a number; the run record keeps the reason and the
    leaderboard shows "n/a" with it as a footnote. Never a number from random weights.
    """

    reason: str


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

    ``samples`` (default 1) is how many predictions per test clip a stochastic model draws by default
    (``--samples K`` overrides it); the model itself says it samples with ``STModel.stochastic``.
    """

    name: str
    family: str
    build: Callable[..., "STModel"]
    hparams: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    train: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    description: str = ""
    build_joint: Optional[Callable[..., "MultiTaskModel"]] = None
    checkpoint_ignore: Sequence[str] = ()
    checkpoint_rename: Sequence[Tuple[str, str]] = ()
    samples: int = 1
    plugin: Optional[str] = None  # filled in by the registry

    def __post_init__(self):
        if not isinstance(self.samples, int) or self.samples < 1:
            raise ValueError(f"model '{self.name}': samples must be an integer >= 1, got {self.samples!r}")
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


@dataclass(frozen=True)
class SampleData:
    """What a dataset's ``sample_data(root)`` wrote under ``root``: a task of the dataset, how many clips each
    split it wrote holds for that task (every split ``open`` accepts, or a subset), and lines its ``check(root)``
    report must contain (a smoke run on the data uses at most 16 training and 8 test clips of them)."""

    task: str
    clips: Mapping[str, int]
    check_lines: Sequence[str] = ()


@dataclass
class DatasetSpec:
    """One registered dataset.

    ``open(root, split, t_in, t_out)`` returns :class:`stbench.Clips` (a torch ``Dataset``) of
    ``(x, y)`` pairs, ``x: [t_in, C, H, W]`` and ``y: [t_out, C, H, W]``,
    float32, normalised as ``(native - mean) / std``; missing or unreadable data is a one-line
    :class:`stbench.UserError`. (Core wraps a plain torch ``Dataset`` into ``Clips`` once, when it
    opens a split, and refuses anything else.) ``value_range`` is the
    range of the *native* values (``None`` when unbounded, e.g. temperature);
    bounded data have predictions clipped to it before SSIM / PSNR.
    ``layout`` tells a user where to get the data and how the folder must look.

    ``mean`` / ``std`` are fixed constants. A dataset whose statistics come from the data it is
    opened from (e.g. the training years under the root) sets ``mean`` and ``std`` on the
    :class:`Clips` it returns instead; :func:`statistics_of` then puts them in a copy of the spec
    for de-normalising, and the registered spec is never changed.

    ``check(root) -> str`` (optional) describes what was found under the data root for
    ``stbench data check``. ``prepare(source, root) -> str`` (optional) turns an official
    download the user already has (``source``: a zip, tar, folder of videos, ...) into the layout
    ``open`` reads under ``root``, offline, and returns a one-paragraph summary; ``stbench data
    prepare TASK --from SOURCE`` calls it. ``splits`` names the splits ``open`` accepts.
    ``image_origin`` says where row 0 of a frame belongs when drawn: ``"upper"`` (images) or
    ``"lower"`` (grids stored south to north, e.g. WeatherBench's ascending latitudes).
    ``sample_data(root) -> SampleData`` (optional) writes a tiny copy of the data in the layout ``open``
    reads under ``root`` (offline, in seconds) and says what it holds; core's dataset contract test
    opens every split of it, checks it and runs a smoke run on it, so a plugin that offers it has that
    coverage with no test of its own (its tests may use it as their fixture).

    ``validation`` declares where validation clips come from (model selection and early stopping
    never see the test split):

    - ``"val"``: ``open(root, "val", t_in, t_out)`` returns them: the dataset's official validation
      split (WeatherBench 2016, SEVIR, Traffic4Cast, ...), or, for data generated on the fly, clips
      drawn from a seed stream of their own, disjoint from the training and test streams. ``"val"``
      must then be in ``splits``.
    - a fraction in (0, 1): core holds out that share of the training clips and trains on the others:
      the clips in the order ``open(root, "train", ...)`` returns them, cut into ten equal runs, the
      tail of each run held out (plugins order clips by sequence, so the held-out clips are spread over
      the set and share frames with training clips at ten boundaries at most).
    - ``None``: not declared. The contract test fails for such a plugin; a run of it has no
      validation, selects the last epoch and says so in its record.
    """

    name: str
    shape: Tuple[int, int, int]
    open: Callable[..., "Clips"]
    max_length: int
    layout: str
    canonical_tasks: Sequence[str] = ()
    value_range: Optional[Tuple[float, float]] = (0.0, 1.0)
    mean: Number = 0.0
    std: Number = 1.0
    default_metrics: Sequence[str] = ("mse", "mae", "ssim", "psnr")
    metric_options: Mapping[str, Any] = field(default_factory=dict)
    train_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    hparams_like: Optional[str] = None
    check: Optional[Callable[[str], str]] = None
    prepare: Optional[Callable[[str, str], str]] = None
    splits: Sequence[str] = ("train", "test")
    image_origin: str = "upper"
    description: str = ""
    validation: Union[str, float, None] = None
    sample_data: Optional[Callable[[str], SampleData]] = None
    plugin: Optional[str] = None  # filled in by the registry

    def __post_init__(self):
        v = self.validation
        if v is not None and not (v == "val" or (isinstance(v, float) and 0.0 < v < 1.0)):
            raise ValueError(f"dataset '{self.name}': validation must be \"val\", a fraction in (0, 1) or None, "
                             f"got {v!r}")
        if v == "val" and "val" not in tuple(self.splits):
            raise ValueError(f"dataset '{self.name}': validation \"val\" needs \"val\" in splits {tuple(self.splits)}")

    def _stat(self, value, like: "torch.Tensor") -> "torch.Tensor":
        import torch  # here, not at the top: declaring a dataset must not import torch

        stat = torch.as_tensor(value, dtype=like.dtype, device=like.device)
        if stat.ndim == 1:  # per channel: broadcast over [..., C, H, W]
            stat = stat.view(-1, 1, 1)
        return stat

    def normalize(self, native: "torch.Tensor") -> "torch.Tensor":
        return (native - self._stat(self.mean, native)) / self._stat(self.std, native)

    def denormalize(self, x: "torch.Tensor") -> "torch.Tensor":
        return x * self._stat(self.std, x) + self._stat(self.mean, x)

    @property
    def data_range(self) -> float:
        """Width of the native value range (SSIM / PSNR scale); 1.0 when unbounded."""
        if self.value_range is None:
            return 1.0
        return float(self.value_range[1] - self.value_range[0])


@dataclass
class MetricSpec:
    """One registered metric: ``build(context) -> Metric``.

    ``higher_is_better`` / ``target`` (the ideal value when neither high nor low is better:
    frequency bias 1) rank the leaderboard; ``label`` (default: the name in capitals), ``unit``
    and ``decimals`` print it. The run record stores all four for every key the metric reports
    (a key ``csi_74`` belongs to metric ``csi``), so boards render with no plugin installed.
    ``weight_files(options) -> [{name, path, sha256, found_in, how_to_get}]`` (optional) lists
    the weight files the metric can use, for ``stbench weights``.

    ``options`` declares the metric options (``--metric-option KEY=VALUE``) the metric reads, each with its
    kind: a :class:`stbench.config.Setting` or a kind's name (``int``, ``number``, ``bool``, ``str``,
    ``any``); ``{}`` for a metric that reads none. A given option no metric of the command reads is one line
    naming the nearest key, and each value is checked against its kind and range
    (:func:`stbench.planning.check_metric_options`). ``None`` (undeclared) lets any key through.
    """

    name: str
    build: Callable[["MetricContext"], "Metric"]
    higher_is_better: bool = False
    description: str = ""
    plugin: Optional[str] = None  # filled in by the registry
    target: Optional[float] = None
    label: str = ""
    unit: str = ""
    decimals: int = 4
    weight_files: Optional[Callable[[Mapping[str, Any]], List[Dict[str, Any]]]] = None
    options: Optional[Mapping[str, Union[str, Setting]]] = None

    def __post_init__(self):
        if self.options is not None:
            self.options = {str(key): kind if isinstance(kind, Setting) else Setting(str(kind))
                            for key, kind in dict(self.options).items()}
            for key, setting in self.options.items():
                if setting.kind not in ("int", "number", "bool", "str", "any"):
                    raise ValueError(f"metric '{self.name}': option {key} has kind '{setting.kind}'; choose int, "
                                     "number, bool, str or any")

    def info(self) -> Dict[str, Any]:
        """What a leaderboard needs to show this metric's values; stored in every run record."""
        return {"higher_is_better": self.higher_is_better, "target": self.target,
                "label": self.label or self.name.upper(), "unit": self.unit, "decimals": self.decimals}
