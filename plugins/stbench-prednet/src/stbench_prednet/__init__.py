"""stbench model plugin: PredNet (Lotter, Kreiman & Cox, ICLR 2017), as OpenSTL v0.3.0 trains and tests it."""
from pathlib import Path

from stbench import ModelSpec, hookimpl, lazy, lazy_exports, load_yaml

__all__ = ["PredNet", "build_prednet", "OPENSTL_KEYS"]

# the model code loads when first used, so registering (and `stbench list`) imports no torch
__getattr__ = lazy_exports(__name__, {"model": ("PredNet", "build_prednet")})

MAX_LAYERS = 8


def _openstl_keys():
    """OpenSTL keeps each kind of conv in one list: the gates as ``i.L`` .. ``o.L``, and the prediction and
    target convs as ``Ahat.2L`` / ``A.2L`` (an activation module sits at every odd index); stbench keeps
    them per layer, ``layers.L.<i|f|c|o|ahat|a>``."""
    rules = [(rf"({gate})\.(\d+)\.", r"layers.\2.\1.") for gate in "ifco"]
    for layer in range(MAX_LAYERS):
        rules += [(rf"Ahat\.{2 * layer}\.", f"layers.{layer}.ahat."), (rf"A\.{2 * layer}\.", f"layers.{layer}.a.")]
    return tuple(rules)


OPENSTL_KEYS = _openstl_keys()


@hookimpl
def stbench_register_models(register):
    configs = load_yaml(Path(__file__).with_name("configs.yaml"))
    register(ModelSpec(name="prednet", family="recurrent", build=lazy("stbench_prednet.model:build_prednet"),
                       hparams=configs["prednet"], checkpoint_rename=OPENSTL_KEYS,
                       description="PredNet (Lotter et al. 2017): a predictive-coding ConvLSTM hierarchy that "
                                   "passes prediction errors up and predictions down"))
