"""What the recurrent predictors share: frame patches, teacher-forcing schedules and the rollout loop."""
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from stbench import STModel, UserError


def gate_conv(in_channels: int, out_channels: int, kernel_size: int, grid: Tuple[int, int],
              layer_norm: bool) -> nn.Module:
    """A bias-free 'same' convolution, followed by LayerNorm over (C, H, W) when ``layer_norm``."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
    return nn.Sequential(conv, nn.LayerNorm([out_channels, *grid])) if layer_norm else conv


@dataclass(frozen=True)
class ScheduledSampling:
    """Teacher forcing of the future inputs that fades out linearly (Bengio et al. 2015, as in PredRNN).

    At optimizer step ``s`` (counted from 0) each future input frame of each sample is the
    ground truth with probability ``eta(s) = start_value - changing_rate * (s + 1)``, floored at 0,
    and the model's own previous prediction otherwise; from ``stop_iter`` on, ``eta`` is 0.
    Observed frames are always the ground truth.
    """

    start_value: float = 1.0
    changing_rate: float = 2e-5
    stop_iter: int = 50000

    def eta(self, step: int) -> float:
        if step >= self.stop_iter:
            return 0.0
        return max(0.0, self.start_value - self.changing_rate * (step + 1))

    def truth_mask(self, batch: int, t_in: int, steps: int, step: int) -> torch.Tensor:
        """``[batch, steps]``: 1 where input ``t`` is the true frame, 0 where it is the previous prediction."""
        mask = (torch.rand(batch, steps) < self.eta(step)).float()
        mask[:, :t_in] = 1.0
        return mask


@dataclass(frozen=True)
class ReverseScheduledSampling:
    """PredRNN-v2's curriculum: observed inputs go from half predicted to all true, future inputs the reverse.

    Until ``step_1`` both probabilities are 0.5. Between ``step_1`` and ``step_2`` the chance that an
    observed input (frames 1..T_in-1) is the true frame rises as ``1 - 0.5 exp(-(s - step_1) / exp_alpha)``
    and the chance that a future input is the true frame falls linearly from 0.5 to 0. From
    ``step_2`` on, observed inputs are always true and future inputs always predicted (= inference).
    The first frame is always true.
    """

    step_1: int = 25000
    step_2: int = 50000
    exp_alpha: float = 5000

    def rates(self, step: int) -> Tuple[float, float]:
        """(probability an observed input is true, probability a future input is true) at ``step``."""
        if step < self.step_1:
            return 0.5, 0.5
        if step < self.step_2:
            observed = 1.0 - 0.5 * math.exp(-float(step - self.step_1) / self.exp_alpha)
            future = 0.5 - 0.5 * (step - self.step_1) / (self.step_2 - self.step_1)
            return observed, future
        return 1.0, 0.0

    def truth_mask(self, batch: int, t_in: int, steps: int, step: int) -> torch.Tensor:
        observed, future = self.rates(step)
        draws = torch.rand(batch, steps)
        mask = torch.cat([draws[:, :t_in] < observed, draws[:, t_in:] < future], dim=1).float()
        mask[:, 0] = 1.0
        return mask


class RecurrentPredictor(STModel):
    """A stack of recurrent cells run frame by frame over patches, with a 1x1 ``conv_last`` read-out.

    Frames ``[B, T, C, H, W]`` are split into ``patch_size`` x ``patch_size`` patches
    (``[B, T, C*p*p, H/p, W/p]``) before the stack and reassembled after. Input ``t`` yields a
    prediction of frame ``t + 1``; ``T_in + T_out - 1`` steps cover every target. At inference the
    inputs after the observed frames are the model's own predictions; in training ``sampling``
    decides, per sample and step, whether an input is the true frame or the previous prediction.

    Subclasses build their cells after ``super().__init__`` and implement
    :meth:`initial_state` and :meth:`step`.
    """

    def __init__(self, task, *, patch_size: int, top_channels: int, sampling):
        super().__init__()
        if task.shape is None:
            raise ValueError(f"task {task} has no frame shape; resolve it against its dataset first")
        c, h, w = task.shape
        if h % patch_size or w % patch_size:
            raise UserError(f"patch_size {patch_size} must divide the frame size; task {task} has {h}x{w} "
                            f"frames. Choose another (--set patch_size=...)")
        self.patch_size = patch_size
        self.frame_channels = c * patch_size ** 2
        self.grid = (h // patch_size, w // patch_size)
        self.sampling = sampling
        self.conv_last = nn.Conv2d(top_channels, self.frame_channels, kernel_size=1, bias=False)

    @property
    def compile_targets(self):
        """``--compile on`` compiles each cell of ``self.cells`` (every subclass keeps its stack there), not the
        unrolled loop: one compiled step reused for all frames, whatever T_in and T_out."""
        return tuple(f"cells.{index}" for index in range(len(self.cells)))

    # -- what a model family defines -------------------------------------------------------------
    def initial_state(self, frame: torch.Tensor):
        """The state before the first input ``frame`` (``[B, C*p*p, h, w]``), usually zeros."""
        raise NotImplementedError

    def step(self, frame: torch.Tensor, state, with_aux: bool):
        """One input frame through the stack: ``(top hidden state, new state, aux)``.

        ``aux`` is a training-only term (PredRNN-v2's decoupling loss) or ``None``; it is asked
        for only when ``with_aux``.
        """
        raise NotImplementedError

    # -- shared machinery --------------------------------------------------------------------------
    def to_patches(self, frames: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(frames.flatten(0, 1), self.patch_size).unflatten(0, frames.shape[:2])

    def from_patches(self, patches: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(patches.flatten(0, 1), self.patch_size).unflatten(0, patches.shape[:2])

    def rollout(self, frames: torch.Tensor, steps: int, truth_mask: Optional[torch.Tensor] = None,
                with_aux: bool = False) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Predictions of patch frames ``1..steps`` and the aux terms of every step.

        Without ``truth_mask`` the inputs are ``frames`` (the observed ones) and then the model's
        own predictions. With it, input ``t > 0`` is ``frames[:, t]`` where ``truth_mask[:, t]``
        is 1 and the previous prediction where it is 0.
        """
        state = self.initial_state(frames[:, 0])
        predictions, aux = [], []
        for t in range(steps):
            if t == 0:
                net = frames[:, 0]
            elif truth_mask is None:
                net = frames[:, t] if t < frames.shape[1] else predictions[-1]
            else:
                use_truth = truth_mask[:, t].view(-1, 1, 1, 1)
                net = use_truth * frames[:, t] + (1 - use_truth) * predictions[-1]
            hidden, state, extra = self.step(net, state, with_aux)
            predictions.append(self.conv_last(hidden))
            if extra is not None:
                aux.append(extra)
        return torch.stack(predictions, dim=1), aux

    def forward(self, x: torch.Tensor, t_out: int) -> torch.Tensor:
        """Observe ``x``, then feed back predictions only; returns the last ``t_out`` predictions."""
        predictions, _ = self.rollout(self.to_patches(x), x.shape[1] + t_out - 1)
        return self.from_patches(predictions[:, -t_out:])

    def teacher_forced(self, x: torch.Tensor, y: torch.Tensor, step: int, with_aux: bool = False):
        """(MSE over all ``T_in + T_out - 1`` next-frame targets, aux terms) under the sampling schedule."""
        frames = self.to_patches(torch.cat([x, y], dim=1))
        steps = frames.shape[1] - 1
        mask = self.sampling.truth_mask(x.shape[0], x.shape[1], steps, step).to(frames.device, frames.dtype)
        predictions, aux = self.rollout(frames, steps, mask, with_aux)
        # patches are a permutation of pixels, so the MSE equals the per-pixel MSE of the frames
        return F.mse_loss(predictions, frames[:, 1:]), aux

    def loss(self, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        return self.teacher_forced(x, y, step)[0]


def hidden_sizes(num_hidden) -> List[int]:
    """``num_hidden`` as a list of layer widths (one int means one layer)."""
    sizes = [int(num_hidden)] if isinstance(num_hidden, int) else [int(n) for n in num_hidden]
    if not sizes or min(sizes) < 1:
        raise UserError(f"num_hidden must list one positive width per layer, got {num_hidden!r}")
    return sizes


def scheduled_sampling(hparams) -> ScheduledSampling:
    return ScheduledSampling(start_value=float(hparams["sampling_start_value"]),
                             changing_rate=float(hparams["sampling_changing_rate"]),
                             stop_iter=int(hparams["sampling_stop_iter"]))


def reverse_scheduled_sampling(hparams) -> ReverseScheduledSampling:
    return ReverseScheduledSampling(step_1=int(hparams["r_sampling_step_1"]),
                                    step_2=int(hparams["r_sampling_step_2"]),
                                    exp_alpha=float(hparams["r_exp_alpha"]))


def stack_inputs(frame_channels: int, sizes: Sequence[int]) -> List[int]:
    """Input channels of each layer: the patch channels, then the layer below's width."""
    return [frame_channels, *sizes[:-1]]
