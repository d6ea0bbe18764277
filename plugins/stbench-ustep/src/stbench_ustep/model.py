"""USTEPModel: single segment-level recurrent-free modules joined by cross segment-level gates."""
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from stbench import STModel, UserError
from stbench_simvp import Decoder, Encoder, Pointwise, build_translator, frame_geometry, to_layout

from . import ARCH_KEYS
from .segments import Segmentation, pad_front, partition, segmentation


class SegmentModule(nn.Module):
    """A recurrent-free module F (Eq. 4): one segment's frames -> a hidden state ``[C', H', W']``.

    The segment's per-frame latents are folded into channels (as in SimVP), a 1x1 conv maps
    them to the shared width ``C'`` and a translator of the chosen kind mixes them there.
    """

    def __init__(self, frames: int, hid_s: int, kind: str, width: int, depth: int, **translator_options):
        super().__init__()
        self.embed = Pointwise(frames * hid_s, width)
        self.translator = build_translator(kind, width, width, depth, **translator_options)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """``[B, frames, hid_s, H', W'] -> [B, C', H', W']``."""
        hidden = self.embed(to_layout(latents.flatten(1, 2)))
        return self.translator(hidden)


class CrossSegmentGates(nn.Module):
    """The cross segment-level recurrence: the context gate (Eq. 5), the historical and cross-segment gates (Eq. 6).

    ``macro``: ``g = sigmoid(W_v * V + b_v)``, ``h_V = V + g . h_V(prev)``.
    ``micro``: ``m = sigmoid(W_u * U + b_u)``, ``c = sigmoid(W_c * U + b_c)``,
    ``h_U = U + m . h_U(prev) + c . h_V``. States start at zero; a gate whose state is
    still zero is not computed (its product would be zero). Without ``cross_segment``
    the context and cross-segment gates do not exist and ``h_U = U + m . h_U(prev)``.
    """

    def __init__(self, channels: int, kernel_size: int = 3, cross_segment: bool = True):
        super().__init__()

        def gate():
            return nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)

        self.historical = gate()  # W_u, b_u
        self.cross_segment = bool(cross_segment)
        if self.cross_segment:
            self.context = gate()  # W_v, b_v
            self.cross = gate()  # W_c, b_c

    def macro(self, v: torch.Tensor, h_v: Optional[torch.Tensor]) -> torch.Tensor:
        if h_v is None:
            return v
        return v + torch.sigmoid(self.context(v)) * h_v

    def micro(self, u: torch.Tensor, h_u: Optional[torch.Tensor], h_v: Optional[torch.Tensor]) -> torch.Tensor:
        h = u
        if h_u is not None:
            h = h + torch.sigmoid(self.historical(u)) * h_u
        if h_v is not None:
            h = h + torch.sigmoid(self.cross(u)) * h_v
        return h


