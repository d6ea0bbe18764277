"""stbench model plugin: MCVD (Masked Conditional Video Diffusion, Voleti et al., NeurIPS 2022).

The model lives in ``stbench_mcvd.model`` and is loaded when first used, so registering imports no torch.
"""
from pathlib import Path

from stbench import ModelSpec, hookimpl, lazy, lazy_exports, load_yaml

__all__ = ["MCVDModel", "ScoreNet", "build_mcvd", "sample_frames",
           "denoising_loss", "linear_schedule"]

__getattr__ = lazy_exports(__name__, {"model": tuple(__all__)})

# The authors' root module stores its noise schedule as buffers; MCVDModel recomputes it from the
# hyper-parameters, so those four entries are dropped on import (the fixture test checks they agree).
CHECKPOINT_IGNORE = ("betas", "alphas", "alphas_prev", "unet.sigmas")


@hookimpl
def stbench_register_models(register):
    register(ModelSpec(name="mcvd", family="recurrent-free", build=lazy("stbench_mcvd.model:build_mcvd"),
                       hparams=load_yaml(Path(__file__).with_name("configs.yaml"))["mcvd"],
                       description="MCVD: masked conditional video diffusion; predictions are DDPM samples, "
                                   "k frames per block given the last c",
                       checkpoint_ignore=CHECKPOINT_IGNORE))
