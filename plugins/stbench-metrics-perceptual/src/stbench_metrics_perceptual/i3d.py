"""Inception-v1 I3D (Carreira & Zisserman 2017) with the module names of piergiaj/pytorch-i3d, so the
``i3d_pretrained_400.pt`` state dict (VideoGPT's Kinetics-400 port) loads unchanged; or the stylegan-v
TorchScript detector. Both map ``[B, 3, T, 224, 224]`` in [-1, 1] to 400 logits averaged over time."""
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from stbench import UserError

from .weights import is_torchscript, load_state_dict, load_strict


def pad_same(x, kernel, stride):
    """TensorFlow 'SAME' padding of ``[B, C, T, H, W]`` (the odd pixel goes to the far side)."""
    pads = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        total = max(k - (s if size % s == 0 else size % s), 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class Unit3D(nn.Module):
    """Conv3d (same padding) + BatchNorm3d + ReLU; parameter names ``conv3d.*``, ``bn.*``."""

    def __init__(self, in_channels, out_channels, kernel=(1, 1, 1), stride=(1, 1, 1),
                 batch_norm=True, activation=True, bias=False):
        super().__init__()
        self.kernel, self.stride, self.activation = tuple(kernel), tuple(stride), activation
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, padding=0, bias=bias)
        # eps as in VideoGPT's loader of i3d_pretrained_400.pt (the TF original used 1e-3)
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-5, momentum=0.001) if batch_norm else None

    def forward(self, x):
        x = self.conv3d(pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.activation else x


class MaxPool3dSame(nn.Module):
    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x):
        # zero padding, as pytorch-i3d: the inputs follow a ReLU, so it equals TF's -inf padding
        return F.max_pool3d(pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionModule(nn.Module):
    def __init__(self, in_channels, widths):
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3 = widths
        self.b0 = Unit3D(in_channels, w0)
        self.b1a = Unit3D(in_channels, w1a)
        self.b1b = Unit3D(w1a, w1b, (3, 3, 3))
        self.b2a = Unit3D(in_channels, w2a)
        self.b2b = Unit3D(w2a, w2b, (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, w3)

    def forward(self, x):
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class InceptionI3d(nn.Module):
    """The Kinetics-400 I3D classifier up to its logits, averaged over the remaining time steps."""

    def __init__(self, num_classes=400):
        super().__init__()
        layers = [
            ("Conv3d_1a_7x7", Unit3D(3, 64, (7, 7, 7), (2, 2, 2))),
            ("MaxPool3d_2a_3x3", MaxPool3dSame((1, 3, 3), (1, 2, 2))),
            ("Conv3d_2b_1x1", Unit3D(64, 64)),
            ("Conv3d_2c_3x3", Unit3D(64, 192, (3, 3, 3))),
            ("MaxPool3d_3a_3x3", MaxPool3dSame((1, 3, 3), (1, 2, 2))),
            ("Mixed_3b", InceptionModule(192, (64, 96, 128, 16, 32, 32))),
            ("Mixed_3c", InceptionModule(256, (128, 128, 192, 32, 96, 64))),
            ("MaxPool3d_4a_3x3", MaxPool3dSame((3, 3, 3), (2, 2, 2))),
            ("Mixed_4b", InceptionModule(480, (192, 96, 208, 16, 48, 64))),
            ("Mixed_4c", InceptionModule(512, (160, 112, 224, 24, 64, 64))),
            ("Mixed_4d", InceptionModule(512, (128, 128, 256, 24, 64, 64))),
            ("Mixed_4e", InceptionModule(512, (112, 144, 288, 32, 64, 64))),
            ("Mixed_4f", InceptionModule(528, (256, 160, 320, 32, 128, 128))),
            ("MaxPool3d_5a_2x2", MaxPool3dSame((2, 2, 2), (2, 2, 2))),
            ("Mixed_5b", InceptionModule(832, (256, 160, 320, 32, 128, 128))),
            ("Mixed_5c", InceptionModule(832, (384, 192, 384, 48, 128, 128))),
        ]
        self.endpoints = [name for name, _ in layers]
        for name, layer in layers:
            self.add_module(name, layer)
        self.avg_pool = nn.AvgPool3d(kernel_size=(2, 7, 7), stride=(1, 1, 1))
        self.logits = Unit3D(1024, num_classes, batch_norm=False, activation=False, bias=True)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x):
        for name in self.endpoints:
            x = getattr(self, name)(x)
        return self.logits(self.avg_pool(x)).mean(dim=(3, 4)).mean(dim=2)


class TorchScriptI3D(nn.Module):
    """The stylegan-v ``i3d_torchscript.pt`` detector, fed inputs already resized and scaled to [-1, 1]."""

    def __init__(self, detector):
        super().__init__()
        self.detector = detector

    def forward(self, x):
        return self.detector(x, rescale=False, resize=False, return_features=True)


def load_i3d(path: Path, may_run_code: bool = False) -> nn.Module:
    """An I3D feature extractor from either weight format.

    A TorchScript file runs code it holds when loaded, so it is loaded only with ``may_run_code``
    (the user named it, or StyleGAN-V's own download left it in dnnlib's cache); a state dict is read
    with ``weights_only=True`` and never runs code.
    """
    if is_torchscript(path):
        if not may_run_code:
            raise UserError(f"{path} is a TorchScript archive, and loading one runs code it holds; stbench loads "
                            "it only when you name it (fvd_i3d=PATH or STBENCH_FVD_I3D) or it is in dnnlib's cache")
        with warnings.catch_warnings():  # TorchScript is deprecated, but it is the format stylegan-v ships
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                detector = torch.jit.load(str(path), map_location="cpu")
            except Exception as error:
                raise UserError(f"cannot load the TorchScript I3D {path}: {type(error).__name__}: "
                                f"{(str(error).strip().splitlines() or [''])[0][:300]}") from None
        return TorchScriptI3D(detector.eval()).eval()
    model = InceptionI3d()
    state = load_state_dict(path, "I3D")
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state.setdefault(key, value)  # files saved by old torch lack these counters
    load_strict(model, state, path, "pytorch-i3d InceptionI3d (i3d_pretrained_400.pt)")
    return model
