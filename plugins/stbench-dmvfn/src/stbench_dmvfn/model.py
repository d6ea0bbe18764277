"""DMVFN: a routing module picks, per clip, which of a stack of multi-scale voxel-flow blocks run; each block
refines a bidirectional flow (two 2-D flows, one per input frame) and a blending mask, coarse to fine, and the
next frame is the mask-blended pair of the two warped inputs. Longer horizons feed the prediction back.

Follows OpenSTL v0.3.0 (``dmvfn_model.py``, ``dmvfn_modules.py``, ``methods/dmvfn.py``, ``utils/dmvfn_utils.py``),
itself the authors' code (hzwer/CVPR2023-DMVFN) for frames of any channel count. Training runs every block with
the routing bits as straight-through weights, and steps the optimizer once per frame triple of a clip; the loss
is a Laplacian-pyramid L1 on every block's output (weighted gamma^(depth from the last)) plus a VGG19
perceptual term on the last one.
"""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from stbench import STModel, UserError

from .perceptual import VGG19_FILE, VGG19_URL, WEIGHTS_ENV, VGG19Features, find_vgg19, hub_checkpoints

FINE_WIDTH = 8  # the full-resolution branch of every block (fixed in the reference)


def conv_prelu(n_in, n_out, stride=1):
    return nn.Sequential(nn.Conv2d(n_in, n_out, 3, stride, 1), nn.PReLU(n_out))


