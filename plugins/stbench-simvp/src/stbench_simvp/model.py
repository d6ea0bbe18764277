"""SimVPModel: encoder -> translator over frames folded into channels -> decoder, rolled out in chunks."""
import torch

from stbench import STModel

from . import ARCH_KEYS
from .codec import Decoder, Encoder, frame_geometry, to_layout
from .translators import build_translator


class SimVPModel(STModel):
    """A recurrent-free predictor built for one task.

    One pass maps ``t_in`` observed frames to the next ``t_in`` frames: every frame is
    encoded to ``[hid_s, H', W']``, the ``t_in`` latents are stacked into ``t_in * hid_s``
    channels for the translator, and each frame is decoded with its encoder skip.
    ``forward(x, t_out)`` truncates one pass when ``t_out <= t_in`` and otherwise feeds each
    predicted chunk of ``t_in`` frames back in until ``t_out`` frames exist.
    """

    def __init__(self, task, *, translator: str, hid_s: int, hid_t: int, n_s: int, n_t: int,
                 mlp_ratio: float = 8.0, drop: float = 0.0, drop_path: float = 0.0, spatio_kernel: int = 3):
        super().__init__()
        (c, h, w), self.input_resolution = frame_geometry(task, n_s, translator)
        self.t_in, self.frame_shape = task.t_in, (c, h, w)
        self.encoder = Encoder(c, hid_s, n_s, spatio_kernel)
        self.translator = build_translator(translator, task.t_in * hid_s, hid_t, n_t, mlp_ratio=mlp_ratio,
                                           drop=drop, drop_path=drop_path, input_resolution=self.input_resolution)
        self.decoder = Decoder(hid_s, c, n_s, spatio_kernel)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One pass: ``[B, t_in, C, H, W]`` -> the next ``t_in`` frames."""
        b, t, c, h, w = x.shape
        if t != self.t_in:
            raise ValueError(f"this model was built for {self.t_in} input frames, got {t}")
        latent, skip = self.encoder(to_layout(x.reshape(b * t, c, h, w)))
        _, c_lat, h_lat, w_lat = latent.shape
        latent = self.translator(to_layout(latent.reshape(b, t * c_lat, h_lat, w_lat)))
        y = self.decoder(to_layout(latent.reshape(b * t, c_lat, h_lat, w_lat)), skip)
        return y.reshape(b, t, c, h, w)

    def forward(self, x: torch.Tensor, t_out: int) -> torch.Tensor:
        chunks, produced, current = [], 0, x
        while produced < t_out:
            current = self.step(current)
            chunks.append(current)
            produced += current.shape[1]
        return torch.cat(chunks, dim=1)[:, :t_out]


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
