"""stbench model plugin: the SimVP encoder / translator / decoder framework and its translators.

Models: ``simvp`` (SimVP v1, IncepU translator), ``simvpv2`` (gSTA), ``uniformer``,
``mlpmixer``, ``convnext`` and the rest of OpenSTL's MetaVP zoo (``hornet``, ``moganet``,
``poolformer``, ``swin``, ``van``, ``vit``, ``convmixer``) -- one framework, different
translators. Other plugins (TAU, USTEP) build on the public names exported here.
"""
import re
from functools import partial
from pathlib import Path

from stbench import ModelSpec, hookimpl, lazy, lazy_exports, load_yaml

__all__ = ["Decoder", "Dense", "Encoder", "Pointwise", "SimVPModel", "TRANSLATORS", "build_translator", "frame_geometry",
           "latent_size", "sampling_pattern", "to_layout", "build_model", "MODELS", "openstl_keys", "openstl_ignore"]

# the model code loads when first used, so registering (and `stbench list`) imports no torch
__getattr__ = lazy_exports(__name__, {
    "codec": ("Decoder", "Encoder", "frame_geometry", "latent_size", "sampling_pattern", "to_layout"),
    "model": ("SimVPModel", "build_model"),
    "translators": ("TRANSLATORS", "Dense", "Pointwise", "build_translator"),
})

ARCH_KEYS = ("hid_s", "hid_t", "n_s", "n_t", "mlp_ratio", "drop", "drop_path", "spatio_kernel")

# model name -> (translator kind, description)
MODELS = {
    "simvp": ("incepu", "SimVP v1: conv encoder/decoder, Inception-UNet (IncepU) translator"),
    "simvpv2": ("gsta", "SimVPv2: the SimVP framework with gated spatio-temporal attention (gSTA) blocks"),
    "uniformer": ("uniformer", "the SimVP framework with Uniformer blocks (conv at the ends, self-attention inside)"),
    "mlpmixer": ("mlpmixer", "the SimVP framework with MLP-Mixer blocks"),
    "convnext": ("convnext", "the SimVP framework with ConvNeXt blocks"),
    "hornet": ("hornet", "the SimVP framework with HorNet blocks (recursive gated convolution)"),
    "moganet": ("moganet", "the SimVP framework with MogaNet blocks (multi-order gated aggregation)"),
    "poolformer": ("poolformer", "the SimVP framework with PoolFormer blocks (average pooling as token mixer)"),
    "swin": ("swin", "the SimVP framework with Swin Transformer blocks (window attention, shifted windows)"),
    "van": ("van", "the SimVP framework with VAN blocks (large-kernel attention)"),
    "vit": ("vit", "the SimVP framework with ViT blocks (global self-attention)"),
    "convmixer": ("convmixer", "the SimVP framework with ConvMixer blocks"),
}