class USTEPModel(STModel):
    """USTEP (Tan et al., TPAMI 2025) built for one task.

    Frames are encoded one by one by the SimVP spatial encoder. Micro segments U_i
    (``delta_t`` frames) and macro segments V_i (``delta_T = T_in`` frames, sliding by
    ``delta_t``, V_i ending with U_i) go through their own recurrent-free module (``f_u``,
    ``f_v``) into one hidden space ``C' = hid_t`` (Eq. 4); the gates (Eq. 5-6) carry
    ``h_V`` and ``h_U`` from segment to segment, and ``h_U`` is decoded into the next micro
    segment. The recurrence starts at the first segment that closes a whole macro
    segment; with the default ``delta_T = T_in`` that is the last observed segment, whose
    macro segment is the whole observation (the recurrent-free view).

    ``loss`` is Algorithm 1 (teacher forced: ``x = data[:, :-delta_t]``, ``y = data[:, delta_t:]``,
    MSE over every predicted segment); ``forward`` is Algorithm 2 (observe, then roll
    out segment by segment, feeding each predicted segment back in).
    """

    def __init__(self, task, *, translator: str, hid_s: int, hid_t: int, n_s: int, n_t: int,
                 delta_t: Optional[int] = None, delta_T: Optional[int] = None, cross_segment: bool = True,
                 gate_kernel: int = 3, mlp_ratio: float = 8.0, drop: float = 0.0, drop_path: float = 0.0,
                 spatio_kernel: int = 3):
        super().__init__()
        (c, h, w), resolution = frame_geometry(task, n_s, "ustep")
        if delta_t is not None and int(delta_t) < 1:
            raise UserError(f"ustep: delta_t must be a whole number of frames >= 1 (or null for the paper's "
                            f"rule), got {delta_t}")
        if delta_T is not None and int(delta_T) < 1:
            raise UserError(f"ustep: delta_T must be a whole number of frames >= 1 (or null for T_in), got {delta_T}")
        if not isinstance(cross_segment, bool):
            raise UserError(f"ustep: cross_segment must be true or false, got {cross_segment!r}")
        self.t_in, self.frame_shape, self.hid_s = task.t_in, (c, h, w), hid_s
        # delta_t is fixed by the task the model is built for; forward may be asked for any t_out
        self.seg = segmentation(task.t_in, task.t_out, delta_t, delta_T)
        self.delta_t, self.k, self.cross_segment = self.seg.delta_t, self.seg.k, cross_segment
        options = dict(mlp_ratio=mlp_ratio, drop=drop, drop_path=drop_path, input_resolution=resolution)

        self.encoder = Encoder(c, hid_s, n_s, spatio_kernel)
        self.f_u = SegmentModule(self.delta_t, hid_s, translator, hid_t, n_t, **options)
        if cross_segment:
            self.f_v = SegmentModule(self.seg.delta_T, hid_s, translator, hid_t, n_t, **options)
        self.gates = CrossSegmentGates(hid_t, gate_kernel, cross_segment)
        self.readout = Pointwise(hid_t, self.delta_t * hid_s)
        self.decoder = Decoder(hid_s, c, n_s, spatio_kernel)

    # ------------------------------------------------------------ pieces

    def segmentation(self, t_out: int) -> Segmentation:
        return segmentation(self.t_in, t_out, self.delta_t, self.seg.delta_T)

    def encode(self, frames: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``[B, T, C, H, W]`` -> (latents ``[B, T, hid_s, H', W']``, skips ``[B, T, hid_s, H, W]``)."""
        b, t = frames.shape[:2]
        latent, skip = self.encoder(to_layout(frames.flatten(0, 1)))
        return latent.unflatten(0, (b, t)), skip.unflatten(0, (b, t))

    def decode(self, h_u: torch.Tensor, skip: torch.Tensor, frames: Optional[int] = None) -> torch.Tensor:
        """Hidden states ``[B, C', H', W']`` + skips ``[B, delta_t, ...]`` of the segment they were computed
        from -> the next segment's first ``frames`` frames (all ``delta_t`` by default)."""
        b, frames = h_u.shape[0], self.delta_t if frames is None else frames
        latent = self.readout(h_u).unflatten(1, (self.delta_t, self.hid_s))[:, :frames]
        out = self.decoder(to_layout(latent.flatten(0, 1)), to_layout(skip[:, :frames].flatten(0, 1)))
        return out.unflatten(0, (b, frames))

    def cross_step(self, u_bar, v_bar, h_u, h_v):
        """One cross segment-level step: (h_U, h_V) after closing a segment."""
        if self.cross_segment:
            h_v = self.gates.macro(v_bar, h_v)
        return self.gates.micro(u_bar, h_u, h_v), h_v

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 5 or x.shape[1] != self.t_in or tuple(x.shape[2:]) != self.frame_shape:
            raise ValueError(f"this model was built for [B, {self.t_in}, {', '.join(map(str, self.frame_shape))}] "
                             f"inputs, got {list(x.shape)}")

    # ------------------------------------------------------------ Algorithm 2

    def forward(self, x: torch.Tensor, t_out: int) -> torch.Tensor:
        """Observe ``x [B, T_in, C, H, W]``, then predict ``t_out`` frames segment by segment."""
        self._check(x)
        seg = self.segmentation(t_out)
        latent, skip = self.encode(pad_front(x, seg.pad))
        latents: List[torch.Tensor] = list(latent.split(self.delta_t, dim=1))
        skips: List[torch.Tensor] = list(skip.split(self.delta_t, dim=1))
        last = seg.n_observed + seg.n_predicted - 2  # the segment whose step predicts the final one
        h_u = h_v = None
        outputs = []
        for j in range(seg.first_step, last + 1):
            u_bar = self.f_u(latents[j])
            v_bar = self.f_v(torch.cat(latents[j - self.k + 1:j + 1], dim=1)) if self.cross_segment else None
            h_u, h_v = self.cross_step(u_bar, v_bar, h_u, h_v)
            if j < seg.n_observed - 1:
                continue  # still observing: the next segment is known, no need to decode it
            # only the frames still wanted are decoded (a reduced task needs fewer than delta_t)
            frames = self.decode(h_u, skips[j], min(self.delta_t, t_out - self.delta_t * len(outputs)))
            outputs.append(frames)
            if j < last:  # feed the prediction back as the next micro segment
                latent, skip = self.encode(frames)
                latents.append(latent)
                skips.append(skip)
        return torch.cat(outputs, dim=1)

    # ------------------------------------------------------------ Algorithm 1

    def predict_teacher_forced(self, x: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(predictions, targets) of every segment the recurrence predicts from the true frames.

        Every single-segment module runs once over all segments in parallel; only the
        gates are sequential. Targets are the frames ``delta_t`` after the inputs, up to
        the last true frame.
        """
        self._check(x)
        seg = self.segmentation(y.shape[1])
        data = torch.cat([pad_front(x, seg.pad), y], dim=1)
        last = seg.n_observed + seg.n_predicted - 2
        inputs = data[:, :(last + 1) * self.delta_t]  # data[:, :-delta_t] when delta_t divides T_out
        latent, skip = self.encode(inputs)
        u, v = partition(latent, self.delta_t, self.seg.delta_T)  # u [B, N, dt, ...], v [B, N-k+1, k*dt, ...]
        skip_u = skip.unflatten(1, (u.shape[1], self.delta_t))
        u, skip_u = u[:, seg.first_step:], skip_u[:, seg.first_step:]
        b, steps = u.shape[:2]
        u_bar = self.f_u(u.flatten(0, 1)).unflatten(0, (b, steps))
        v_bar = self.f_v(v.flatten(0, 1)).unflatten(0, (b, steps)) if self.cross_segment else None
        h_u = h_v = None
        hidden = []
        for i in range(steps):
            h_u, h_v = self.cross_step(u_bar[:, i], v_bar[:, i] if v_bar is not None else None, h_u, h_v)
            hidden.append(h_u)
        hidden = torch.stack(hidden, dim=1)
        pred = self.decode(hidden.flatten(0, 1), skip_u.flatten(0, 1))  # [B*steps, dt, C, H, W]
        pred = pred.unflatten(0, (b, steps)).flatten(1, 2)
        start = (seg.first_step + 1) * self.delta_t
        target = data[:, start:]
        return pred[:, :target.shape[1]], target

    def loss(self, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        pred, target = self.predict_teacher_forced(x, y)
        return F.mse_loss(pred, target)


def build_ustep(task, hparams, translator="tau"):
    """A :class:`USTEPModel` for ``task`` from the architecture keys of ``hparams``."""
    arch = {key: hparams[key] for key in ARCH_KEYS if key in hparams}
    return USTEPModel(task, translator=translator, **arch)
