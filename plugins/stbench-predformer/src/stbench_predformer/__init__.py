"""stbench model plugin: PredFormer (Tang et al., "Video Prediction Transformers without Recurrence or
Convolution", arXiv 2410.04733).

Model ``predformer``: frames cut into patches, a linear patch embedding plus a fixed sinusoidal position
code, a stack of gated transformers (pre-norm self-attention and a SwiGLU feed-forward) arranged over
space and time as the ``variant`` hyper-parameter says, and a linear head back to patches. The nine
variants of the authors' code (full space-time attention, factorised and interleaved orders) are one
model here; see ``VARIANTS``.
"""
from pathlib import Path

from stbench import ModelSpec, hookimpl, lazy, lazy_exports, load_yaml

__all__ = ["ARCH_KEYS", "HEAD_READS_PATCH_MAJOR", "LAYER_SKIP_VARIANTS", "PredFormerModel", "REFERENCE_FILES", "REFERENCE_KEYS", "VARIANTS", "build_predformer",
           "stage_names"]

# the model code loads when first used, so registering (and `stbench list`) imports no torch
__getattr__ = lazy_exports(__name__, {"model": ("PredFormerModel", "build_predformer")})

ARCH_KEYS = ("variant", "patch_size", "dim", "heads", "dim_head", "scale_dim", "ndepth", "depth",
             "dropout", "attn_dropout", "drop_path", "layer_skip")

# variant -> (arrangement, the axes its transformers attend over, in order). "s": over the patches of one
# frame, "t": over the frames at one patch position, "st": over every patch of every frame.
#   full:       one transformer of `ndepth` blocks over space-time
#   factorised: two transformers of `ndepth` blocks each, one after the other
#   layered:    `ndepth` PredFormer layers, each the given sequence of transformers of `depth` blocks
VARIANTS = {
    "FullAttention": ("full", ("st",)),
    "FacST": ("factorised", ("s", "t")),
    "FacTS": ("factorised", ("t", "s")),
    "BinaryST": ("layered", ("s", "t")),
    "BinaryTS": ("layered", ("t", "s")),
    "TST": ("layered", ("t", "s", "t")),
    "STS": ("layered", ("s", "t", "s")),
    "TSST": ("layered", ("t", "s", "s", "t")),
    "STTS": ("layered", ("s", "t", "t", "s")),
}

# The variants whose authors' files carry the optional skip connection around each PredFormer layer (a
# commented-out `x += x_ori` at the layer's end, "we only add this for human3.6m"; the paper's Table 3 marks
# its Triplet-TST* and Triplet-STS* rows as trained with it): `layer_skip: true` turns it on.
LAYER_SKIP_VARIANTS = ("TST", "STS")

# Variants whose head reads the last transformer's tokens in the order that transformer leaves them. In the
# authors' FacST the temporal transformer ends with tokens ordered (clip, patch, frame), and its forward hands
# them to the head without permuting them back, so the head reads them as (clip, frame, patch): the token of
# patch n at frame t becomes patch (n T + t) mod N of frame floor((n T + t) / N). Kept here as the reference
# (and so the paper's Fac-S-T rows) has it; every other variant ends in (clip, frame, patch) order.
HEAD_READS_PATCH_MAJOR = frozenset({"FacST"})

# the authors' file (openstl/models/ at yyyujintang/PredFormer b73c7ae) each variant follows
REFERENCE_FILES = {
    "FullAttention": "PredFormer_FullAttention.py", "FacST": "PredFormer_FacST.py", "FacTS": "PredFormer_FacTS.py",
    "BinaryST": "PredFormer_Binary_ST.py", "BinaryTS": "PredFormer_Binary_TS.py",
    "TST": "PredFormer_Triplet_TST.py", "STS": "PredFormer_Triplet_STS.py",
    "TSST": "PredFormer_Quadruplet_TSST.py", "STTS": "PredFormer_Quadruplet_STTS.py",
}


