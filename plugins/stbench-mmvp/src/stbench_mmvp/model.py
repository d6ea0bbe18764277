"""MMVP: motion matrices between frame features, predicted forward and composed into future features and pixels."""
import math
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from stbench import STModel, UserError

from . import ARCH_KEYS

LEAK = 0.01  # nn.LeakyReLU's default, used everywhere but inside the dense blocks
DENSE_LEAK = 0.2
EPS = 1e-6


# ------------------------------------------------------------------------------------- building blocks

class DenseBlock(nn.Module):
    """Four 3x3 convolutions, each fed every earlier output (growth ``nf // 2``); residual scaled by 0.2."""

    def __init__(self, nf: int):
        super().__init__()
        gc = nf // 2
        self.conv1 = nn.Conv2d(nf, gc, 3, padding=1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, padding=1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, padding=1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, nf, 3, padding=1)

    def forward(self, x):
        x1 = F.leaky_relu(self.conv1(x), DENSE_LEAK)
        x2 = F.leaky_relu(self.conv2(torch.cat((x, x1), 1)), DENSE_LEAK)
        x3 = F.leaky_relu(self.conv3(torch.cat((x, x1, x2), 1)), DENSE_LEAK)
        return self.conv4(torch.cat((x, x1, x2, x3), 1)) * 0.2 + x


class RRDB(nn.Module):
    """Residual-in-residual dense block (ESRGAN): three dense blocks, the whole residual scaled by 0.2."""

    def __init__(self, nf: int):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = DenseBlock(nf), DenseBlock(nf), DenseBlock(nf)

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class DownBlock(nn.Module):
    """Two 3x3 convolutions (the first stride 2, ReLU after each) plus a strided 1x1 shortcut; a factor of 4
    adds a 2x2 max-pool; LeakyReLU at the end."""

    def __init__(self, c_in: int, c_out: int, factor: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=2)
        self.pool = factor == 4

    def forward(self, x):
        y = F.relu(self.conv2(F.relu(self.conv1(x)))) + self.shortcut(x)
        if self.pool:
            y = F.max_pool2d(y, 2)
        return F.leaky_relu(y, LEAK)


class UpBlock(nn.Module):
    """Transposed convolution by ``factor``, optionally concatenated after a skip feature, then a 3x3
    convolution without bias and ReLU."""

    def __init__(self, c_in: int, c_out: int, factor: int, skip: bool):
        super().__init__()
        self.up = nn.ConvTranspose2d(c_in, c_out, factor, stride=factor)
        self.conv = nn.Conv2d(2 * c_out if skip else c_out, c_out, 3, padding=1, bias=False)

    def forward(self, x, skip: Optional[torch.Tensor] = None):
        x = self.up(x)
        if skip is not None:
            x = torch.cat([skip, x], dim=1)
        return F.relu(self.conv(x))


