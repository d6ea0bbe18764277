"""stbench metric plugin: LPIPS and FVD from the pretrained weights the user already has.

Weights are never downloaded and never random: without them a metric reports ``NotAvailable`` with
the reason (the run record and leaderboard show "n/a" and why). ``MetricSpec.weight_files`` lists the
file each metric would use, where it was found, or what is missing and how to get it; each metric's
``provenance()`` names the exact files (and their sha256) behind its numbers.

Where weights are looked for, first match wins (``~`` is $HOME; the torch hub folder is
$TORCH_HOME/hub, else $XDG_CACHE_HOME/torch/hub, else ~/.cache/torch/hub, as torch.hub resolves it):

- lpips trunk (torchvision's ImageNet AlexNet): metric option ``lpips_alexnet``, env
  ``STBENCH_LPIPS_ALEXNET``, then ``<torch hub>/checkpoints/alexnet-owt-7be5be79.pth``.
- lpips v0.1 linear layers: option ``lpips_linear``, env ``STBENCH_LPIPS_LINEAR``, then
  ``lpips/weights/v0.1/alex.pth`` of an installed ``lpips``, ``functional/image/lpips_models/alex.pth``
  of an installed ``torchmetrics`` (both read as files, never imported), then pyiqa's
  ``LPIPS_v0.1_alex-df73285e.pth`` in ``<torch hub>/pyiqa``, ``~/.cache/pyiqa`` or
  ``<torch hub>/checkpoints``.
- fvd (Kinetics-400 I3D): option ``fvd_i3d``, env ``STBENCH_FVD_I3D``, then dnnlib's
  ``$DNNLIB_CACHE_DIR/downloads`` or ``~/.cache/dnnlib/downloads/<md5>_i3d_torchscript.pt``
  (StyleGAN-V), ``~/.cache/videogpt/i3d_pretrained_400.pt`` (VideoGPT), then
  ``i3d_pretrained_400.pt`` in ``<torch hub>/checkpoints``.

Every state dict is read with ``weights_only=True``. StyleGAN-V's ``i3d_torchscript.pt`` is TorchScript:
loading it runs code it holds, so it is loaded only when the user names it or StyleGAN-V's own download
left it in dnnlib's cache; a TorchScript file anywhere else is listed but skipped.
"""
from stbench import MetricSpec, hookimpl, lazy

# the metric modules (torch, the networks, the weight search) load when a metric is built or its
# weight files are listed, so registering (and `stbench list`) imports no torch

_lpips, _fvd = "stbench_metrics_perceptual.lpips", "stbench_metrics_perceptual.fvd"

METRICS = [
    MetricSpec(name="lpips", build=lazy(f"{_lpips}:build_lpips"), higher_is_better=False, label="LPIPS", decimals=4,
               weight_files=lazy(f"{_lpips}:weight_files"), options={"lpips_alexnet": "str", "lpips_linear": "str"},
               description="LPIPS v0.1, AlexNet trunk, frames clipped and scaled to [-1, 1], grey repeated to RGB; "
                           "weights: lpips_alexnet=PATH, lpips_linear=PATH or the torch hub / lpips / "
                           "torchmetrics / pyiqa caches"),
    MetricSpec(name="fvd", build=lazy(f"{_fvd}:build_fvd"), higher_is_better=False, label="FVD", decimals=1,
               weight_files=lazy(f"{_fvd}:weight_files"), options={"fvd_i3d": "str"},
               description="Frechet Video Distance of Kinetics-400 I3D logits over the predicted clips of the "
                           "test set (224x224 bilinear, clips under 10 frames padded with their last frame); "
                           "weights: fvd_i3d=PATH (a TorchScript file such as StyleGAN-V's runs code when "
                           "loaded) or the dnnlib / VideoGPT / torch hub caches"),
]


@hookimpl
def stbench_register_metrics(register):
    for spec in METRICS:
        register(spec)