def stage_names(variant: str):
    """The stage names of one PredFormer layer: axis then position (``t0``, ``s1``, ... ``st0``)."""
    return tuple(f"{axis}{position}" for position, axis in enumerate(VARIANTS[variant][1]))


# The authors' attribute name of each transformer, per variant, and the stage it is here. Their layered
# files keep one PredFormerLayer per entry of `blocks`; the factorised and full files hold the transformers
# on the model itself (here: the one layer `layers.0`).
_REFERENCE_STAGES = {
    "FullAttention": (("space_temporal_transformer", "st0"),),
    "FacST": (("space_transformer", "s0"), ("temporal_transformer", "t1")),
    "FacTS": (("temporal_transformer", "t0"), ("space_transformer", "s1")),
    "BinaryST": (("st_space_transformer", "s0"), ("st_temporal_transformer", "t1")),
    "BinaryTS": (("ts_temporal_transformer", "t0"), ("ts_space_transformer", "s1")),
    "TST": (("temporal_transformer_first", "t0"), ("space_transformer", "s1"), ("temporal_transformer_second", "t2")),
    "STS": (("space_transformer_first", "s0"), ("temporal_transformer", "t1"), ("space_transformer_second", "s2")),
    "TSST": (("ts_temporal_transformer", "t0"), ("ts_space_transformer", "s1"), ("st_space_transformer", "s2"),
             ("st_temporal_transformer", "t3")),
    "STTS": (("st_space_transformer", "s0"), ("st_temporal_transformer", "t1"), ("ts_temporal_transformer", "t2"),
             ("ts_space_transformer", "s3")),
}
# inside one of their gated transformers: layers.J.0 = PreNorm(Attention), layers.J.1 = PreNorm(SwiGLU)
_REFERENCE_BLOCK = (("0.norm", "attn_norm"), ("0.fn.to_qkv", "attn.qkv"), ("0.fn.to_out.0", "attn.proj"),
                    ("1.norm", "mlp_norm"), ("1.fn.fc1_g", "mlp.gate"), ("1.fn.fc1_x", "mlp.value"),
                    ("1.fn.fc2", "mlp.out"))


def _reference_keys():
    """checkpoint_rename rules from the authors' state-dict keys to this model's.

    One authors' name may be different stages in different variants (``st_space_transformer`` is the
    third stage of TSST and the first of STTS); both rules are listed, and since no variant has both
    stages, the one naming a key of the built model is the one applied (stbench.checkpoints.rename_key).
    """
    rules = [(r"to_patch_embedding\.1\.", "patch_embed."), (r"mlp_head\.0\.", "head_norm."),
             (r"mlp_head\.1\.", "head.")]
    for variant, stages in _REFERENCE_STAGES.items():
        layered = VARIANTS[variant][0] == "layered"
        for name, stage in stages:
            if layered:
                prefix, home = rf"blocks\.(\d+)\.{name}\.", rf"layers.\1.stages.{stage}."
                block = r"\2"
            else:
                prefix, home = rf"{name}\.", f"layers.0.stages.{stage}."
                block = r"\1"
            for theirs, ours in _REFERENCE_BLOCK:
                rules.append((prefix + r"layers\.(\d+)\." + theirs.replace(".", r"\.") + r"\.",
                              f"{home}blocks.{block}.{ours}."))
            rules.append((prefix + r"norm\.", f"{home}norm."))
    unique = []
    for rule in rules:
        if rule not in unique:
            unique.append(rule)
    return tuple(unique)


REFERENCE_KEYS = _reference_keys()


@hookimpl
def stbench_register_models(register):
    configs = load_yaml(Path(__file__).with_name("configs.yaml"))
    register(ModelSpec(
        name="predformer", family="recurrent-free", build=lazy("stbench_predformer.model:build_predformer"),
        hparams=configs["predformer"],
        description="PredFormer: gated transformers (self-attention + SwiGLU) over patches, full, factorised or "
                    "interleaved space/time attention (variant), no recurrence or convolution",
        checkpoint_rename=REFERENCE_KEYS))