def warp(image, flow):
    """Backward warping: sample ``image`` at each pixel moved by ``flow`` (pixels; x then y), border-clamped."""
    b, _, h, w = flow.shape
    xs = torch.linspace(-1.0, 1.0, w, device=flow.device).view(1, 1, 1, w).expand(b, -1, h, -1)
    ys = torch.linspace(-1.0, 1.0, h, device=flow.device).view(1, 1, h, 1).expand(b, -1, -1, w)
    moved = torch.cat([flow[:, 0:1] / ((image.shape[3] - 1.0) / 2.0), flow[:, 1:2] / ((image.shape[2] - 1.0) / 2.0)], 1)
    grid = (torch.cat([xs, ys], 1) + moved).permute(0, 2, 3, 1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def blend(warped0, warped1, mask_logits):
    weight = torch.sigmoid(mask_logits)
    return torch.clamp(warped0 * weight + warped1 * (1 - weight), 0, 1)


BINOMIAL = (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)  # the 5x5 Gaussian of the Laplacian pyramid is its outer product


def binomial_blur(image, gain=1.0):
    """The 5x5 binomial blur (x gain) of reflect-padded frames, as two 1-D passes of shifted slices (what a
    depthwise 5x5 convolution computes, and much faster to differentiate on a CPU)."""
    h, w = image.shape[-2:]
    padded = F.pad(image, (2, 2, 2, 2), mode="reflect")
    rows = sum(c * padded[..., j:j + w] for j, c in enumerate(BINOMIAL))
    return sum(c * gain * rows[..., i:i + h, :] for i, c in enumerate(BINOMIAL))


def laplacian_pyramid(image, levels):
    """The band-pass levels: each the image minus the upsampled (zeros inserted, blurred x 4) half-size image."""
    bands, current = [], image
    for _ in range(levels):
        down = binomial_blur(current)[..., ::2, ::2]
        up = current.new_zeros(*current.shape[:-2], 2 * down.shape[-2], 2 * down.shape[-1])
        up[..., ::2, ::2] = down
        bands.append(current - binomial_blur(up, 4.0))
        current = down
    return bands


class SampledBits(torch.autograd.Function):
    """Bernoulli bits of the routing probabilities; gradients pass straight through."""

    @staticmethod
    def forward(ctx, probabilities):
        return torch.bernoulli(probabilities)

    @staticmethod
    def backward(ctx, grad):
        return grad


class FlowBlock(nn.Module):
    """One multi-scale voxel-flow block (MVFB): a coarse branch at 1/scale then two stride-2 convolutions, a
    full-resolution branch (one stride-2 conv), and a transposed conv giving 4 flow channels and a mask logit."""

    def __init__(self, in_planes: int, width: int):
        super().__init__()
        self.coarse_in = nn.Sequential(conv_prelu(in_planes, width // 2, 2), conv_prelu(width // 2, width, 2))
        self.coarse_body = nn.Sequential(*(conv_prelu(width, width) for _ in range(3)))
        self.coarse_out = conv_prelu(width, width // 4)
        self.fine_in = conv_prelu(in_planes, FINE_WIDTH, 2)
        self.fine_body = conv_prelu(FINE_WIDTH, FINE_WIDTH)
        self.head = nn.ConvTranspose2d(width // 4 + FINE_WIDTH, 5, 4, 2, 1)

    def forward(self, x, flow, scale):
        coarse, coarse_flow = x, flow
        if scale != 1:
            coarse = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
            coarse_flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) / scale
        features = self.coarse_in(torch.cat([coarse, coarse_flow], 1))
        features = self.coarse_out(self.coarse_body(features) + features)
        features = F.interpolate(features, scale_factor=scale * 2, mode="bilinear", align_corners=False)
        fine = self.fine_body(self.fine_in(torch.cat([x, flow], 1)))
        out = self.head(torch.cat([features, fine], 1))
        return out[:, :4], out[:, 4:5]


class DMVFN(STModel):
    """DMVFN (Hu et al., CVPR 2023) over ``[B, T, C, H, W]`` frames in [0, 1]: the next frame from the last two."""

    # the routing bits are drawn (Bernoulli) at test time too, as in the reference
    stochastic = True

    def __init__(self, task, *, num_features: Sequence[int], scale: Sequence[int], routing_out_channels: int,
                 beta: float, gamma: float, coef: float, vgg_weights: str = ""):
        super().__init__()
        channels, height, width = task.shape
        num_features, scale = [int(f) for f in num_features], [int(s) for s in scale]
        if not num_features or len(num_features) != len(scale):
            raise UserError(f"dmvfn: num_features ({len(num_features)}) and scale ({len(scale)}) need one entry "
                            "per block, and at least one block")
        if min(num_features) < 4 or min(scale) < 1:
            raise UserError("dmvfn: every num_features entry must be >= 4 and every scale >= 1")
        if task.t_in < 2:
            raise UserError(f"dmvfn predicts from the last two frames; task {task.name} observes {task.t_in}")
        step = 4 * max(scale)
        if height % step or width % step:
            raise UserError(f"dmvfn: a block at scale {max(scale)} needs frames that divide by {step}; "
                            f"{height}x{width} does not (lower the largest scale)")
        self.channels, self.scale = channels, scale
        self.beta, self.gamma, self.coef = float(beta), float(gamma), float(coef)
        # each block sees both frames, both warped frames and the mask, then the flow
        self.blocks = nn.ModuleList(FlowBlock(4 * channels + 1 + 4, f) for f in num_features)
        self.router = nn.Sequential(nn.Conv2d(2 * channels, routing_out_channels, 3, 1, 1), nn.ReLU(),
                                    nn.Conv2d(routing_out_channels, routing_out_channels, 3, 1, 1),
                                    nn.AdaptiveAvgPool2d((1, 1)))
        self.router_head = nn.Linear(routing_out_channels, len(num_features))
        self.pyramid_levels = 5 if width > 32 else 3  # as OpenSTL's method
        if height % 2 ** self.pyramid_levels or width % 2 ** self.pyramid_levels:
            raise UserError(f"dmvfn's Laplacian loss halves the frame {self.pyramid_levels} times, so {height}x{width} "
                            f"must divide by {2 ** self.pyramid_levels}")
        # the perceptual network is no part of the model (not in its parameters or checkpoints); it is loaded
        # on the first training loss, from the file found now
        self.vgg_path, self.vgg_origin = find_vgg19(vgg_weights) if self.coef else (None, "")
        self._vgg: Optional[VGG19Features] = None

    # ------------------------------------------------------------------ routing and one prediction

    def routing(self, img0, img1):
        """Per clip, one bit per block: Bernoulli draws of probabilities rescaled to sum to beta x blocks."""
        logits = self.router_head(self.router(torch.cat([img0, img1], 1)).flatten(1))
        probabilities = torch.sigmoid(logits)
        probabilities = self.beta * len(self.blocks) * probabilities / (probabilities.sum(1, True) + 1e-6)
        return SampledBits.apply(torch.clamp(probabilities, 0, 1))

    def predict_next(self, img0, img1, bits=None):
        """The next frame, each clip running only the blocks its routing bits select; a clip that selects none
        repeats ``img0`` (as the reference). Every block is computed for the whole batch and its update kept
        only where selected, so each clip's result is what the reference gives it alone."""
        bits = self.routing(img0, img1) if bits is None else bits
        b, _, h, w = img0.shape
        flow, mask = img0.new_zeros(b, 4, h, w), img0.new_zeros(b, 1, h, w)
        warped0, warped1 = img0, img1
        for i, block in enumerate(self.blocks):
            chosen = bits[:, i].view(b, 1, 1, 1) > 0
            flow_d, mask_d = block(torch.cat([img0, img1, warped0, warped1, mask], 1), flow, self.scale[i])
            flow = torch.where(chosen, flow + flow_d, flow)
            mask = torch.where(chosen, mask + mask_d, mask)
            warped0 = torch.where(chosen, warp(img0, flow[:, :2]), warped0)
            warped1 = torch.where(chosen, warp(img1, flow[:, 2:4]), warped1)
        any_block = bits.sum(1).view(b, 1, 1, 1) > 0
        return torch.where(any_block, blend(warped0, warped1, mask), img0)

    def forward(self, x, t_out):
        img0, img1 = x[:, -2], x[:, -1]
        predictions = []
        for _ in range(t_out):
            frame = self.predict_next(img0, img1)
            predictions.append(frame)
            img0, img1 = img1, frame
        return torch.stack(predictions, 1)

    # ------------------------------------------------------------------ training

    def training_outputs(self, img0, img1) -> List[torch.Tensor]:
        """Every block's prediction in training: all blocks run, each flow and mask update weighted by its
        routing bit (straight-through); the outputs of blocks before the last blend their unweighted update."""
        bits = self.routing(img0, img1)
        b, _, h, w = img0.shape
        flow, mask = img0.new_zeros(b, 4, h, w), img0.new_zeros(b, 1, h, w)
        warped0, warped1 = img0, img1
        outputs = []
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            flow_d, mask_d = block(torch.cat([img0, img1, warped0, warped1, mask], 1), flow, self.scale[i])
            flow_now, mask_now = flow + flow_d, mask + mask_d
            bit = bits[:, i].reshape(b, 1, 1, 1)
            flow, mask = flow + flow_d * bit, mask + mask_d * bit
            warped0, warped1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
            if i < last:
                outputs.append(blend(warp(img0, flow_now[:, :2]), warp(img1, flow_now[:, 2:4]), mask_now))
            else:
                outputs.append(blend(warped0, warped1, mask))
        return outputs

    def split_batch(self, x, y):
        """One optimizer step per frame triple (two frames in, the next one out) of the clip, in order, as
        OpenSTL's DMVFN trains."""
        frames = torch.cat([x, y], 1)
        return [(frames[:, i:i + 2], frames[:, i + 2:i + 3]) for i in range(frames.shape[1] - 2)]

    def loss(self, x, y, step):
        """DMVFN's loss on every frame triple of the clip (one triple per optimizer step in training, see
        :meth:`split_batch`): sum over blocks of gamma^(last - i) x Laplacian L1, plus coef x VGG distance of
        the last block's output."""
        frames = torch.cat([x, y], 1)
        if frames.shape[1] < 3:
            raise UserError("dmvfn's loss needs three frames (two in, one out)")
        img0, img1, target = (frames[:, k:frames.shape[1] - 2 + k].flatten(0, 1) for k in range(3))
        outputs = self.training_outputs(img0, img1)
        last = len(outputs) - 1
        with torch.no_grad():
            target_bands = laplacian_pyramid(target, self.pyramid_levels)
        total = 0
        for i, output in enumerate(outputs):
            l1 = sum(F.l1_loss(a, b) for a, b in zip(laplacian_pyramid(output, self.pyramid_levels), target_bands))
            total = total + l1 * (self.gamma ** (last - i))
        vgg = self.perceptual()
        if vgg is not None:
            pred = outputs[-1]
            if self.channels not in (1, 3):  # VGG reads grey or RGB: other channel counts are averaged
                pred, target = pred.mean(1, keepdim=True), target.mean(1, keepdim=True)
            total = total + vgg.distance(pred, target) * self.coef
        return total

    # ------------------------------------------------------------------ the perceptual network

    def perceptual(self) -> Optional[VGG19Features]:
        if self.vgg_path is None:
            return None
        if self._vgg is None:
            vgg = VGG19Features.load(self.vgg_path).to(self.router_head.weight.device)
            object.__setattr__(self, "_vgg", vgg)  # held outside the module tree: not a parameter, not saved
        return self._vgg

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        if self._vgg is not None:
            self._vgg._apply(fn, *args, **kwargs)
        return self

    def record_notes(self) -> Dict[str, str]:
        if not self.coef:
            term = "off (coef 0): the loss is the Laplacian L1 alone"
        elif self.vgg_path is not None:
            term = f"VGG19 ImageNet features from {self.vgg_path} ({self.vgg_origin}), weight {self.coef:g}"
        else:
            term = (f"left out: no VGG19 ImageNet weights were found (looked for {self.vgg_origin}), so training "
                    f"used the Laplacian L1 alone where the reference adds {self.coef:g} x a VGG19 perceptual term; "
                    f"put {VGG19_URL} into {hub_checkpoints()} or name it in ${WEIGHTS_ENV}")
        return {"perceptual_loss": term,
                "routing": "Bernoulli-sampled per clip and frame at test time, as the authors' batch-1 evaluation "
                           "(OpenSTL's batched test applies the first clip's bits to the whole batch)"}


def build_dmvfn(task, hparams):
    return DMVFN(task, num_features=hparams["num_features"], scale=hparams["scale"],
                 routing_out_channels=int(hparams["routing_out_channels"]), beta=float(hparams["beta"]),
                 gamma=float(hparams["gamma"]), coef=float(hparams["coef"]),
                 vgg_weights=str(hparams.get("vgg_weights") or ""))


__all__ = ["DMVFN", "FlowBlock", "build_dmvfn", "warp", "VGG19_FILE"]
