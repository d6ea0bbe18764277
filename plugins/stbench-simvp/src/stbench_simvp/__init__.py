"""stbench model plugin: the SimVP encoder / translator / decoder framework and its translators.

Models: ``simvp`` (SimVP v1, IncepU translator), ``simvpv2`` (gSTA), ``uniformer``,
``mlpmixer`` and ``convnext`` -- one framework, different translators. Other plugins
(TAU, USTEP) build on the public names exported here.
"""
from pathlib import Path

from stbench import ModelSpec, hookimpl, load_yaml

from .codec import Decoder, Encoder, frame_geometry, latent_size, sampling_pattern, to_layout
from .model import SimVPModel
from .translators import TRANSLATORS, Dense, Pointwise, build_translator

__all__ = ["Decoder", "Dense", "Encoder", "Pointwise", "SimVPModel", "TRANSLATORS", "build_translator", "frame_geometry",
           "latent_size", "sampling_pattern", "to_layout", "build_model", "MODELS"]

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
                           hparams=configs[name], description=description))
