"""stbench model plugin: SV2P (Babaeizadeh et al., ICLR 2018), tensor2tensor's ``next_frame_sv2p``.

The model lives in ``stbench_sv2p.model`` and loads when first used, so registering imports no torch. The
CDNA and KL pieces in ``stbench_sv2p.ops`` are shared with ``stbench_savp``.
"""
from pathlib import Path

from stbench import ModelSpec, hookimpl, lazy, lazy_exports, load_yaml

__all__ = ["SV2P", "CDNATower", "ConvLSTMCell", "LatentTower", "build_sv2p", "kl_weight", "training_phase"]

__getattr__ = lazy_exports(__name__, {"model": tuple(__all__)})

# Predictions per test clip by default. The SV2P and SAVP papers report the best of 100 samples per clip;
# 10 keeps a CPU evaluation affordable (`--samples 100` for the papers' protocol).
SAMPLES = 10


@hookimpl
def stbench_register_models(register):
    register(ModelSpec(name="sv2p", family="recurrent", build=lazy("stbench_sv2p.model:build_sv2p"),
                       hparams=load_yaml(Path(__file__).with_name("configs.yaml"))["sv2p"], samples=SAMPLES,
                       description="SV2P (Babaeizadeh et al. 2018): CDNA ConvLSTM predictor with a time-invariant "
                                   "latent (posterior in training, N(0, 1) at test), three training phases"))
