"""stbench model plugin: the SimVP encoder / translator / decoder framework and its translators.

Models: ``simvp`` (SimVP v1, IncepU translator), ``simvpv2`` (gSTA), ``uniformer``,
``mlpmixer`` and ``convnext`` -- one framework, different translators. Other plugins
(TAU, USTEP) build on the public names exported here.
"""
import re
from pathlib import Path

from stbench import ModelSpec, hookimpl, load_yaml

from .codec import Decoder, Encoder, frame_geometry, latent_size, sampling_pattern, to_layout
from .model import SimVPModel
from .translators import TRANSLATORS, Dense, Pointwise, build_translator

__all__ = ["Decoder", "Dense", "Encoder", "Pointwise", "SimVPModel", "TRANSLATORS", "build_translator", "frame_geometry",
           "latent_size", "sampling_pattern", "to_layout", "build_model", "MODELS", "openstl_keys"]

ARCH_KEYS = ("hid_s", "hid_t", "n_s", "n_t", "mlp_ratio", "drop", "drop_path", "spatio_kernel")

# model name -> (translator kind, description)
MODELS = {
    "simvp": ("incepu", "SimVP v1: conv encoder/decoder, Inception-UNet (IncepU) translator"),
    "simvpv2": ("gsta", "SimVPv2: the SimVP framework with gated spatio-temporal attention (gSTA) blocks"),
    "uniformer": ("uniformer", "the SimVP framework with Uniformer blocks (conv at the ends, self-attention inside)"),
    "mlpmixer": ("mlpmixer", "the SimVP framework with MLP-Mixer blocks"),
    "convnext": ("convnext", "the SimVP framework with ConvNeXt blocks"),
}


def build_model(task, hparams, translator, model_class=SimVPModel, extra_keys=()):
    """Build ``model_class`` for ``task`` with ``translator`` from resolved hyper-parameters.

    ``hparams`` may hold the architecture keys (:data:`ARCH_KEYS`) and the keys a subclass
    adds (``extra_keys``, e.g. TAU's ``alpha``); anything else is a mistake and is refused.
    """
    allowed = set(ARCH_KEYS) | set(extra_keys)
    unknown = sorted(set(hparams) - allowed)
    if unknown:
        raise ValueError(f"{model_class.__name__} does not take {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(allowed))}")
    return model_class(task, translator=translator, **hparams)


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
}
_OPENSTL_BLOCK_KEYS["tau"] = _OPENSTL_BLOCK_KEYS["gsta"]


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


def _builder(translator):
    def build(task, hparams):
        return build_model(task, hparams, translator)
    build.__name__ = f"build_{translator}"
    return build


@hookimpl
def stbench_register_models(register):
    configs = load_yaml(Path(__file__).with_name("configs.yaml"))
    for name, (translator, description) in MODELS.items():
        register(ModelSpec(name=name, family="recurrent-free", build=_builder(translator),
                           hparams=configs[name], description=description,
                           checkpoint_rename=openstl_keys(translator)))
