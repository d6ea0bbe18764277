"""stbench model plugin: TAU (Temporal Attention Unit).

TAU is the SimVP framework (from ``stbench_simvp``) with the ``tau`` translator and a
training loss that adds the differential divergence regulariser to the MSE (``stbench_tau.model``,
loaded when first used, so registering imports no torch).
"""
from pathlib import Path

from stbench import ModelSpec, hookimpl, lazy, lazy_exports, load_yaml
from stbench_simvp import openstl_keys

__all__ = ["TAUModel", "differential_divergence", "build_tau"]

__getattr__ = lazy_exports(__name__, {"model": tuple(__all__)})


@hookimpl
def stbench_register_models(register):
    register(ModelSpec(name="tau", family="recurrent-free", build=lazy("stbench_tau.model:build_tau"),
                       hparams=load_yaml(Path(__file__).with_name("configs.yaml"))["tau"],
                       description="TAU: SimVP framework + temporal attention units + differential divergence loss",
                       checkpoint_rename=openstl_keys("tau")))