def conv_bn_lrelu(c_in: int, c_out: int, times: int) -> nn.Sequential:
    layers: List[nn.Module] = []
    for k in range(times):
        layers += [nn.Conv2d(c_in if k == 0 else c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.LeakyReLU(LEAK)]
    return nn.Sequential(*layers)


class TemporalConv(nn.Module):
    """3x3x3 convolution over ``[B, T, C, H, W]`` (time as depth), BatchNorm, LeakyReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv3d(channels, channels, 3, padding=1)
        self.norm = nn.BatchNorm3d(channels)

    def forward(self, x):
        y = x.permute(0, 2, 1, 3, 4).contiguous()
        y = F.leaky_relu(self.norm(self.conv(y)), LEAK)
        return y.permute(0, 2, 1, 3, 4).contiguous()


class DirectMatrixPredictor(nn.Module):
    """From the embedded rows of the ``T_in - 1`` observed motion matrices to ``t_out`` future ones at once
    (OpenSTL's ``SimpleMatrixPredictor3DConv_direct``): two 3x3 convs, a stride-2 conv, a temporal conv, a
    1x1 'translation' from ``T_in - 1`` to ``t_out`` frames folded into channels, a second stride-2 stage
    with a temporal conv, and two merging convs back at full size. BatchNorm and LeakyReLU throughout."""

    def __init__(self, t_in: int, hid: int, t_out: int):
        super().__init__()
        self.t_out = t_out
        self.pre1, self.pre1_norm = nn.Conv2d(hid, hid, 3, padding=1), nn.BatchNorm2d(hid)
        self.pre2, self.pre2_norm = nn.Conv2d(hid, hid, 3, padding=1), nn.BatchNorm2d(hid)
        self.down1, self.down1_norm = nn.Conv2d(hid, hid, 3, stride=2, padding=1), nn.BatchNorm2d(hid)
        self.temporal1 = TemporalConv(hid)
        self.translate = nn.Conv2d(hid * (t_in - 1), hid * t_out, 1)
        self.translate_norm = nn.BatchNorm2d(hid * t_out)
        self.down2, self.down2_norm = nn.Conv2d(hid, 2 * hid, 3, stride=2, padding=1), nn.BatchNorm2d(2 * hid)
        self.temporal2 = TemporalConv(2 * hid) if t_out > 1 else nn.Conv2d(2 * hid, 2 * hid, 3, padding=1)
        self.merge, self.merge_norm = nn.Conv2d(3 * hid, hid, 3, padding=1), nn.BatchNorm2d(hid)
        self.out, self.out_norm = nn.Conv2d(hid, hid, 3, padding=1), nn.BatchNorm2d(hid)

    def forward(self, x):  # [N, S, hid, h, w] -> [N * t_out, hid, h, w]
        n, s, c, h, w = x.shape
        y = x.reshape(n * s, c, h, w)
        y = F.leaky_relu(self.pre1_norm(self.pre1(y)), LEAK)
        y = F.leaky_relu(self.pre2_norm(self.pre2(y)), LEAK)
        a = F.leaky_relu(self.down1_norm(self.down1(y)), LEAK)
        a = self.temporal1(a.reshape(n, s, *a.shape[1:]))
        a = self.translate_norm(F.leaky_relu(self.translate(a.reshape(n, -1, *a.shape[3:])), LEAK))
        a = a.reshape(n * self.t_out, c, *a.shape[2:])
        b = F.leaky_relu(self.down2_norm(self.down2(a)), LEAK)
        if self.t_out > 1:
            b = self.temporal2(b.reshape(n, self.t_out, *b.shape[1:])).reshape(n * self.t_out, *b.shape[1:])
        else:
            b = F.leaky_relu(self.temporal2(b), LEAK)
        m = F.leaky_relu(self.merge_norm(self.merge(torch.cat((F.interpolate(b, size=a.shape[2:]), a), dim=1))), LEAK)
        return F.leaky_relu(self.out_norm(self.out(F.interpolate(m, size=(h, w)))), LEAK)


class MotionPredictor(nn.Module):
    """Each row of a motion matrix (one source position's similarities over the ``mh x mw`` grid) is a
    one-channel image: embedded, run through :class:`DirectMatrixPredictor` along time, read out."""

    def __init__(self, t_in: int, hid: int, t_out: int, grid):
        super().__init__()
        self.grid, self.t_out = tuple(grid), t_out
        self.embed = nn.Conv2d(1, hid, 3, padding=1, bias=False)
        self.net = DirectMatrixPredictor(t_in, hid, t_out)
        self.readout = nn.Conv2d(hid, 1, 3, padding=1, bias=False)

    def forward(self, matrices):  # [B, S, hw, hw] -> [B, t_out, hw, hw]
        b, s, hw, _ = matrices.shape
        mh, mw = self.grid
        z = self.embed(matrices.reshape(b * s * hw, 1, mh, mw))
        z = z.reshape(b, s, hw, -1, mh, mw).permute(0, 2, 1, 3, 4, 5).reshape(b * hw, s, -1, mh, mw)
        z = self.readout(self.net(z))
        return z.reshape(b, hw, self.t_out, mh, mw).permute(0, 2, 1, 3, 4).reshape(b, self.t_out, hw, hw)


# ------------------------------------------------------------------------------------- motion matrices

def similarity(features):
    """``[B, T, c, h, w]`` -> ``[B, T-1, hw, hw]``: cosine similarity of every position of frame t with every
    position of frame t+1."""
    b, t, c, h, w = features.shape
    f = features.permute(0, 1, 3, 4, 2)
    f = f / (torch.norm(f, dim=-1, keepdim=True) + EPS)
    prev = f[:, :t - 1].reshape(-1, h * w, c)
    nxt = f[:, 1:].reshape(-1, h * w, c)
    return torch.bmm(prev, nxt.permute(0, 2, 1)).reshape(b, t - 1, h * w, h * w)


def normalise(matrices):
    """Softmax over all ``hw x hw`` entries of each matrix (not per row), as the reference does."""
    b, t, n, m = matrices.shape
    return F.softmax(matrices.reshape(b, t, -1), dim=-1).reshape(b, t, n, m)


def resize_matrices(matrices, source, target):
    """Motion matrices of a ``source`` grid resampled to a ``target`` grid: bilinear over the target
    positions, then bicubic over the source positions."""
    (sh, sw), (th, tw) = source, target
    b, t = matrices.shape[:2]
    m = F.interpolate(matrices.reshape(-1, sh, sw).unsqueeze(1), (th, tw), mode="bilinear").squeeze(1)
    m = m.reshape(b, t, sh, sw, th, tw).permute(0, 1, 4, 5, 2, 3).reshape(-1, sh, sw).unsqueeze(1)
    m = F.interpolate(m, (th, tw), mode="bicubic").squeeze(1)
    return m.reshape(b, t, th, tw, th, tw).permute(0, 1, 4, 5, 2, 3).reshape(b, t, th * tw, th * tw)


def chain(matrices):
    """``[B, S, n, n]`` -> the products ``M_i M_{i+1} ... M_{S-1}`` for every i (motion from frame i to the end)."""
    s = matrices.shape[1]
    out = [None] * s
    out[s - 1] = matrices[:, s - 1]
    for i in range(s - 2, -1, -1):
        out[i] = torch.bmm(matrices[:, i].contiguous(), out[i + 1].contiguous())
    return torch.stack(out, dim=1)


def compose(features, matrices, t_in: int, t_out: int):
    """Future features as motion-weighted averages of the observed ones.

    ``features``: ``[B*T, c, h, w]`` (the first ``t_in`` frames of each clip are used); ``matrices``:
    ``[B, t_in - 1 + t_out, hw, hw]``, the observed transitions then the predicted ones (each from the last
    observed frame to one future frame). Future frame k weighs every observed position by the chained
    motion from its frame to frame k, normalised by the total weight.
    """
    b = matrices.shape[0]
    _, c, h, w = features.shape
    observed = features.reshape(b, -1, c, h, w)[:, :t_in]
    observed = observed.permute(0, 2, 1, 3, 4).reshape(b, c, t_in * h * w).permute(0, 2, 1)
    frames = []
    for k in range(t_out):
        active = torch.cat([matrices[:, :t_in - 1], matrices[:, t_in - 1 + k:t_in + k]], dim=1)
        weights = chain(active).reshape(b, t_in * h * w, h * w).permute(0, 2, 1)
        total = torch.sum(weights, dim=-1).reshape(-1, 1, h * w) + EPS
        frames.append((torch.bmm(weights, observed).permute(0, 2, 1) / total).reshape(b, c, h, w))
    return torch.stack(frames, dim=1).reshape(b * t_out, c, h, w)


# ----------------------------------------------------------------------------------------------- model

class MMVPModel(STModel):
    """MMVP built for one task: predicts ``t_out`` frames from ``t_in`` in one pass.

    Frames are pixel-unshuffled by 2 and encoded (3x3 conv, RRDBs, strided residual blocks) down to a
    high-resolution and a low-resolution scale. At both, filtered features give cosine-similarity
    (motion) matrices between consecutive frames; the high-resolution ones are predicted forward
    (:class:`MotionPredictor`), resized for the low scale, soft-maxed, and used to compose future
    features at three scales and future pixels (from the input frames pixel-unshuffled to the motion
    grid). A U-Net-like decoder turns the composed features into frames, and an RRDB enhancer fuses them
    with the composed pixels. ``forward(x, t_out)`` truncates a pass or feeds the last ``t_in`` frames of
    what exists back in until ``t_out`` frames exist.
    """

    def __init__(self, task, *, hid_s: int, hid_t: int, rrdb_encoder_num: int = 2, rrdb_decoder_num: int = 2,
                 rrdb_enhance_num: int = 2, downsample: Sequence[int] = (2, 2, 2)):
        super().__init__()
        check_settings(task, hid_s, hid_t, rrdb_encoder_num, rrdb_decoder_num, rrdb_enhance_num, downsample)
        c, h, w = task.shape
        ds = [int(f) for f in downsample]
        n = len(ds)
        self.t_in, self.t_out, self.frame_shape = task.t_in, task.t_out, (c, h, w)
        high, low = math.prod(ds[:-1]) * 2, math.prod(ds) * 2
        self.grids = ((h // high, w // high), (h // low, w // low))
        self.mid_scale = ds[-2]  # the skip feature is unshuffled by it onto the motion grid
        self.pixel_scale = math.prod(ds[:-1])  # the half-resolution frames, onto the motion grid
        # encoder
        self.stem = nn.Conv2d(4 * c, hid_s, 3, padding=1)
        self.encoder_rrdb = nn.Sequential(*[RRDB(hid_s) for _ in range(rrdb_encoder_num)])
        self.pre_down = nn.ModuleList(DownBlock(hid_s * 2 ** i, hid_s * 2 ** (i + 1), ds[i]) for i in range(n - 2))
        self.down_high = DownBlock(hid_s * 2 ** (n - 2), hid_s * 2 ** (n - 1), ds[-2])
        self.down_low = DownBlock(hid_s * 2 ** (n - 1), hid_s * 2 ** n, ds[-1])
        # motion
        self.filters = nn.ModuleList([conv_bn_lrelu(hid_s * 2 ** (n - 1), hid_s, 3),
                                      conv_bn_lrelu(hid_s * 2 ** n, 2 * hid_s, 3)])
        self.motion = MotionPredictor(task.t_in, hid_t, task.t_out, self.grids[0])
        # decoder
        self.up_low = UpBlock(hid_s * 2 ** n, hid_s * 2 ** (n - 1), ds[-1], skip=True)
        self.ups = nn.ModuleList(UpBlock(hid_s * 2 ** (i + 1), hid_s * 2 ** i, ds[i], skip=i == n - 2)
                                 for i in range(n - 2, -1, -1))
        self.decoder_rrdb = nn.Sequential(*[RRDB(hid_s) for _ in range(rrdb_decoder_num)])
        self.decoder_readout = nn.Conv2d(hid_s, 4 * c, 1)
        self.enhancer = nn.Sequential(nn.Conv2d(2 * c, hid_s, 3, padding=1),
                                      *[RRDB(hid_s) for _ in range(rrdb_enhance_num)])
        self.enhancer_readout = nn.Conv2d(hid_s, c, 1)

    def predict(self, frames: torch.Tensor) -> torch.Tensor:
        """One pass: ``[B, T, C, H, W]`` with ``T >= t_in`` -> the ``t_out`` frames after the first ``t_in``.

        Frames after ``t_in`` (training feeds the targets, as OpenSTL's MMVP does) reach the output only
        through the batch statistics of the motion filters in training mode.
        """
        b, t, c, h, w = frames.shape
        t_in, t_out = self.t_in, self.t_out
        pixels = F.pixel_unshuffle(frames.reshape(b * t, c, h, w), 2)
        e = self.encoder_rrdb(self.stem(pixels))
        for block in self.pre_down:
            e = block(e)
        mid = e
        high = self.down_high(mid)
        low = self.down_low(high)
        # motion matrices: observed at both scales, predicted at the high one and resized to the low one
        g_high, g_low = self.filters[0](high), self.filters[1](low)
        seen_high = similarity(g_high.reshape(b, t, *g_high.shape[1:]))[:, :t_in - 1]
        seen_low = similarity(g_low.reshape(b, t, *g_low.shape[1:]))[:, :t_in - 1]
        future = self.motion(seen_high)
        future_low = resize_matrices(future, *self.grids)
        motion_high = torch.cat([normalise(seen_high), normalise(future)], dim=1)
        motion_low = torch.cat([normalise(seen_low), normalise(future_low)], dim=1)
        # composed future features, decoded
        mid = F.pixel_shuffle(compose(F.pixel_unshuffle(mid, self.mid_scale), motion_high, t_in, t_out), self.mid_scale)
        high = compose(high, motion_high, t_in, t_out)
        low = compose(low, motion_low, t_in, t_out)
        z = self.ups[0](self.up_low(low, high), mid)
        for block in self.ups[1:]:
            z = block(z)
        decoded = F.pixel_shuffle(self.decoder_readout(self.decoder_rrdb(z)), 2)
        # composed future pixels
        moved = compose(F.pixel_unshuffle(pixels, self.pixel_scale), motion_high, t_in, t_out)
        moved = F.pixel_shuffle(F.pixel_shuffle(moved, self.pixel_scale), 2)
        out = self.enhancer_readout(self.enhancer(torch.cat([decoded, moved], dim=1)))
        return out.reshape(b, t_out, c, h, w)

    def forward(self, x: torch.Tensor, t_out: int) -> torch.Tensor:
        if x.shape[1] != self.t_in:
            raise ValueError(f"this model was built for {self.t_in} input frames, got {x.shape[1]}")
        frames, produced = x, 0
        while produced < t_out:
            chunk = self.predict(frames[:, -self.t_in:])
            frames = torch.cat([frames, chunk], dim=1)
            produced += chunk.shape[1]
        return frames[:, self.t_in:self.t_in + t_out]

    def loss(self, x, y, step):
        """OpenSTL's training step (``methods/mmvp.py``): the model sees the clip with its targets, MSE."""
        if y.shape[1] != self.t_out:
            return F.mse_loss(self(x, y.shape[1]), y)
        return F.mse_loss(self.predict(torch.cat([x, y], dim=1)), y)


def check_settings(task, hid_s, hid_t, rrdb_encoder_num, rrdb_decoder_num, rrdb_enhance_num, downsample) -> None:
    """One-line errors for settings MMVP cannot take."""
    def whole(value, least):
        return isinstance(value, int) and not isinstance(value, bool) and value >= least

    for key, value, least in (("hid_s", hid_s, 2), ("hid_t", hid_t, 1), ("rrdb_encoder_num", rrdb_encoder_num, 0),
                              ("rrdb_decoder_num", rrdb_decoder_num, 0), ("rrdb_enhance_num", rrdb_enhance_num, 0)):
        if not whole(value, least):
            raise UserError(f"mmvp: {key} must be a whole number >= {least}, got {value!r}")
    if not (isinstance(downsample, (list, tuple)) and len(downsample) >= 2
            and all(whole(f, 2) and f in (2, 4) for f in downsample)):
        raise UserError(f"mmvp: downsample must list at least two factors, each 2 or 4 (the paper's [2, 2, 2]), "
                        f"got {downsample!r}")
    if task.t_in < 2:
        raise UserError(f"mmvp needs at least 2 input frames (motion between consecutive frames); {task.name} has "
                        f"{task.t_in}")
    size = 2 * math.prod(downsample)
    _, h, w = task.shape
    if h % size or w % size:
        raise UserError(f"mmvp with downsample {list(downsample)} needs H and W divisible by {size} "
                        f"(2 x the factors); {task.name} has {h}x{w}")


def build_mmvp(task, hparams):
    unknown = sorted(set(hparams) - set(ARCH_KEYS))
    if unknown:
        raise UserError(f"mmvp does not take {', '.join(unknown)}; known: {', '.join(ARCH_KEYS)}")
    return MMVPModel(task, **hparams)
