"""PhyDNet (Le Guen & Thome, CVPR 2020): a physical branch (PhyCell) beside a residual ConvLSTM branch."""
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from stbench import STModel, UserError

from .moments import moment_loss

GROUPS = 16  # GroupNorm groups of every encoder / decoder block, as in the reference


class ConvBlock(nn.Module):
    """3x3 convolution (transposed when ``up``), GroupNorm(16), LeakyReLU(0.2): DCGAN's block."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, up: bool = False):
        super().__init__()
        if up:
            self.conv = nn.ConvTranspose2d(in_channels, out_channels, 3, stride, padding=1, output_padding=stride - 1)
        else:
            self.conv = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1)
        self.norm = nn.GroupNorm(GROUPS, out_channels)

    def forward(self, x):
        return F.leaky_relu(self.norm(self.conv(x)), 0.2)


class FrameEncoder(nn.Module):
    """The shared encoder E: frames ``[B, C, H, W]`` to ``[B, 2 * width, H / p, W / p]``."""

    def __init__(self, channels: int, width: int, patch_size: int):
        super().__init__()
        self.c1 = ConvBlock(channels, width, 2)
        self.c2 = ConvBlock(width, width, 1)
        self.c3 = ConvBlock(width, 2 * width, patch_size // 2)

    def forward(self, x):
        return self.c3(self.c2(self.c1(x)))


class FrameDecoder(nn.Module):
    """The shared decoder D: ``[B, 2 * width, H / p, W / p]`` to frame logits ``[B, C, H, W]``."""

    def __init__(self, channels: int, width: int, patch_size: int):
        super().__init__()
        self.upc1 = ConvBlock(2 * width, width, 2, up=True)
        self.upc2 = ConvBlock(width, width, 1, up=True)
        stride = patch_size // 2
        self.upc3 = nn.ConvTranspose2d(width, channels, 3, stride, padding=1, output_padding=stride - 1)

    def forward(self, x):
        return self.upc3(self.upc2(self.upc1(x)))


class BranchEncoder(nn.Module):
    """A branch's own encoder (E_p or E_r): two 3x3 blocks, ``features`` to ``width`` channels."""

    def __init__(self, features: int, width: int):
        super().__init__()
        self.c1 = ConvBlock(features, width, 1)
        self.c2 = ConvBlock(width, width, 1)

    def forward(self, x):
        return self.c2(self.c1(x))


class BranchDecoder(nn.Module):
    """A branch's own decoder (D_p or D_r): two transposed 3x3 blocks, ``width`` to ``features`` channels."""

    def __init__(self, features: int, width: int):
        super().__init__()
        self.upc1 = ConvBlock(width, width, 1, up=True)
        self.upc2 = ConvBlock(width, features, 1, up=True)

    def forward(self, x):
        return self.upc2(self.upc1(x))