# OpenSTL's names for the same parameters (openstl/models/simvp_model.py and its sub-blocks), per
# translator: block-internal names below, mapped under `hid.enc.N.block.` -> `translator.layers.N.block.`.
# Where one OpenSTL name has two stbench homes (Uniformer's `attn` is a conv in its conv block and the
# attention in its attention block) both rules are listed; the one naming a key of the model wins.
_OPENSTL_BLOCK_KEYS = {
    "gsta": (("layer_scale_1", "scale1"), ("layer_scale_2", "scale2"), ("attn.proj_1.", "mixer.proj_in."),
             ("attn.proj_2.", "mixer.proj_out."), ("attn.spatial_gating_unit.conv0.", "mixer.attention.lk.local."),
             ("attn.spatial_gating_unit.conv_spatial.", "mixer.attention.lk.dilated."),
             ("attn.spatial_gating_unit.conv1.", "mixer.attention.lk.pointwise."),
             ("attn.spatial_gating_unit.fc.", "mixer.attention.excite."), ("mlp.dwconv.dwconv.", "mlp.dwconv.")),
    "uniformer": (("pos_embed.", "pos."), ("conv1.", "mix.0."), ("attn.", "mix.1."), ("conv2.", "mix.2."),
                  ("attn.", ""), ("mlp.fc1.", "mlp.0."), ("mlp.fc2.", "mlp.3."), ("gamma_1", "scale1"),
                  ("gamma_2", "scale2")),
    "mlpmixer": (("mlp_tokens.fc1.", "token_mlp.0."), ("mlp_tokens.fc2.", "token_mlp.3."),
                 ("mlp_channels.fc1.", "channel_mlp.0."), ("mlp_channels.fc2.", "channel_mlp.3.")),
    "convnext": (("gamma", "scale"), ("conv_dw.", "dwconv."), ("mlp.fc1.", "mlp.0."), ("mlp.fc2.", "mlp.3.")),
    "hornet": (("gamma1", "scale1"), ("gamma2", "scale2"), ("gnconv.", "mixer."), ("pwconv1.", "mlp.0."),
               ("pwconv2.", "mlp.2.")),
    "moganet": (("layer_scale_1", "scale1"), ("layer_scale_2", "scale2"), ("attn.proj_1.", "mixer.proj_in."),
                ("attn.proj_2.", "mixer.proj_out."), ("attn.value.DW_conv", "mixer.value.dw"),
                ("attn.value.PW_conv.", "mixer.value.pointwise."), ("attn.", "mixer.")),
    "poolformer": (("layer_scale_1", "scale1"), ("layer_scale_2", "scale2"), ("mlp.fc1.", "mlp.0."),
                   ("mlp.fc2.", "mlp.3.")),
    "swin": (("mlp.fc1.", "mlp.0."), ("mlp.fc2.", "mlp.3.")),
    "vit": (("mlp.fc1.", "mlp.0."), ("mlp.fc2.", "mlp.3.")),
    "convmixer": (("conv_dw.", "dwconv."), ("norm_1.", "norm1."), ("conv_pw.", "pwconv."), ("norm_2.", "norm2.")),
}
_OPENSTL_BLOCK_KEYS["tau"] = _OPENSTL_BLOCK_KEYS["van"] = _OPENSTL_BLOCK_KEYS["gsta"]

# Buffers OpenSTL's checkpoints carry that this framework derives instead: the 0.6-era timm Swin block
# OpenSTL subclasses saves its relative-position index and its shifted-window mask (which OpenSTL's
# forward never applies); newer timm no longer saves either.
_OPENSTL_IGNORE = {
    "swin": ("hid.enc.*.block.attn.relative_position_index", "hid.enc.*.block.attn_mask"),
}


def openstl_keys(translator):
    """``checkpoint_rename`` rules from OpenSTL's SimVP key names to this framework's, for one translator."""
    rules = [(r"enc\.enc\.(\d+)\.conv\.", r"encoder.layers.\1."),
             (r"dec\.dec\.(\d+)\.conv\.", r"decoder.layers.\1."),
             (r"dec\.readout\.", "decoder.readout.")]
    if translator == "incepu":
        for theirs, ours in (("enc", "down"), ("dec", "up")):
            rules += [(rf"hid\.{theirs}\.(\d+)\.conv1\.", rf"translator.{ours}.\1.reduce."),
                      (rf"hid\.{theirs}\.(\d+)\.layers\.(\d+)\.conv\.", rf"translator.{ours}.\1.branches.\2.0."),
                      (rf"hid\.{theirs}\.(\d+)\.layers\.(\d+)\.norm\.", rf"translator.{ours}.\1.branches.\2.1.")]
        return tuple(rules)
    block = r"hid\.enc\.(\d+)\.block\."
    rules += [(block + re.escape(theirs), r"translator.layers.\1.block." + ours)
              for theirs, ours in _OPENSTL_BLOCK_KEYS.get(translator, ())]
    rules += [(block, r"translator.layers.\1.block."),
              (r"hid\.enc\.(\d+)\.reduction\.", r"translator.layers.\1.resize.")]
    return tuple(rules)


def openstl_ignore(translator):
    """``checkpoint_ignore`` patterns: what OpenSTL's checkpoints of ``translator`` hold and this framework does not."""
    return _OPENSTL_IGNORE.get(translator, ())


@hookimpl
def stbench_register_models(register):
    configs = load_yaml(Path(__file__).with_name("configs.yaml"))
    build_model = lazy("stbench_simvp.model:build_model")
    for name, (translator, description) in MODELS.items():
        register(ModelSpec(name=name, family="recurrent-free", build=partial(build_model, translator=translator),
                           hparams=configs[name], description=description,
                           checkpoint_rename=openstl_keys(translator),
                           checkpoint_ignore=openstl_ignore(translator)))
