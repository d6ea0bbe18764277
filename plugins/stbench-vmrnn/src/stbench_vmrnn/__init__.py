"""stbench model plugin: VMRNN (Tang et al., CVPR workshops 2024), Vision Mamba blocks inside LSTM-like cells."""
import re
from pathlib import Path

from stbench import ModelSpec, hookimpl, lazy, lazy_exports, load_yaml

__all__ = ["VMRNN", "VMRNNCell", "CrossScan2D", "build_vmrnn", "selective_scan", "REFERENCE_KEYS",
           "REFERENCE_UNUSED"]

# the model code loads when first used, so registering (and `stbench list`) imports no torch
__getattr__ = lazy_exports(__name__, {"model": ("VMRNN", "VMRNNCell", "CrossScan2D", "build_vmrnn"),
                                      "scan": ("selective_scan",)})

# The authors' names (yyyujintang/VMRNN-PyTorch): Moving MNIST's VMRNN-D (`Downsample.*`, `Upsample.*`), its
# VMRNN-B (`ST.layers.N.*`) and the OpenSTL-based VMRNN-B of KTH / TaxiBJ (`ST.layer.*`, one cell).
_CELLS = (
    (r"Downsample\.layers\.(\d+)\.VSBs\.(\d+)\.", r"encoder.\1.blocks.\2."),
    (r"Upsample\.layers\.(\d+)\.VSBs\.(\d+)\.", r"decoder.\1.blocks.\2."),
    (r"ST\.layers\.(\d+)\.VSBs\.(\d+)\.", r"encoder.\1.blocks.\2."),
    (r"ST\.layer\.VSBs\.(\d+)\.", r"encoder.0.blocks.\1."),
)
_BLOCK = (
    ("ln_1.", "norm."), ("linear.", "mix_hidden."), ("self_attention.conv2d.", "ss2d.conv."),
    ("self_attention.x_proj_weight", "ss2d.x_proj"), ("self_attention.dt_projs_weight", "ss2d.dt_weight"),
    ("self_attention.dt_projs_bias", "ss2d.dt_bias"), ("self_attention.A_logs", "ss2d.A_log"),
    ("self_attention.Ds", "ss2d.D"), ("self_attention.", "ss2d."),
)
REFERENCE_KEYS = tuple(
    [(cell + re.escape(theirs), mine + ours) for cell, mine in _CELLS for theirs, ours in _BLOCK]
    + [(r"(Downsample|ST)\.patch_embed\.", "embed."),
       (r"Downsample\.downsample\.", "merges."),
       (r"Upsample\.upsample\.", "expands."),
       (r"(Upsample\.Unembed|ST\.patch_inflated)\.Conv\.", "inflate.out."),
       (r"(Upsample\.Unembed|ST\.patch_inflated)\.Conv_\.", "inflate.upsample.")])
# Built and never used by the authors' code: every block but a cell's first holds a hidden-state mixer
# (`linear`, 2C -> C) it is never given a hidden state for, and VMRNN-D's decoder builds a patch
# embedding it only reads the grid size from.
REFERENCE_UNUSED = ("*VSBs.[1-9]*.linear.*", "Upsample.patch_embed.*")


@hookimpl
def stbench_register_models(register):
    configs = load_yaml(Path(__file__).with_name("configs.yaml"))
    register(ModelSpec(name="vmrnn", family="recurrent", build=lazy("stbench_vmrnn.model:build_vmrnn"),
                       hparams=configs["vmrnn"],
                       description="VMRNN (Tang et al. 2024): LSTM-like cells whose transform is a stack of "
                                   "VMamba (2-D selective scan) blocks on patch tokens; VMRNN-B flat, VMRNN-D U-shaped",
                       checkpoint_ignore=REFERENCE_UNUSED, checkpoint_rename=REFERENCE_KEYS))
