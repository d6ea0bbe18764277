"""A third-party plugin used by the tests: a tiny trainable model and a small dataset on disk."""
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stbench import ArrayClips, DatasetSpec, ModelSpec, MultiTaskModel, STModel, UserError, hookimpl


def hold_if_asked(phase, step):
    """For the kill -9 tests: with ``STBENCH_TEST_HOLD=<phase>:<step>`` this process, on reaching that point, writes
    ``<phase>:<step>`` to the file ``STBENCH_TEST_HOLD_REPORT`` and waits there to be killed, so the kill lands
    exactly where the test says it does."""
    if os.environ.get("STBENCH_TEST_HOLD") == f"{phase}:{step}":
        Path(os.environ["STBENCH_TEST_HOLD_REPORT"]).write_text(f"{phase}:{step}")
        while True:
            time.sleep(1)


class TinyConv(STModel):
    """Predicts every future frame from the last one with two convolutions."""

    def __init__(self, channels, width=8, nan_loss=False, fault="none", batchnorm=False):
        super().__init__()
        norm = [nn.BatchNorm2d(width)] if batchnorm else []
        # no bias before a BatchNorm: it gets no gradient but float noise, which Adam would turn into steps
        self.net = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1, bias=not batchnorm), *norm, nn.ReLU(),
                                 nn.Conv2d(width, channels, 3, padding=1))
        self.nan_loss, self.fault = nan_loss, fault
        self.trained_steps = 0  # in this process
        if fault == "warn":  # a library warning while the model is built (PyTorch's, for a zero-size tensor)
            nn.init.kaiming_uniform_(torch.empty(0, channels))

    def forward(self, x, t_out):
        if not self.training and self.trained_steps:  # the test set's evaluation (profiling comes before training)
            hold_if_asked("evaluate", 0)
        last = x[:, -1]
        frame = last + self.net(last)
        if self.fault == "wrong_shape":  # a plugin bug: one frame too few
            t_out -= 1
        if self.fault == "crash" and not self.training:
            raise RuntimeError("a bug in the plugin")
        out = frame.unsqueeze(1).expand(-1, t_out, -1, -1, -1)
        return out * float("nan") if self.fault == "nan_predictions" and not self.training else out

    def loss(self, x, y, step):
        if os.environ.get("STBENCH_TEST_INTERRUPT_AT_STEP") == str(step):
            raise KeyboardInterrupt
        hold_if_asked("train", step)
        self.trained_steps += 1
        loss = super().loss(x, y, step)
        return loss * float("nan") if self.nan_loss else loss


class NoisyTiny(TinyConv):
    """TinyConv whose eval-mode predictions add Gaussian noise (a stochastic model)."""

    stochastic = True

    def __init__(self, channels, noise=0.1, **kwargs):
        super().__init__(channels, **kwargs)
        self.noise = noise

    def forward(self, x, t_out):
        out = super().forward(x, t_out)
        return out if self.training else out + self.noise * torch.randn_like(out)


def build_noisy(task, hparams):
    return NoisyTiny(task.shape[0], **hparams)


class TinyJoint(MultiTaskModel):
    """A shared convolution with one output head per task (the multi-task contract)."""

    def __init__(self, tasks, hparams):
        super().__init__()
        channels = tasks[0].shape[0]
        self.shared = nn.Conv2d(channels, 4, 3, padding=1)
        self.heads = nn.ModuleDict({t.name: nn.Conv2d(4, channels, 3, padding=1) for t in tasks})
        self.default = tasks[0].name
        self.seen = []

    def forward(self, x, t_out, task=None):
        last = x[:, -1]
        frame = last + self.heads[task or self.default](torch.relu(self.shared(last)))
        return frame.unsqueeze(1).expand(-1, t_out, -1, -1, -1)

    def loss(self, x, y, step, task=None):
        self.seen.append(task)
        return nn.functional.mse_loss(self(x, y.shape[1], task=task), y)


def build_joint(tasks, hparams):
    assert set(hparams) == {t.name for t in tasks}
    return TinyJoint(list(tasks), hparams)


def build_tiny_joint_single(task, hparams):
    return TinyJoint([task], {task.name: hparams})


def build_tiny(task, hparams):
    return TinyConv(task.shape[0], **hparams)


def open_toy(root, split, t_in, t_out):
    path = Path(root) / "toy" / f"{split}.npy"
    if not path.exists():
        raise UserError(f"missing {path}; expected layout:\n{SPEC.layout}")
    array = np.load(path, mmap_mode="r")
    return ArrayClips(array, t_in, t_out, SPEC, scale=1 / 255, description=f"{path.name}")


SPEC = DatasetSpec(name="toy", shape=(1, 16, 16), open=open_toy, max_length=12,
                   layout="toy/{train,test}.npy: uint8 arrays [N, 12, 1, 16, 16]",
                   canonical_tasks=("toy-6-6", "toy-4-8", "toy-8-2"), validation=0.25)


@hookimpl
def stbench_register_models(register):
    register(ModelSpec(name="tiny", family="recurrent-free", build=build_tiny,
                       hparams={"smoke": {"default": {"width": 8, "lr": 0.01, "epochs": 2, "batch_size": 4,
                                                      "train_samples": None, "test_samples": None,
                                                      "nan_loss": False, "fault": "none", "batchnorm": False}}}))
    register(ModelSpec(name="tinynoisy", family="recurrent-free", build=build_noisy, samples=4,
                       hparams={"smoke": {"default": {"width": 8, "noise": 0.1, "lr": 0.01, "epochs": 2,
                                                      "batch_size": 4, "train_samples": None,
                                                      "test_samples": None}}}))
    register(ModelSpec(name="tinyjoint", family="recurrent-free", build=build_tiny_joint_single, build_joint=build_joint,
                       hparams={"smoke": {"default": {"lr": 0.01, "epochs": 2, "batch_size": 4,
                                                      "train_samples": None, "test_samples": None}}}))


@hookimpl
def stbench_register_datasets(register):
    register(SPEC)
