"""DMVFN's VGG perceptual loss: VGG19's feature layers (torchvision's layout, plain torch) with ImageNet weights
found in the usual caches, never random ones."""
import os
from pathlib import Path
from typing import Optional, Tuple

import torch
from torch import nn

from stbench import UserError

VGG19_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's ImageNet VGG19, named as torch.hub caches it
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILE}"
WEIGHTS_ENV = "STBENCH_VGG19_WEIGHTS"
# VGG19's feature layers up to relu5_1 in torchvision's numbering: a width is a 3x3 conv + ReLU (two
# indices), "M" a 2x2 max-pool (one index), so the last ReLU is features.29
LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512)
# the ReLU outputs compared (relu1_1, relu2_1, relu3_1, relu4_1, relu5_1) and their weights, as OpenSTL's
# VGGPerceptualLoss (after the authors' code); each term is further scaled by 0.1
TAPS = {1: 1 / 2.6, 6: 1 / 4.8, 11: 1 / 3.7, 20: 1 / 5.6, 29: 10 / 1.5}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def hub_checkpoints() -> Path:
    """torch.hub's checkpoint folder: $TORCH_HOME/hub, else $XDG_CACHE_HOME/torch/hub, else ~/.cache/torch/hub."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_vgg19(explicit: str = "") -> Tuple[Optional[Path], str]:
    """Where VGG19's ImageNet weights are: ``(path, how it was found)``, or ``(None, where they were looked for)``.

    A path given as the ``vgg_weights`` setting, else in ``$STBENCH_VGG19_WEIGHTS``, must exist (asking for a
    file that is not there is an error); otherwise torch.hub's cache is looked in.
    """
    for value, origin in ((explicit, "the vgg_weights setting"), (os.environ.get(WEIGHTS_ENV, ""), f"${WEIGHTS_ENV}")):
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise UserError(f"dmvfn: {origin} names {path}, which is not a file; give the path of "
                                f"torchvision's {VGG19_FILE} ({VGG19_URL})")
            return path, origin
    cached = hub_checkpoints() / VGG19_FILE
    if cached.is_file():
        return cached, "the torch hub cache"
    return None, f"{cached} (torch hub cache), ${WEIGHTS_ENV} and the vgg_weights setting"


class VGG19Features(nn.Module):
    """VGG19's ``features`` up to relu5_1, frozen; :meth:`distance` is DMVFN's perceptual term."""

    def __init__(self):
        super().__init__()
        layers, channels = [], 3
        for width in LAYOUT:
            if width == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU()]
                channels = width
        self.features = nn.Sequential(*layers)
        # ImageNet normalisation as x * (1 / std) + (-mean / std), the 1x1 convolution OpenSTL applies
        mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        self.register_buffer("scale", 1 / std, persistent=False)
        self.register_buffer("shift", -mean / std, persistent=False)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def load(cls, path) -> "VGG19Features":
        """The features with the weights of ``path`` (a state dict as torchvision saves VGG19; its classifier
        and the layers past relu5_1 are not used). Read as weights only: the file cannot run code."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise UserError(f"dmvfn: cannot read VGG19 weights {path}: {type(error).__name__}: "
                            f"{str(error).splitlines()[0] if str(error) else ''}") from None
        vgg = cls()
        own = vgg.state_dict()
        if not isinstance(state, dict):
            raise UserError(f"dmvfn: {path} is not a state dict of torchvision's VGG19")
        for key, value in own.items():
            found = state.get(key)
            if not torch.is_tensor(found) or found.shape != value.shape:
                got = "missing" if found is None else f"shape {tuple(getattr(found, 'shape', ()))}"
                raise UserError(f"dmvfn: {path} is not torchvision's VGG19 ({key}: {got}, expected "
                                f"{tuple(value.shape)}); use {VGG19_FILE} ({VGG19_URL})")
        vgg.load_state_dict({key: state[key] for key in own})
        return vgg

    def distance(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Weighted mean absolute differences of the five ReLU stages, for frames in [0, 1] (1 or 3 channels)."""
        if pred.shape[1] == 1:
            pred, target = pred.repeat(1, 3, 1, 1), target.repeat(1, 3, 1, 1)
        a = pred * self.scale + self.shift
        with torch.no_grad():
            b = target * self.scale + self.shift
        total = 0.0
        for index, layer in enumerate(self.features):
            a = layer(a)
            with torch.no_grad():
                b = layer(b)
            if index in TAPS:
                total = total + TAPS[index] * (a - b).abs().mean() * 0.1
        return total
