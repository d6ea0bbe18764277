"""PredNet: each layer predicts its input (``ahat``) from a ConvLSTM state R; the rectified errors
E = [relu(Ahat - A), relu(A - Ahat)] are its output, which a conv and a 2x max-pool turn into the next
layer's target A. R is updated top-down (each layer sees its own R, E and the upsampled R above).

Follows OpenSTL v0.3.0 (``prednet_model.py`` / ``methods/prednet.py``), itself a port of the authors'
Keras code: hard-sigmoid gates (slope 0.2), tanh cell, the first layer's prediction clamped to
``pixel_max``; when extrapolating, the frame fed at a step is the prediction made one step before.
"""
from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from stbench import STModel, UserError

ACTIVATIONS = {"relu": F.relu, "tanh": torch.tanh}
WEIGHT_MODES = ("L_0", "L_all")


def hard_sigmoid(x):
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


def _conv(n_in, n_out, k):
    conv = nn.Conv2d(n_in, n_out, k, padding=(k - 1) // 2)
    nn.init.zeros_(conv.bias)  # as OpenSTL: biases start at zero, weights at PyTorch's default
    return conv


class PredNetLayer(nn.Module):
    """One level: the ConvLSTM gates of R, the prediction conv and (below the top) the next target's conv."""

    def __init__(self, stack, r_stack, r_above, stack_above, a_filt, ahat_filt, r_filt):
        super().__init__()
        n_in = 2 * stack + r_stack + r_above
        self.i, self.f, self.c, self.o = (_conv(n_in, r_stack, r_filt) for _ in range(4))
        self.ahat = _conv(r_stack, stack, ahat_filt)
        self.a = _conv(2 * stack, stack_above, a_filt) if stack_above else None


class PredNet(STModel):
    """PredNet (Lotter, Kreiman & Cox, ICLR 2017) over ``[B, T, C, H, W]`` frames."""

    def __init__(self, task, *, stack_sizes: Sequence[int], r_stack_sizes: Sequence[int], a_filt_sizes: Sequence[int],
                 ahat_filt_sizes: Sequence[int], r_filt_sizes: Sequence[int], pixel_max: float, weight_mode: str,
                 error_activation: str, a_activation: str):
        super().__init__()
        channels, height, width = task.shape
        stacks = [channels, *map(int, stack_sizes)]
        r_stacks = [channels, *map(int, r_stack_sizes)] if r_stack_sizes else stacks
        n = len(stacks)
        if len(r_stacks) != n or len(a_filt_sizes) != n - 1 or len(ahat_filt_sizes) != n or len(r_filt_sizes) != n:
            raise UserError(f"prednet: {n} layers (the frame's {channels} channels, then stack_sizes) need "
                            f"{n - 1} r_stack_sizes, {n - 1} a_filt_sizes, {n} ahat_filt_sizes and {n} r_filt_sizes; "
                            f"got {len(r_stacks) - 1}, {len(a_filt_sizes)}, {len(ahat_filt_sizes)}, {len(r_filt_sizes)}")
        scale = 2 ** (n - 1)
        if height % scale or width % scale:
            raise UserError(f"prednet halves the frame {n - 1} times, so {height}x{width} must divide by {scale}; "
                            f"use fewer stack_sizes or a task whose frames divide")
        for name, value, known in (("weight_mode", weight_mode, WEIGHT_MODES),
                                   ("error_activation", error_activation, ACTIVATIONS),
                                   ("a_activation", a_activation, ACTIVATIONS)):
            if value not in known:
                raise UserError(f"prednet: {name} '{value}' is not one of {', '.join(known)}")
        self.stacks, self.r_stacks, self.t_in = stacks, r_stacks, task.t_in
        self.pixel_max = float(pixel_max)
        self.error_activation, self.a_activation = ACTIVATIONS[error_activation], ACTIVATIONS[a_activation]
        self.layers = nn.ModuleList(
            PredNetLayer(stacks[l], r_stacks[l], r_stacks[l + 1] if l < n - 1 else 0, stacks[l + 1] if l < n - 1 else 0,
                         a_filt_sizes[l] if l < n - 1 else 0, ahat_filt_sizes[l], r_filt_sizes[l])
            for l in range(n))
        # the loss weighs layer 0's error alone (L_0) or every layer's, the upper ones by 0.1 (L_all)
        weights = [1.0] + [0.0 if weight_mode == "L_0" else 0.1] * (n - 1)
        self.register_buffer("layer_weights", torch.tensor(weights), persistent=False)

    def initial_state(self, frame):
        b, _, h, w = frame.shape
        zeros = [(frame.new_zeros(b, r, h >> l, w >> l), frame.new_zeros(b, r, h >> l, w >> l),
                  frame.new_zeros(b, 2 * s, h >> l, w >> l)) for l, (s, r) in enumerate(zip(self.stacks, self.r_stacks))]
        return [z[0] for z in zeros], [z[1] for z in zeros], [z[2] for z in zeros]

    def step(self, frame, state):
        """One time step: the prediction of ``frame`` (made before seeing it), the new state and each layer's
        mean error per clip ``[B, layers]``."""
        rs, cs, es = state
        new_r: List[torch.Tensor] = [None] * len(self.layers)
        new_c: List[torch.Tensor] = [None] * len(self.layers)
        above = None
        for l in reversed(range(len(self.layers))):
            layer = self.layers[l]
            inputs = torch.cat([rs[l], es[l]] + ([above] if above is not None else []), dim=1)
            gate_i, gate_f = hard_sigmoid(layer.i(inputs)), hard_sigmoid(layer.f(inputs))
            gate_o, cell = hard_sigmoid(layer.o(inputs)), torch.tanh(layer.c(inputs))
            new_c[l] = gate_f * cs[l] + gate_i * cell
            new_r[l] = gate_o * torch.tanh(new_c[l])
            above = F.interpolate(new_r[l], scale_factor=2, mode="nearest") if l > 0 else None
        target, new_e, errors, prediction = frame, [], [], None
        for l, layer in enumerate(self.layers):
            ahat = layer.ahat(new_r[l])
            if l == 0:
                prediction = ahat = torch.clamp(F.relu(ahat), max=self.pixel_max)
            else:
                ahat = self.a_activation(ahat)
            error = torch.cat([self.error_activation(ahat - target), self.error_activation(target - ahat)], dim=1)
            new_e.append(error)
            errors.append(error.flatten(1).mean(1))
            if layer.a is not None:
                target = F.max_pool2d(self.a_activation(layer.a(error)), 2)
        return prediction, (new_r, new_c, new_e), torch.stack(errors, dim=1)

    def forward(self, x, t_out):
        state = self.initial_state(x[:, 0])
        frame, outputs = None, []
        for t in range(x.shape[1] + t_out):
            # past the observed frames the input is the prediction made one step before (PredNet's extrapolation)
            prediction, state, _ = self.step(x[:, t] if t < x.shape[1] else frame, state)
            frame = prediction
            if t >= x.shape[1]:
                outputs.append(prediction)
        return torch.stack(outputs, dim=1)

    def loss(self, x, y, step):
        """PredNet's training loss over every frame of the clip, each frame fed: the layer-weighted mean
        rectified error, averaged over time steps 1.. (step 0 predicts from nothing and weighs 0)."""
        frames = torch.cat([x, y], dim=1)
        state = self.initial_state(frames[:, 0])
        total = 0.0
        for t in range(frames.shape[1]):
            _, state, errors = self.step(frames[:, t], state)
            if t > 0:
                total = total + (errors * self.layer_weights).sum(1).mean()
        return total / (frames.shape[1] - 1)


def build_prednet(task, hparams):
    return PredNet(task, stack_sizes=hparams["stack_sizes"], r_stack_sizes=hparams.get("r_stack_sizes") or [],
                   a_filt_sizes=hparams["a_filt_sizes"], ahat_filt_sizes=hparams["ahat_filt_sizes"],
                   r_filt_sizes=hparams["r_filt_sizes"], pixel_max=float(hparams["pixel_max"]),
                   weight_mode=str(hparams["weight_mode"]), error_activation=str(hparams["error_activation"]),
                   a_activation=str(hparams["a_activation"]))
