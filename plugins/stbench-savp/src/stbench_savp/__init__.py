"""stbench model plugin: SAVP (Lee et al., arXiv 1804.01523), alexlee-gk/video_prediction's ``savp`` model.

The model lives in ``stbench_savp.model`` (layers in ``stbench_savp.layers``) and loads when first used, so
registering imports no torch.
"""
from pathlib import Path

from stbench import ModelSpec, hookimpl, lazy, lazy_exports, load_yaml

__all__ = ["SAVP", "SAVPGenerator", "PRESETS", "VARIANTS", "build_savp", "kl_weight", "ground_truth_mask",
           "layer_specs"]

__getattr__ = lazy_exports(__name__, {"model": tuple(__all__)})

# Predictions per test clip by default. The SAVP paper reports the best of 100 samples per clip; 10 keeps a
# CPU evaluation affordable (`--samples 100` for the paper's protocol).
SAMPLES = 10


@hookimpl
def stbench_register_models(register):
    register(ModelSpec(name="savp", family="recurrent", build=lazy("stbench_savp.model:build_savp"),
                       hparams=load_yaml(Path(__file__).with_name("configs.yaml"))["savp"], samples=SAMPLES,
                       description="SAVP (Lee et al. 2018): CDNA ConvLSTM generator with per-step latents, VAE "
                                   "and LSGAN losses from spectrally normalised video discriminators; variants "
                                   "savp, savp-vae, savp-gan, deterministic"))
