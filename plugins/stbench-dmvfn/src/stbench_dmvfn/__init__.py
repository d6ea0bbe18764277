"""stbench model plugin: DMVFN (Hu et al., CVPR 2023), as OpenSTL v0.3.0 trains and tests it."""
from pathlib import Path

from stbench import ModelSpec, hookimpl, lazy, lazy_exports, load_yaml

__all__ = ["DMVFN", "FlowBlock", "VGG19Features", "build_dmvfn", "find_vgg19", "warp", "OPENSTL_KEYS"]

# the model code loads when first used, so registering (and `stbench list`) imports no torch
__getattr__ = lazy_exports(__name__, {"model": ("DMVFN", "FlowBlock", "build_dmvfn", "warp"),
                                      "perceptual": ("VGG19Features", "find_vgg19")})

# OpenSTL's names: the blocks are `stu` ("students"), each with `conv0` / `convblock` / `conv_sq` (the coarse
# branch), `conv1` / `convblock1` (one-conv Sequentials: the full-resolution branch) and `lastconv`; the
# routing network is `routing.routing` and its linear layer `l1`.
OPENSTL_KEYS = (
    (r"stu\.(\d+)\.conv0\.", r"blocks.\1.coarse_in."),
    (r"stu\.(\d+)\.convblock\.", r"blocks.\1.coarse_body."),
    (r"stu\.(\d+)\.conv_sq\.", r"blocks.\1.coarse_out."),
    (r"stu\.(\d+)\.conv1\.0\.", r"blocks.\1.fine_in."),
    (r"stu\.(\d+)\.convblock1\.0\.", r"blocks.\1.fine_body."),
    (r"stu\.(\d+)\.lastconv\.", r"blocks.\1.head."),
    (r"routing\.routing\.", "router."),
    (r"l1\.", "router_head."),
)


@hookimpl
def stbench_register_models(register):
    configs = load_yaml(Path(__file__).with_name("configs.yaml"))
    register(ModelSpec(name="dmvfn", family="recurrent", build=lazy("stbench_dmvfn.model:build_dmvfn"),
                       hparams=configs["dmvfn"], checkpoint_rename=OPENSTL_KEYS,
                       description="DMVFN (Hu et al. 2023): routed multi-scale voxel-flow blocks warp and blend "
                                   "the last two frames into the next"))
