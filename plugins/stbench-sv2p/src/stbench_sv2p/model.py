"""SV2P (Babaeizadeh et al., ICLR 2018) as tensor2tensor's ``next_frame_sv2p`` builds it: a CDNA predictor
(a stack of convolutional LSTMs that predicts normalised convolution kernels and the masks compositing the
transformed images) conditioned on one time-invariant latent, inferred from the whole clip in training and
drawn from N(0, 1) at test time."""
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from stbench import STModel, UserError

from .ops import (SameConv2d, apply_cdna, composite, gaussian_kl, ground_truth_count, mix_count,
                  normalize_kernels)

BETA_SCHEDULES = ("constant", "linear")
# tensor2tensor's initializer for next_frame_basic_deterministic and its descendants: "uniform_unit_scaling"
# with gain 1.3, which optimize.get_variable_initializer makes variance scaling (fan_avg, uniform): Glorot
# uniform with gain sqrt(1.3). Biases start at zero, layer norms at (1, 0).
INIT_GAIN = math.sqrt(1.3)


def layer_norm(channels: int) -> nn.GroupNorm:
    """tf.contrib.layers.layer_norm on NHWC: statistics over (H, W, C) of each sample, one scale and offset per
    channel, epsilon 1e-12: GroupNorm with one group."""
    return nn.GroupNorm(1, channels, eps=1e-12)


