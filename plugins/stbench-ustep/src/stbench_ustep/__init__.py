"""stbench model plugin: USTEP (Unified Spatio-TEmporal Predictive learning, Tan et al., TPAMI 2025).

Models: ``ustep`` (TAU modules), ``ustep-simvp`` (SimVP's IncepU modules) and
``ustep-uniformer`` (Uniformer modules). The single segment-level modules reuse the
encoder, decoder and translators of ``stbench_simvp``.
"""
from functools import partial
from pathlib import Path

from stbench import ModelSpec, hookimpl, lazy, lazy_exports, load_yaml

__all__ = ["CrossSegmentGates", "SegmentModule", "USTEPModel", "Segmentation", "default_delta_t", "pad_front",
           "partition", "segmentation", "build_ustep", "MODELS"]

# the model code loads when first used, so registering (and `stbench list`) imports no torch
__getattr__ = lazy_exports(__name__, {
    "model": ("CrossSegmentGates", "SegmentModule", "USTEPModel", "build_ustep"),
    "segments": ("Segmentation", "default_delta_t", "pad_front", "partition", "segmentation"),
})

ARCH_KEYS = ("hid_s", "hid_t", "n_s", "n_t", "delta_t", "delta_T", "cross_segment", "gate_kernel", "mlp_ratio",
             "drop", "drop_path", "spatio_kernel")

# model name -> (translator kind of the single segment-level modules, description)
MODELS = {
    "ustep": ("tau", "USTEP w/TAU: micro/macro temporal segments, TAU modules, cross-segment gates"),
    "ustep-simvp": ("incepu", "USTEP w/SimVP: micro/macro temporal segments, IncepU modules, cross-segment gates"),
    "ustep-uniformer": ("uniformer", "USTEP w/Uniformer: micro/macro temporal segments, Uniformer modules, "
                                     "cross-segment gates"),
}


@hookimpl
def stbench_register_models(register):
    configs = load_yaml(Path(__file__).with_name("configs.yaml"))
    build_ustep = lazy("stbench_ustep.model:build_ustep")
    for name, (translator, description) in MODELS.items():
        register(ModelSpec(name=name, family="hybrid", build=partial(build_ustep, translator=translator),
                           hparams=configs[name],
                           description=description))
