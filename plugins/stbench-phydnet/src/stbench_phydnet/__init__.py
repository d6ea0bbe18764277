"""stbench model plugin: PhyDNet (Le Guen & Thome, CVPR 2020).

The model code (``stbench_phydnet.model``, ``stbench_phydnet.moments``) loads when first used, so
registering (and ``stbench list``) imports no torch.
"""
from pathlib import Path

from stbench import ModelSpec, hookimpl, lazy, lazy_exports, load_yaml

__all__ = ["PhyCell", "PhyDNet", "build_phydnet", "kernel_to_moments", "moment_loss", "moment_matrix",
           "moment_targets", "moments_to_kernel"]

__getattr__ = lazy_exports(__name__, {
    "model": ("PhyCell", "PhyDNet", "build_phydnet"),
    "moments": ("kernel_to_moments", "moment_loss", "moment_matrix", "moment_targets", "moments_to_kernel"),
})

# OpenSTL's PhyDNet_Model (its EncoderRNN sits under `encoder.`; the original code saves the EncoderRNN
# itself, without the prefix) -> ours. Its blocks are
# `<part>.<layer>.main.{0: conv, 1: GroupNorm}`; the parts are named after the paper's E, E_p, E_r, D_p, D_r, D.
_PARTS = {"encoder_E": "encoder", "encoder_Ep": "phys_encoder", "encoder_Er": "resid_encoder",
          "decoder_Dp": "phys_decoder", "decoder_Dr": "resid_decoder", "decoder_D": "decoder"}
OPENSTL_KEYS = tuple(
    (rf"(?:encoder\.)?{theirs}\.(u?p?c\d)\.main\.{index}\.", rf"{ours}.\1.{layer}.")
    for theirs, ours in _PARTS.items() for index, layer in ((0, "conv"), (1, "norm"))
) + (
    (r"(?:encoder\.)?decoder_D\.upc3\.", "decoder.upc3."),
    (r"phycell\.cell_list\.0\.F\.conv1\.", "phycell.phi.0."),
    (r"phycell\.cell_list\.0\.F\.bn1\.", "phycell.phi.1."),
    (r"phycell\.cell_list\.0\.F\.conv2\.", "phycell.phi.2."),
    (r"phycell\.cell_list\.0\.convgate\.", "phycell.gate."),
    (r"convcell\.cell_list\.(\d+)\.conv\.", r"convlstm.\1.conv."),
)
# OpenSTL registers PhyCell and the ConvLSTM twice (as `phycell` / `convcell` and again inside
# `encoder`), so its state dict holds each of their tensors under two names; the `encoder.` copies
# are dropped. `k2m._M*` / `k2m._invM*` are the constant moment matrices, which we compute.
OPENSTL_IGNORE = ("encoder.phycell.*", "encoder.convcell.*", "k2m.*")


@hookimpl
def stbench_register_models(register):
    register(ModelSpec(name="phydnet", family="recurrent", build=lazy("stbench_phydnet.model:build_phydnet"),
                       hparams=load_yaml(Path(__file__).with_name("configs.yaml"))["phydnet"],
                       description="PhyDNet (Le Guen & Thome 2020): PhyCell physical branch (moment-constrained "
                                   "filters) + residual ConvLSTM branch",
                       checkpoint_ignore=OPENSTL_IGNORE, checkpoint_rename=OPENSTL_KEYS))
