"""stbench model plugin: USTEP (Unified Spatio-TEmporal Predictive learning, Tan et al., TPAMI 2025).

Models: ``ustep`` (TAU modules), ``ustep-simvp`` (SimVP's IncepU modules) and
``ustep-uniformer`` (Uniformer modules). The single segment-level modules reuse the
encoder, decoder and translators of ``stbench_simvp``.
"""
from pathlib import Path

from stbench import ModelSpec, hookimpl, load_yaml

from .model import CrossSegmentGates, SegmentModule, USTEPModel
from .segments import Segmentation, default_delta_t, pad_front, partition, segmentation

__all__ = ["CrossSegmentGates", "SegmentModule", "USTEPModel", "Segmentation", "default_delta_t", "pad_front",
           "partition", "segmentation", "build_ustep", "MODELS"]

ARCH_KEYS = ("hid_s", "hid_t", "n_s", "n_t", "delta_t", "delta_T", "cross_segment", "gate_kernel", "mlp_ratio",
             "drop", "drop_path", "spatio_kernel")

# model name -> (translator kind of the single segment-level modules, description)
MODELS = {
    "ustep": ("tau", "USTEP w/TAU: micro/macro temporal segments, TAU modules, cross-segment gates"),
    "ustep-simvp": ("incepu", "USTEP w/SimVP: micro/macro temporal segments, IncepU modules, cross-segment gates"),
    "ustep-uniformer": ("uniformer", "USTEP w/Uniformer: micro/macro temporal segments, Uniformer modules, "
                                     "cross-segment gates"),
}


def build_ustep(task, hparams, translator="tau"):
    """A :class:`USTEPModel` for ``task`` from the architecture keys of ``hparams``."""
    arch = {key: hparams[key] for key in ARCH_KEYS if key in hparams}
    return USTEPModel(task, translator=translator, **arch)


def _builder(translator):
    def build(task, hparams):
        return build_ustep(task, hparams, translator)
    build.__name__ = f"build_ustep_{translator}"
    return build


@hookimpl
def stbench_register_models(register):
    configs = load_yaml(Path(__file__).with_name("configs.yaml"))
    for name, (translator, description) in MODELS.items():
        register(ModelSpec(name=name, family="hybrid", build=_builder(translator), hparams=configs[name],
                           description=description))
