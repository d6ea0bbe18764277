"""stbench metric plugin: LPIPS and FVD from pretrained weights the user names.

Weights are never downloaded and never random: without them a metric reports ``None`` and its
``unavailable_reason`` (the run record and leaderboard show "n/a" and why).

Where weights are looked for, first match wins:

- lpips trunk: metric option ``lpips_alexnet``, env ``STBENCH_LPIPS_ALEXNET``, then
  ``$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth`` (torchvision's ImageNet AlexNet).
- lpips linear layers: option ``lpips_linear``, env ``STBENCH_LPIPS_LINEAR``, then
  ``lpips/weights/v0.1/alex.pth`` of an installed ``lpips`` (``pip install --no-deps lpips==0.1.4``;
  read as a file, never imported: the package imports torchvision).
- fvd: option ``fvd_i3d``, env ``STBENCH_FVD_I3D``, then ``i3d_torchscript.pt`` or
  ``i3d_pretrained_400.pt`` in ``$TORCH_HOME/hub/checkpoints``.
"""
from stbench import MetricSpec, hookimpl

from .fvd import build_fvd
from .lpips import build_lpips

METRICS = [
    MetricSpec(name="lpips", build=build_lpips, higher_is_better=False,
               description="LPIPS v0.1, AlexNet trunk, frames clipped and scaled to [-1, 1], grey repeated to RGB"),
    MetricSpec(name="fvd", build=build_fvd, higher_is_better=False,
               description="Frechet Video Distance of Kinetics-400 I3D logits over the predicted clips of the "
                           "test set (224x224 bilinear, clips under 10 frames padded with their last frame)"),
]


@hookimpl
def stbench_register_metrics(register):
    for spec in METRICS:
        register(spec)
