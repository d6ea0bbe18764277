"""IAM4VPModel: SimVP-style encoder/decoder, one model call per future frame, earlier predictions fed back as slots."""
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import nn

from stbench import STModel, UserError, checked_prediction

from . import ARCH_KEYS
from .layers import Predictor, Refinement, SpatialDecoder, SpatialEncoder, TimeEmbedding, to_layout

TIME_STEP = 100  # the reference embeds future frame k as time step 100 * k


class IAM4VPModel(STModel):
    """IAM4VP built for one task (``T = t_in`` observed frames).

    One call predicts future frame ``k`` (0-based, ``k < T``): the ``T`` observed frames are
    encoded per frame and stacked with ``T`` slots, slot ``i`` holding the encoding of the
    prediction of frame ``i`` when it exists and a learned mask token otherwise; the predictor's
    time-conditioned blocks (time step ``100 k``) map the ``2 T * hid_s`` channels to ``T * hid_s``;
    each of the ``T`` latents is decoded with its frame's skip, the ``T`` decoded frames are merged by
    a 1x1 conv into ``head_dim`` channels, refined, and read out as one frame.

    ``forward(x, t_out)`` calls it for ``k = 0 .. T - 1``, each call seeing every earlier prediction;
    beyond ``T`` frames it starts again from the last ``T`` frames (observed and predicted). The
    observed frames are encoded once per chunk and each prediction once (the reference re-encodes
    them at every call: same values, more work).
    """

    def __init__(self, task, *, hid_s: int, n_s: int, n_t: int, time_dim: int = 64, head_dim: int = 64):
        super().__init__()
        for key, value in (("hid_s", hid_s), ("n_s", n_s), ("n_t", n_t), ("head_dim", head_dim)):
            if int(value) < 1:
                raise UserError(f"iam4vp: {key} must be at least 1, got {value} (--set {key}=...)")
        if time_dim < 4 or time_dim % 2:
            raise UserError(f"iam4vp: time_dim must be even and at least 4 (sin and cos halves), got {time_dim}; "
                            f"--set time_dim=64 as the reference")
        if task.shape is None:
            raise ValueError(f"task {task} has no frame shape; resolve it against its dataset first")
        c, h, w = task.shape
        factor = 2 ** (n_s // 2)
        if h % factor or w % factor:
            raise UserError(f"iam4vp with n_s={n_s} halves the frame {n_s // 2} time(s), so H and W must be "
                            f"multiples of {factor}; task {task} has {h}x{w}. Choose another n_s (--set n_s=...)")
        self.t_in, self.frame_shape, self.hid_s = task.t_in, (c, h, w), hid_s
        t = task.t_in
        self.time_mlp = TimeEmbedding(time_dim)
        self.encoder = SpatialEncoder(c, hid_s, n_s)
        # encodes predicted frames into their slots (with one observed frame there is no slot to fill)
        self.frame_encoder = SpatialEncoder(c, hid_s, n_s) if t > 1 else None
        # one predicted frame (kitticaltech-10-1) trains without feeding any back: the re-encoder gets no gradient
        self.unused_parameters = task.t_out == 1 and self.frame_encoder is not None
        self.mask_tokens = nn.Parameter(torch.zeros(t, hid_s, h // factor, w // factor))
        self.predictor = Predictor(t * hid_s, n_t, time_dim)
        self.decoder = SpatialDecoder(hid_s, n_s)
        self.merge = nn.Conv2d(t * hid_s, head_dim, 1)
        self.refine = Refinement(head_dim)
        self.readout = nn.Conv2d(head_dim, c, 1)

    def encode(self, x: torch.Tensor):
        """Observed frames ``[B, T, C, H, W]`` -> (latents ``[B, T * hid, h, w]``, skips ``[B * T, hid, H, W]``)."""
        b, t, c, h, w = x.shape
        if t != self.t_in:
            raise ValueError(f"this model was built for {self.t_in} input frames, got {t}")
        latent, skip = self.encoder(to_layout(x.reshape(b * t, c, h, w)))
        return latent.reshape(b, -1, *latent.shape[-2:]), skip

    def predict(self, latent: torch.Tensor, skip: torch.Tensor, slots: List[torch.Tensor], k: int) -> torch.Tensor:
        """Future frame ``k`` ``[B, C, H, W]`` from the observed encodings and the encoded earlier predictions."""
        b = latent.shape[0]
        step = torch.full((b,), float(TIME_STEP * k), dtype=self.mask_tokens.dtype, device=latent.device)
        time_emb = self.time_mlp(step)
        tokens = [self.mask_tokens[i].expand(b, -1, -1, -1) for i in range(len(slots), self.t_in)]
        z = to_layout(torch.cat([latent, *slots, *tokens], dim=1))
        z = self.predictor(z, time_emb)
        y = self.decoder(to_layout(z.reshape(b * self.t_in, self.hid_s, *z.shape[-2:])), skip)
        y = self.merge(to_layout(y.reshape(b, self.t_in * self.hid_s, *y.shape[-2:])))
        return self.readout(self.refine(y))

    def rollout(self, x: torch.Tensor, t_out: int, detach: bool = False) -> torch.Tensor:
        """``t_out`` frames, chunk by chunk; ``detach`` stops gradients through fed-back predictions."""
        frames, current = [], x
        while len(frames) < t_out:
            latent, skip = self.encode(current)
            chunk, slots, n = [], [], min(self.t_in, t_out - len(frames))
            for k in range(n):
                chunk.append(self.predict(latent, skip, slots, k))
                if k + 1 < n:
                    slots.append(self.frame_encoder(to_layout(chunk[-1].detach() if detach else chunk[-1]))[0])
            frames += chunk
            current = torch.stack(chunk, dim=1)  # a whole chunk of t_in frames whenever another follows
            if detach:
                current = current.detach()
        return torch.stack(frames, dim=1)

    def forward(self, x: torch.Tensor, t_out: int) -> torch.Tensor:
        return self.rollout(x, t_out)

    def loss(self, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        """Mean of the per-frame MSEs, each frame predicted from the detached earlier predictions."""
        return F.mse_loss(checked_prediction(self.rollout(x, y.shape[1], detach=True), y), y)

    def record_notes(self) -> Dict[str, str]:
        return {"flops": "stbench counts the whole rollout (one model call per predicted frame); IAM4VP's "
                         "published FLOPs (USTEP Table II) are one call, the first frame's"}


def build_iam4vp(task, hparams) -> IAM4VPModel:
    """IAM4VP for ``task`` from resolved hyper-parameters (:data:`ARCH_KEYS`)."""
    unknown = sorted(set(hparams) - set(ARCH_KEYS))
    if unknown:
        raise ValueError(f"IAM4VPModel does not take {', '.join(unknown)}; known: {', '.join(ARCH_KEYS)}")
    return IAM4VPModel(task, **hparams)