class ConvLSTMCell(nn.Module):
    """tf.contrib.rnn.ConvLSTMCell: one 'SAME' convolution (with bias) of [input, h] to the four gates
    i, j, f, o; ``c' = sigmoid(f + 1) c + sigmoid(i) tanh(j)``, ``h' = tanh(c') sigmoid(o)``."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int = 5):
        super().__init__()
        self.channels = channels
        self.gates = SameConv2d(in_channels + channels, 4 * channels, kernel_size)

    def forward(self, x: torch.Tensor, state: Optional[Tuple[torch.Tensor, torch.Tensor]]):
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.channels, *x.shape[-2:])
            state = (zeros, zeros)
        c, h = state
        i, j, f, o = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f + 1.0) * c + torch.sigmoid(i) * torch.tanh(j)
        h = torch.tanh(c) * torch.sigmoid(o)
        return h, (c, h)


def upsample(channels: int) -> nn.ConvTranspose2d:
    """common_layers.cyclegan_upsample(method='conv2d_transpose'): a 3x3 stride-2 'valid' transposed convolution
    (with ReLU after it) whose first row and column are cut: exactly padding 1 with output padding 1."""
    return nn.ConvTranspose2d(channels, channels, 3, stride=2, padding=1, output_padding=1)


class CDNATower(nn.Module):
    """``construct_predictive_tower`` of tensor2tensor's NextFrameSv2p with ``model_options='CDNA'``.

    Encoder: 5x5/2 conv (``conv_size``), two ConvLSTMs (``lstm_size[0:2]``), 3x3/2 conv, two ConvLSTMs
    (``lstm_size[2:4]``), 3x3/2 conv, [latent concatenated], 1x1 conv, ConvLSTM ``lstm_size[4]`` at 1/8 of the
    frame. Decoder: three transposed-conv up-samplings with ConvLSTMs ``lstm_size[5:7]`` and skip connections
    from the 1/4 and 1/2 encoder maps; layer norms as the reference places them. Heads: ``num_masks`` CDNA
    kernels (a dense layer on the flattened 1/8 map), one image generated from scratch (sigmoid of a 1x1 conv)
    and ``num_masks + 1`` softmax masks (1x1 conv).
    """

    def __init__(self, channels: int, height: int, width: int, lstm_size: Sequence[int], conv_size: int,
                 num_masks: int, kernel_size: int, latent_channels: int, relu_shift: float):
        super().__init__()
        l0, l1, l2, l3, l4, l5, l6 = (int(s) for s in lstm_size)
        self.num_masks, self.kernel_size, self.relu_shift = num_masks, kernel_size, relu_shift
        self.enc0 = SameConv2d(channels, conv_size, 5, stride=2)
        self.norm1 = layer_norm(conv_size)
        self.lstm1, self.norm2 = ConvLSTMCell(conv_size, l0), layer_norm(l0)
        self.lstm2, self.norm3 = ConvLSTMCell(l0, l1), layer_norm(l1)
        self.enc1 = SameConv2d(l1, l1, 3, stride=2)
        self.lstm3, self.norm4 = ConvLSTMCell(l1, l2), layer_norm(l2)
        self.lstm4, self.norm5 = ConvLSTMCell(l2, l3), layer_norm(l3)
        self.enc2 = SameConv2d(l3, l3, 3, stride=2)
        self.enc3 = nn.Conv2d(l3 + latent_channels, l3, 1)
        self.lstm5, self.norm6 = ConvLSTMCell(l3, l4), layer_norm(l4)
        self.up1 = upsample(l4)
        self.lstm6, self.norm7 = ConvLSTMCell(l4, l5), layer_norm(l5)
        self.up2 = upsample(l5 + l1)
        self.lstm7, self.norm8 = ConvLSTMCell(l5 + l1, l6), layer_norm(l6)
        self.up3, self.norm9 = upsample(l6 + conv_size), layer_norm(l6 + conv_size)
        self.scratch = nn.Conv2d(l6 + conv_size, channels, 1)  # "convt4", a 1x1 transposed conv
        self.cdna_params = nn.Linear(l4 * (height // 8) * (width // 8), kernel_size * kernel_size * num_masks)
        self.masks = nn.Conv2d(l6 + conv_size, num_masks + 1, 1)  # "convt7"

    def forward(self, image: torch.Tensor, states: List, latent: Optional[torch.Tensor]):
        """One frame: ``image`` ``[B, C, H, W]``, the seven LSTM states (None at the first frame), the latent
        ``[B, latent_channels, H/8, W/8]`` or None. Returns the next frame and the new states."""
        s = list(states)
        enc0 = self.norm1(F.relu(self.enc0(image)))
        h1, s[0] = self.lstm1(enc0, s[0])
        h1 = self.norm2(h1)
        h2, s[1] = self.lstm2(h1, s[1])
        h2 = self.norm3(h2)
        enc1 = F.relu(self.enc1(h2))
        h3, s[2] = self.lstm3(enc1, s[2])
        h3 = self.norm4(h3)
        h4, s[3] = self.lstm4(h3, s[3])
        h4 = self.norm5(h4)
        enc2 = F.relu(self.enc2(h4))
        if latent is not None:
            enc2 = torch.cat([enc2, latent], dim=1)
        enc3 = F.relu(self.enc3(enc2))
        h5, s[4] = self.lstm5(enc3, s[4])
        h5 = self.norm6(h5)
        enc4 = F.relu(self.up1(h5))
        h6, s[5] = self.lstm6(enc4, s[5])
        h6 = torch.cat([self.norm7(h6), enc1], dim=1)
        enc5 = F.relu(self.up2(h6))
        h7, s[6] = self.lstm7(enc5, s[6])
        h7 = torch.cat([self.norm8(h7), enc0], dim=1)
        enc6 = self.norm9(F.relu(self.up3(h7)))
        k = self.kernel_size
        kernels = self.cdna_params(h5.flatten(1)).view(-1, self.num_masks, k, k)
        transformed = [torch.sigmoid(self.scratch(enc6))]
        transformed += apply_cdna(image, normalize_kernels(kernels, self.relu_shift), padding="zeros")
        masks = torch.softmax(self.masks(enc6), dim=1)
        # mask 0 keeps the input frame; masks 1..num_masks take the generated image and the first
        # num_masks - 1 CDNA images: the reference zips num_masks + 1 transformed images with num_masks
        # masks, so its last CDNA kernel never reaches the output (as in Finn et al.'s CDNA code).
        frame = composite([image] + transformed[:self.num_masks], masks)
        return frame, s


class LatentTower(nn.Module):
    """common_video.conv_latent_tower: the clip's frames stacked on channels; 3x3 convs (/2, /2, /1) with ReLU
    and layer norm (``conv_size``), then two 3x3/2 convs: the mean and ``relu(.) + min_logvar``, the log
    variance, at 1/8 of the frame."""

    def __init__(self, in_channels: int, conv_size: Sequence[int], latent_channels: int, min_logvar: float):
        super().__init__()
        c0, c1, c2 = (int(c) for c in conv_size)
        self.min_logvar = min_logvar
        self.conv1, self.norm1 = SameConv2d(in_channels, c0, 3, stride=2), layer_norm(c0)
        self.conv2, self.norm2 = SameConv2d(c0, c1, 3, stride=2), layer_norm(c1)
        self.conv3, self.norm3 = SameConv2d(c1, c2, 3), layer_norm(c2)
        self.mean = SameConv2d(c2, latent_channels, 3, stride=2)
        self.logvar = SameConv2d(c2, latent_channels, 3, stride=2)

    def forward(self, frames: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = frames.flatten(1, 2)  # [B, T*C, H, W], frame after frame (tf.concat of the unstacked frames)
        x = self.norm1(F.relu(self.conv1(x)))
        x = self.norm2(F.relu(self.conv2(x)))
        x = self.norm3(F.relu(self.conv3(x)))
        return self.mean(x), F.relu(self.logvar(x)) + self.min_logvar


def kl_weight(step: int, schedule: str, final: float, start: int, end: int) -> float:
    """common_video.beta_schedule: 0 before ``start`` (the end of the second phase), ``final`` after ``end``
    (``anneal_end``); between them ``final`` (``constant``) or the linear ramp ``final * (step - start) /
    (end - start)`` (``linear``)."""
    if schedule not in BETA_SCHEDULES:
        raise UserError(f"sv2p: latent_loss_multiplier_schedule must be one of {', '.join(BETA_SCHEDULES)}, "
                        f"got {schedule!r}")
    if step < start:
        return 0.0
    if step > end:
        return final
    if schedule == "constant":
        return final
    return final * (step - start) / max(end - start, 1)


def training_phase(step: int, first: int, second: int) -> int:
    """SV2P's three phases: 1 (``step < first``) the latent is drawn from the prior, the inference network is
    not used; 2 the posterior latent is used, its KL not yet weighted; 3 (``step >= first + second``) the
    KL term is on (with the weight schedule)."""
    return 1 if step < first else 2 if step < first + second else 3


class SV2P(STModel):
    """SV2P: the CDNA predictor and its time-invariant latent (``stochastic_model: false`` gives the
    deterministic CDNA model). ``forward`` draws the latent from N(0, 1) with torch's global generator."""

    stochastic = True
    # the latent tower gets no gradient in the first phase, nor at test time
    unused_parameters = True

    def __init__(self, task, *, lstm_size, conv_size: int, latent_conv_size, latent_channels: int,
                 latent_std_min: float, num_masks: int, dna_kernel_size: int, relu_shift: float,
                 stochastic_model: bool, num_iterations_1st_stage: int, num_iterations_2nd_stage: int,
                 latent_loss_multiplier: float, latent_loss_multiplier_schedule: str, anneal_end: int,
                 scheduled_sampling_k: float, internal_loss: bool, adam_beta1: float, adam_beta2: float,
                 adam_epsilon: float):
        super().__init__()
        channels, height, width = task.shape
        if height % 8 or width % 8:
            raise UserError(f"sv2p: frames must be a multiple of 8 high and wide (three stride-2 levels, the "
                            f"latent at 1/8); {task.name} has {height}x{width}")
        if len(lstm_size) != 7 or len(latent_conv_size) != 3:
            raise UserError(f"sv2p: lstm_size needs 7 widths and latent_conv_size 3; got {list(lstm_size)} and "
                            f"{list(latent_conv_size)}")
        if num_masks < 1 or dna_kernel_size < 1 or dna_kernel_size % 2 == 0:
            raise UserError(f"sv2p: num_masks must be >= 1 and dna_kernel_size odd; got {num_masks}, {dna_kernel_size}")
        if latent_loss_multiplier_schedule not in BETA_SCHEDULES:
            raise UserError(f"sv2p: latent_loss_multiplier_schedule must be one of {', '.join(BETA_SCHEDULES)}, "
                            f"got {latent_loss_multiplier_schedule!r}")
        if anneal_end < num_iterations_1st_stage + num_iterations_2nd_stage:
            raise UserError("sv2p: anneal_end must not come before the end of the second phase "
                            "(num_iterations_1st_stage + num_iterations_2nd_stage)")
        self.t_in, self.channels = task.t_in, channels
        self.latent_shape = (latent_channels, height // 8, width // 8)
        self.stochastic_model = bool(stochastic_model)
        self.first, self.second = int(num_iterations_1st_stage), int(num_iterations_2nd_stage)
        self.beta, self.beta_schedule = float(latent_loss_multiplier), latent_loss_multiplier_schedule
        self.anneal_end = int(anneal_end)
        self.k, self.internal_loss = float(scheduled_sampling_k), bool(internal_loss)
        self.betas, self.eps = (float(adam_beta1), float(adam_beta2)), float(adam_epsilon)
        self.tower = CDNATower(channels, height, width, lstm_size, int(conv_size), int(num_masks),
                               int(dna_kernel_size), latent_channels if self.stochastic_model else 0, float(relu_shift))
        frames = task.t_in + task.t_out
        self.latent_tower = (LatentTower(frames * channels, latent_conv_size, latent_channels, float(latent_std_min))
                             if self.stochastic_model else None)
        if self.latent_tower is None:
            self.unused_parameters = False
        self.apply(_init)

    def rollout(self, frames: torch.Tensor, steps: int, latent: Optional[torch.Tensor],
                ground_truth: int = 0) -> torch.Tensor:
        """``steps`` next-frame predictions from ``frames[:, 0]``: observed frames are fed while they last
        (``t_in``), then the predictions; in training ``ground_truth`` samples of the batch get the true frame
        instead (scheduled sampling, the 'count' mode). Returns ``[B, steps, C, H, W]``."""
        states: List = [None] * 7
        image, predictions = frames[:, 0], []
        for i in range(steps):
            prediction, states = self.tower(image, states, latent)
            predictions.append(prediction)
            if i + 1 < self.t_in:
                image = frames[:, i + 1]
            elif ground_truth and i + 1 < frames.shape[1]:
                image = mix_count(frames[:, i + 1], prediction, ground_truth)
            else:
                image = prediction
        return torch.stack(predictions, dim=1)

    def prior_latent(self, like: torch.Tensor) -> Optional[torch.Tensor]:
        if not self.stochastic_model:
            return None
        return torch.randn(like.shape[0], *self.latent_shape, device=like.device, dtype=like.dtype)

    def forward(self, x: torch.Tensor, t_out: int) -> torch.Tensor:
        steps = self.t_in + t_out - 1
        return self.rollout(x, steps, self.prior_latent(x))[:, self.t_in - 1:]

    def phase(self, step: int) -> int:
        return training_phase(step, self.first, self.second) if self.stochastic_model else 0

    def kl_weight(self, step: int) -> float:
        return kl_weight(step, self.beta_schedule, self.beta, self.first + self.second, self.anneal_end)

    def loss(self, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        frames = torch.cat([x, y], dim=1)
        steps = frames.shape[1] - 1
        kl = frames.new_zeros(())
        latent = None
        if self.stochastic_model:
            if self.phase(step) == 1:
                latent = self.prior_latent(x)  # the tower's output is replaced by N(0, 1): no KL
            else:
                mean, logvar = self.latent_tower(frames)
                latent = mean + torch.exp(logvar / 2) * torch.randn_like(mean)
                kl = gaussian_kl(mean, logvar).sum() / x.shape[0]
        predictions = self.rollout(frames, steps, latent, ground_truth_count(x.shape[0], step, self.k))
        loss = F.mse_loss(predictions[:, self.t_in - 1:], y)
        if self.internal_loss and self.t_in > 1:  # the predictions of observed frames 2..t_in as well
            loss = loss + F.mse_loss(predictions[:, :self.t_in - 1], x[:, 1:])
        # the KL is added at the first of the steps-many frame predictions, each weighted 1/steps
        return loss + self.kl_weight(step) * kl / steps

    def optimizer_param_groups(self, train_cfg):
        return [{"params": [p for p in self.parameters() if p.requires_grad], "betas": self.betas, "eps": self.eps}]

    def record_notes(self) -> Dict[str, Any]:
        if not self.stochastic_model:
            return {"predictions": "deterministic CDNA (stochastic_model false)"}
        return {"predictions": "one latent per clip drawn from N(0, 1) (the prior) with torch's global generator",
                "phases": f"latent from the prior until step {self.first}, the posterior after it; KL weight "
                          f"{self.beta:g} ({self.beta_schedule}) from step {self.first + self.second}"
                          + (f" reached at {self.anneal_end}" if self.beta_schedule == "linear" else "")}


def _init(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight, gain=INIT_GAIN)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


HPARAMS = ("lstm_size", "conv_size", "latent_conv_size", "latent_channels", "latent_std_min", "num_masks",
           "dna_kernel_size", "relu_shift", "stochastic_model", "num_iterations_1st_stage",
           "num_iterations_2nd_stage", "latent_loss_multiplier", "latent_loss_multiplier_schedule", "anneal_end",
           "scheduled_sampling_k", "internal_loss", "adam_beta1", "adam_beta2", "adam_epsilon")


def build_sv2p(task, hparams) -> SV2P:
    return SV2P(task, **{key: hparams[key] for key in HPARAMS})