class PhyCell(nn.Module):
    """One PhyCell: a physical prediction ``h~ = h + Phi(h)`` corrected towards the observation.

    ``Phi`` is a ``k x k`` convolution to ``k*k`` channels (each filter tied by the moment loss to one
    partial derivative), GroupNorm(k) and a 1x1 convolution back; the correction is a Kalman-like
    gain ``K = sigmoid(conv3x3([E(u), h]))``: ``h' = h~ + K * (E(u) - h~)``.
    """

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        filters = kernel_size ** 2
        self.phi = nn.Sequential(nn.Conv2d(channels, filters, kernel_size, padding=kernel_size // 2),
                                 nn.GroupNorm(kernel_size, filters),
                                 nn.Conv2d(filters, channels, 1))
        self.gate = nn.Conv2d(2 * channels, channels, 3, padding=1)

    def forward(self, encoded, hidden):
        gain = torch.sigmoid(self.gate(torch.cat([encoded, hidden], dim=1)))
        predicted = hidden + self.phi(hidden)
        return predicted + gain * (encoded - predicted)


class ConvLSTMCell(nn.Module):
    """A ConvLSTM cell with biased gates (one convolution of ``[x, h]`` to the i, f, o, g gates)."""

    def __init__(self, in_channels: int, hidden: int, kernel_size: int):
        super().__init__()
        self.hidden = hidden
        self.conv = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel_size, padding=kernel_size // 2)

    def forward(self, x, state):
        h, c = state
        i, f, o, g = torch.split(self.conv(torch.cat([x, h], dim=1)), self.hidden, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


State = Tuple[torch.Tensor, List[Tuple[torch.Tensor, torch.Tensor]]]


class PhyDNet(STModel):
    """PhyDNet: frames are encoded once (E), then split into a physical branch (E_p, PhyCell, D_p) and a
    residual branch (E_r, ConvLSTM stack, D_r) whose decoded features add up before the shared decoder
    D and a sigmoid. Input ``t`` yields frame ``t + 1``; inference observes ``T_in`` frames and then
    feeds back its own predictions.

    Training (:meth:`loss`) sums the per-frame MSE of all ``T_in + T_out - 1`` next-frame predictions
    and the moment constraint on PhyCell's filters. The future inputs are all true frames (teacher
    forcing) with probability ``max(0, 1 - epoch * teacher_forcing_decay)``, drawn once per batch,
    else all the model's own predictions.
    """

    def __init__(self, task, *, patch_size: int, enc_channels: int, hid_channels: int, phycell_kernel: int,
                 convlstm_hidden: Sequence[int], convlstm_kernel: int, teacher_forcing_decay: float):
        super().__init__()
        c, h, w = check_sizes(task, patch_size, enc_channels, hid_channels, phycell_kernel, convlstm_hidden,
                              convlstm_kernel, teacher_forcing_decay)
        features = 2 * enc_channels
        self.encoder = FrameEncoder(c, enc_channels, patch_size)
        self.phys_encoder = BranchEncoder(features, hid_channels)
        self.resid_encoder = BranchEncoder(features, hid_channels)
        self.phycell = PhyCell(hid_channels, phycell_kernel)
        inputs = [hid_channels, *convlstm_hidden[:-1]]
        self.convlstm = nn.ModuleList(ConvLSTMCell(n_in, n, convlstm_kernel) for n_in, n in zip(inputs, convlstm_hidden))
        self.phys_decoder = BranchDecoder(features, hid_channels)
        self.resid_decoder = BranchDecoder(features, hid_channels)
        self.decoder = FrameDecoder(c, enc_channels, patch_size)
        self.hid_channels = hid_channels
        self.convlstm_hidden = list(convlstm_hidden)
        self.teacher_forcing_decay = float(teacher_forcing_decay)
        self.teacher_forcing_ratio = 1.0  # epoch 0

    def on_epoch_start(self, epoch: int) -> None:
        self.teacher_forcing_ratio = max(0.0, 1.0 - epoch * self.teacher_forcing_decay)

    def initial_state(self, frame: torch.Tensor) -> State:
        """Zeros for PhyCell and every ConvLSTM layer, at the encoder's resolution."""
        b = frame.shape[0]
        h, w = self.grid(frame)
        return (frame.new_zeros(b, self.hid_channels, h, w),
                [(frame.new_zeros(b, n, h, w), frame.new_zeros(b, n, h, w)) for n in self.convlstm_hidden])

    def grid(self, frame: torch.Tensor) -> Tuple[int, int]:
        stride = self.encoder.c1.conv.stride[0] * self.encoder.c3.conv.stride[0]
        return frame.shape[-2] // stride, frame.shape[-1] // stride

    def step(self, frame: torch.Tensor, state: State) -> Tuple[torch.Tensor, State]:
        """One input frame ``[B, C, H, W]``: (the predicted next frame, the new state)."""
        physical, lstm = state
        features = self.encoder(frame)
        physical = self.phycell(self.phys_encoder(features), physical)
        x, lstm = self.resid_encoder(features), list(lstm)
        for layer, cell in enumerate(self.convlstm):
            lstm[layer] = cell(x, lstm[layer])
            x = lstm[layer][0]
        mixed = self.phys_decoder(physical) + self.resid_decoder(x)
        return torch.sigmoid(self.decoder(mixed)), (physical, lstm)

    def forward(self, x: torch.Tensor, t_out: int) -> torch.Tensor:
        state = self.initial_state(x[:, 0])
        for t in range(x.shape[1] - 1):
            _, state = self.step(x[:, t], state)
        frame, predictions = x[:, -1], []
        for _ in range(t_out):
            frame, state = self.step(frame, state)
            predictions.append(frame)
        return torch.stack(predictions, dim=1)

    def loss(self, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        teacher_forcing = bool(torch.rand(()) < self.teacher_forcing_ratio)
        state = self.initial_state(x[:, 0])
        targets = torch.cat([x[:, 1:], y], dim=1)
        outputs, frame = [], x[:, 0]
        for t in range(targets.shape[1]):
            if t < x.shape[1]:
                frame = x[:, t]
            elif teacher_forcing:
                frame = y[:, t - x.shape[1]]
            frame, state = self.step(frame, state)
            outputs.append(frame)
        per_frame = (torch.stack(outputs, dim=1) - targets).pow(2).mean(dim=(0, 2, 3, 4))
        return per_frame.sum() + moment_loss(self.phycell.phi[0].weight)


def check_sizes(task, patch_size, enc_channels, hid_channels, phycell_kernel, convlstm_hidden, convlstm_kernel,
                teacher_forcing_decay):
    """The frame shape ``(C, H, W)``; a UserError line for any size PhyDNet cannot be built with."""
    if task.shape is None:
        raise ValueError(f"task {task} has no frame shape; resolve it against its dataset first")
    c, h, w = task.shape
    if patch_size not in (2, 4):
        raise UserError(f"phydnet's encoder downsamples frames by 2 or 4, so patch_size must be 2 or 4, "
                        f"got {patch_size} (--set patch_size=4)")
    if h % patch_size or w % patch_size:
        raise UserError(f"patch_size {patch_size} must divide the frame size; task {task} has {h}x{w} frames. "
                        f"Choose another (--set patch_size=2)")
    for name, value in (("enc_channels", enc_channels), ("hid_channels", hid_channels)):
        if value < GROUPS or value % GROUPS:
            raise UserError(f"phydnet's {name} must be a positive multiple of {GROUPS} (GroupNorm with "
                            f"{GROUPS} groups), got {value}")
    if phycell_kernel < 1 or phycell_kernel % 2 == 0:
        raise UserError(f"phydnet's phycell_kernel must be an odd number >= 1, got {phycell_kernel}")
    if convlstm_kernel < 1 or convlstm_kernel % 2 == 0:
        raise UserError(f"phydnet's convlstm_kernel must be an odd number >= 1, got {convlstm_kernel}")
    if not convlstm_hidden or min(convlstm_hidden) < 1:
        raise UserError(f"phydnet's convlstm_hidden must list one positive width per layer, got {convlstm_hidden}")
    if convlstm_hidden[-1] != hid_channels:
        raise UserError(f"phydnet adds the top ConvLSTM layer to PhyCell's state, so convlstm_hidden must end "
                        f"with hid_channels ({hid_channels}), got {list(convlstm_hidden)}")
    if teacher_forcing_decay < 0:
        raise UserError(f"phydnet's teacher_forcing_decay must be >= 0, got {teacher_forcing_decay}")
    return c, h, w


def build_phydnet(task, hparams) -> PhyDNet:
    hidden = hparams["convlstm_hidden"]
    hidden = [int(hidden)] if isinstance(hidden, int) else [int(n) for n in hidden]
    return PhyDNet(task, patch_size=int(hparams["patch_size"]), enc_channels=int(hparams["enc_channels"]),
                   hid_channels=int(hparams["hid_channels"]), phycell_kernel=int(hparams["phycell_kernel"]),
                   convlstm_hidden=hidden, convlstm_kernel=int(hparams["convlstm_kernel"]),
                   teacher_forcing_decay=float(hparams["teacher_forcing_decay"]))
