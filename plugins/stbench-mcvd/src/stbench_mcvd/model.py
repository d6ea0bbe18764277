"""MCVD: the conditional score network (NCSN++ U-Net, concatenation or SPATIN conditioning), the
DDPM noise schedule and denoising loss, the DDPM/DDIM samplers, and block-wise autoregressive
prediction; plus a reader for the authors' checkpoint container."""
import hashlib
import math
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from torch import nn

from stbench import STModel, UserError

from .layers import ActNorm, AttnBlockpp, ResnetBlockBigGAN, conv3x3, dense, timestep_embedding

SAMPLERS = ("ddpm", "ddim")


class ScoreNet(nn.Module):
    """NCSN++ as MCVD uses it: predicts the noise of ``num_frames`` current frames given the noise level
    index and ``num_frames_cond`` conditioning frames, either concatenated to the input channels
    (``spade=False``) or injected through SPADE in every normalisation (``spade=True``, SPATIN).

    The modules sit in one list in the authors' order (``all_modules``), tagged by role in ``plan``.
    """

    def __init__(self, channels: int, width: int, num_frames: int, num_frames_cond: int, ngf: int,
                 ch_mult: Sequence[int], num_res_blocks: int, attn_resolutions: Sequence[int],
                 n_head_channels: int, dropout: float, spade: bool = False, spade_dim: int = 128):
        super().__init__()
        self.spade, self.nf = bool(spade), int(ngf)
        nf = self.nf
        cond_ch = num_frames_cond * channels
        temb_dim = 4 * nf
        kind = "spade" if spade else "group"
        resolutions = [width // 2 ** level for level in range(len(ch_mult))]
        attn_resolutions = set(attn_resolutions)

        def block(in_ch, out_ch=None, **kw):
            return ResnetBlockBigGAN(in_ch, out_ch, temb_dim, dropout=dropout, kind=kind, cond_ch=cond_ch,
                                     spade_dim=spade_dim, **kw)

        modules: List[nn.Module] = [dense(nf, temb_dim), dense(temb_dim, temb_dim)]
        plan: List[str] = ["temb", "temb"]

        def add(role, module):
            modules.append(module)
            plan.append(role)

        in_frames = num_frames if spade else num_frames + num_frames_cond
        add("stem", conv3x3(channels * in_frames, nf))
        skip_ch, in_ch = [nf], nf
        for level, mult in enumerate(ch_mult):
            for _ in range(num_res_blocks):
                add("res", block(in_ch, nf * mult))
                in_ch = nf * mult
                if resolutions[level] in attn_resolutions:
                    add("down_attn", AttnBlockpp(in_ch, n_head_channels))
                skip_ch.append(in_ch)
            if level != len(ch_mult) - 1:
                add("down", block(in_ch, down=True))
                skip_ch.append(in_ch)
        add("mid", block(in_ch))
        add("attn", AttnBlockpp(in_ch, n_head_channels))
        add("mid", block(in_ch))
        for level in reversed(range(len(ch_mult))):
            for _ in range(num_res_blocks + 1):
                add("up_res", block(in_ch + skip_ch.pop(), nf * ch_mult[level]))
                in_ch = nf * ch_mult[level]
            if resolutions[level] in attn_resolutions:
                add("attn", AttnBlockpp(in_ch, n_head_channels))
            if level != 0:
                add("up", block(in_ch, up=True))
        add("out_norm", ActNorm(in_ch, None, kind, cond_ch, spade_dim))
        add("out", conv3x3(in_ch, channels * num_frames, init_scale=0.0))
        self.all_modules = nn.ModuleList(modules)
        self.plan = tuple(plan)

    def forward(self, x: torch.Tensor, labels: torch.Tensor, cond: Optional[torch.Tensor]) -> torch.Tensor:
        """``x [B, k*C, H, W]`` noisy frames, ``labels [B]`` noise-level indices, ``cond [B, c*C, H, W]``."""
        spade_cond = cond if self.spade else None
        if not self.spade and cond is not None:
            x = torch.cat([x, cond], dim=1)
        modules = self.all_modules
        temb = modules[1](torch.nn.functional.silu(modules[0](timestep_embedding(labels, self.nf))))
        skips: List[torch.Tensor] = []
        h = x
        for module, role in zip(modules[2:], self.plan[2:]):
            if role == "stem":
                h = module(h)
                skips.append(h)
            elif role in ("res", "down"):
                h = module(h, temb, spade_cond)
                skips.append(h)
            elif role == "down_attn":  # the skip kept is the attended feature map
                h = module(h)
                skips[-1] = h
            elif role == "attn":
                h = module(h)
            elif role in ("mid", "up"):
                h = module(h, temb, spade_cond)
            elif role == "up_res":
                h = module(torch.cat([h, skips.pop()], dim=1), temb, spade_cond)
            elif role == "out_norm":
                h = module(h, None, spade_cond)
            else:
                h = module(h)
        return h


def linear_schedule(num_classes: int, sigma_begin: float, sigma_end: float):
    """The authors' DDPM schedule, indexed from the noisiest level (0) to the cleanest (T-1):
    ``betas = linspace(sigma_begin, sigma_end, T)``, ``alphas[t] = prod_{s >= t} (1 - betas[s])``."""
    betas = torch.linspace(sigma_begin, sigma_end, num_classes)
    alphas = torch.cumprod(1 - betas.flip(0), 0).flip(0)
    alphas_prev = torch.cat([alphas[1:], torch.ones(1)])
    return betas, alphas, alphas_prev


def denoising_loss(score_net: Callable, alphas: torch.Tensor, target: torch.Tensor,
                   cond: Optional[torch.Tensor]) -> torch.Tensor:
    """DDPM's noise-prediction objective as the authors write it: a level ``t`` and noise ``z`` per clip
    (drawn in that order from torch's global generator), ``x_t = sqrt(a_t) x + sqrt(1 - a_t) z``, and
    ``mean over clips of 1/2 * sum over pixels of (z - eps(x_t, t, cond))^2``."""
    batch = target.shape[0]
    labels = torch.randint(0, len(alphas), (batch,), device=target.device)
    noise = torch.randn_like(target)
    used = alphas[labels].reshape(batch, 1, 1, 1)
    noisy = used.sqrt() * target + (1 - used).sqrt() * noise
    residual = noise - score_net(noisy, labels, cond)
    return (0.5 * residual.square()).reshape(batch, -1).sum(dim=-1).mean(dim=0)


def sampling_schedule(alphas: torch.Tensor, alphas_prev: torch.Tensor, betas: torch.Tensor, steps: int):
    """The levels visited with ``steps`` sampling steps, as the authors subsample: every ``T // steps``-th
    level from 0, with alphas re-chained (``betas = 1 - a / a_prev``); all T levels when ``steps >= T``."""
    total = len(alphas)
    if steps < total:
        levels = list(range(0, total, total // steps))
        alphas = alphas[torch.tensor(levels, device=alphas.device)]
        alphas_prev = torch.cat([alphas[1:], torch.ones(1, device=alphas.device, dtype=alphas.dtype)])
        betas = 1.0 - alphas / alphas_prev
        return levels, alphas, alphas_prev, betas
    return list(range(total)), alphas, alphas_prev, betas


@torch.no_grad()
def sample_frames(score_net: Callable, x: torch.Tensor, cond: Optional[torch.Tensor], alphas: torch.Tensor,
                  alphas_prev: torch.Tensor, betas: torch.Tensor, steps: int, sampler: str = "ddpm",
                  noise: Optional[Callable[[], torch.Tensor]] = None, clip_before: bool = True,
                  denoise: bool = True) -> torch.Tensor:
    """Run the authors' DDPM (ancestral) or DDIM (eta 0) sampler from ``x`` (pure noise) to frames.

    ``noise()`` gives the ancestral noise of each DDPM step but the last. The final denoising step
    passes the level index ``L - 1`` (L = the number of levels visited), not the last level visited,
    as the reference does; with fewer steps than levels this is a quirk kept for fidelity.
    """
    levels, alphas, alphas_prev, betas = sampling_schedule(alphas, alphas_prev, betas, steps)
    count = len(levels)
    batch = x.shape[0]
    for i, level in enumerate(levels):
        a, a_prev, beta = alphas[i], alphas_prev[i], betas[i]
        labels = torch.full((batch,), level, dtype=torch.long, device=x.device)
        eps = score_net(x, labels, cond)
        x0 = (1 / a.sqrt()) * (x - (1 - a).sqrt() * eps)
        if clip_before:
            x0 = x0.clamp(-1, 1)
        if sampler == "ddim":
            x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
            continue
        x = (a_prev.sqrt() * beta / (1 - a)) * x0 + ((1 - beta).sqrt() * (1 - a_prev) / (1 - a)) * x
        if i + 1 < count:
            x = x + ((1 - a_prev) / (1 - a) * beta).sqrt() * noise()
    if denoise:
        labels = torch.full((batch,), count - 1, dtype=torch.long, device=x.device)
        x = x - (1 - alphas[-1]).sqrt() * score_net(x, labels, cond)
    return x


def clip_seed(seed: int, clip: torch.Tensor) -> int:
    """A generator seed from the run's sampling seed and one clip's values: a clip gets the same
    sample whatever batch it comes in."""
    digest = hashlib.blake2b(clip.detach().to("cpu", torch.float32).contiguous().numpy().tobytes(),
                             digest_size=8, key=int(seed).to_bytes(8, "little"))
    return int.from_bytes(digest.digest(), "little") & ((1 << 63) - 1)


class MCVDModel(STModel):
    """MCVD for frame prediction: a masked conditional video diffusion model that samples ``num_frames``
    frames at a time given the last ``num_frames_cond`` frames, autoregressively (block-wise).

    Predictions are samples: ``forward`` draws its noise from generators seeded by ``sample_seed`` and
    each clip's values, so the same clip gives the same sample on every evaluation.
    """

    def __init__(self, task, *, ngf: int, ch_mult: Sequence[int], num_res_blocks: int,
                 attn_resolutions: Sequence[int], n_head_channels: int, dropout: float, num_frames: int,
                 num_frames_cond: int, spade: bool, spade_dim: int, num_classes: int, sigma_begin: float,
                 sigma_end: float, sampler: str, sampling_steps: int, clip_before: bool, denoise: bool,
                 rescaled: bool, prob_mask_cond: float, sample_seed: int):
        super().__init__()
        channels, height, width = task.shape
        self.channels, self.num_frames, self.num_frames_cond = channels, int(num_frames), int(num_frames_cond)
        self.unet = ScoreNet(channels, width, self.num_frames, self.num_frames_cond, ngf, ch_mult,
                             num_res_blocks, attn_resolutions, n_head_channels, dropout, spade, spade_dim)
        betas, alphas, alphas_prev = linear_schedule(num_classes, sigma_begin, sigma_end)
        self.register_buffer("betas", betas, persistent=False)
        self.register_buffer("alphas", alphas, persistent=False)
        self.register_buffer("alphas_prev", alphas_prev, persistent=False)
        self.sampler, self.sampling_steps = sampler, int(sampling_steps)
        self.clip_before, self.denoise, self.rescaled = bool(clip_before), bool(denoise), bool(rescaled)
        self.prob_mask_cond, self.sample_seed = float(prob_mask_cond), int(sample_seed)

    def _frames(self, seq: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W] -> [B, T*C, H, W]`` (frame-major channels, the authors' layout)."""
        return seq.reshape(seq.shape[0], -1, *seq.shape[-2:])

    def loss(self, x, y, step):
        """The denoising loss on one window of ``c + k`` frames of ``x ++ y``: the last ``c`` observed
        frames condition the first ``k`` targets (the window slides back into ``x`` when ``t_out < k``)."""
        c, k = self.num_frames_cond, self.num_frames
        seq = torch.cat([x, y], dim=1)
        if self.rescaled:
            seq = 2 * seq - 1
        start = min(x.shape[1] - c, seq.shape[1] - c - k)
        cond = self._frames(seq[:, start:start + c])
        target = self._frames(seq[:, start + c:start + c + k])
        if self.prob_mask_cond > 0:  # MCVD's past masking: drop the whole condition for some clips
            keep = torch.rand(x.shape[0], device=x.device) > self.prob_mask_cond
            cond = keep.reshape(-1, 1, 1, 1) * cond
        return denoising_loss(self.unet, self.alphas, target, cond)

    def _noise_source(self, x: torch.Tensor, block_shape) -> Callable[[], torch.Tensor]:
        generators = [torch.Generator().manual_seed(clip_seed(self.sample_seed, clip)) for clip in x]
        return lambda: torch.stack([torch.randn(block_shape, generator=g) for g in generators]).to(x.device)

    def forward(self, x, t_out):
        if x.device.type == "meta":
            return self._shapes_only(x, t_out)
        block_shape = (self.num_frames * x.shape[2], *x.shape[-2:])
        return self.predict(x, t_out, self._noise_source(x, block_shape))

    @torch.no_grad()
    def _shapes_only(self, x: torch.Tensor, t_out: int) -> torch.Tensor:
        """The meta-device pass that MAC counting makes: every score evaluation of the rollout stacked
        into one batch (the same multiply-accumulates as the loop; thousands of meta calls take minutes)."""
        batch, _, channels, height, width = x.shape
        levels = len(sampling_schedule(self.alphas, self.alphas_prev, self.betas, self.sampling_steps)[0])
        n = batch * math.ceil(t_out / self.num_frames) * (levels + int(self.denoise))
        self.unet(x.new_empty(n, self.num_frames * channels, height, width),
                  torch.zeros(n, dtype=torch.long, device=x.device),
                  x.new_empty(n, self.num_frames_cond * channels, height, width))
        return x.new_empty(batch, t_out, channels, height, width)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, t_out: int, noise: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The authors' prediction rollout with noise from ``noise()`` (``[B, k*C, H, W]`` per call, drawn
        in their order: each block's starting noise, then its DDPM steps' noise)."""
        batch, _, channels, height, width = x.shape
        c, k = self.num_frames_cond, self.num_frames
        seq = 2 * x - 1 if self.rescaled else x
        cond = self._frames(seq[:, -c:])
        blocks = []
        for _ in range(math.ceil(t_out / k)):
            frames = sample_frames(self.unet, noise(), cond, self.alphas, self.alphas_prev, self.betas,
                                   self.sampling_steps, self.sampler, noise, self.clip_before, self.denoise)
            blocks.append(frames)
            # the next block is conditioned on the last c frames so far (samples unclipped, as the authors)
            cond = torch.cat([cond[:, channels * k:], frames[:, channels * max(0, k - c):]], dim=1)
        pred = torch.cat(blocks, dim=1)[:, :t_out * channels].reshape(batch, t_out, channels, height, width)
        return ((pred + 1) / 2).clamp(0, 1) if self.rescaled else pred

    def record_notes(self) -> Dict[str, Any]:
        levels = sampling_schedule(self.alphas, self.alphas_prev, self.betas, self.sampling_steps)[0]
        return {
            "predictions": (f"stochastic samples ({self.sampler.upper()} sampler, {len(levels)} of "
                            f"{len(self.alphas)} noise levels, seeded by sample_seed={self.sample_seed} "
                            f"and each clip, so repeatable)"),
            "conditioning": "SPATIN (SPADE)" if self.unet.spade else "concatenation",
            "block": f"{self.num_frames} frames sampled per block given the last {self.num_frames_cond}",
        }


HPARAMS = ("ngf", "ch_mult", "num_res_blocks", "attn_resolutions", "n_head_channels", "dropout", "num_frames",
           "num_frames_cond", "spade", "spade_dim", "num_classes", "sigma_begin", "sigma_end", "sampler",
           "sampling_steps", "clip_before", "denoise", "rescaled", "prob_mask_cond", "sample_seed")


def _int_list(name, value) -> List[int]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and v > 0 for v in value):
        raise UserError(f"mcvd: {name} must be a list of positive integers (e.g. [1, 2, 3, 4]), got {value!r}")
    return [int(v) for v in value]


def check_hparams(task, hparams: Dict[str, Any]) -> Dict[str, Any]:
    """The hyper-parameters MCVD is built from, checked against the task (one-line UserError otherwise)."""
    missing = [key for key in HPARAMS if key not in hparams]
    if missing:
        raise UserError(f"mcvd: missing hyper-parameter(s) {', '.join(missing)}; set them with --set KEY=VALUE")
    hp = {key: hparams[key] for key in HPARAMS}
    hp["ch_mult"] = _int_list("ch_mult", hp["ch_mult"])
    hp["attn_resolutions"] = _int_list("attn_resolutions", hp["attn_resolutions"]) if hp["attn_resolutions"] else []
    for key in ("ngf", "num_res_blocks", "num_classes", "sampling_steps", "spade_dim"):
        if not isinstance(hp[key], int) or hp[key] < 1:
            raise UserError(f"mcvd: {key} must be a positive integer, got {hp[key]!r}")
    c = task.t_in if hp["num_frames_cond"] in (None, 0) else hp["num_frames_cond"]
    k = task.t_out if hp["num_frames"] in (None, 0) else hp["num_frames"]
    if not isinstance(c, int) or not 1 <= c <= task.t_in:
        raise UserError(f"mcvd: num_frames_cond={c} must be between 1 and the {task.t_in} observed frames of "
                        f"{task.name}; use --set num_frames_cond=N (0 means all observed frames)")
    if not isinstance(k, int) or k < 1 or c + k > task.t_in + task.t_out:
        raise UserError(f"mcvd: num_frames={k} (frames per block) must be at least 1 and, with num_frames_cond={c}, "
                        f"fit the {task.length} frames of a {task.name} clip; use --set num_frames=N")
    hp["num_frames_cond"], hp["num_frames"] = c, k
    if hp["sampler"] not in SAMPLERS:
        raise UserError(f"mcvd: sampler must be one of {', '.join(SAMPLERS)}, got {hp['sampler']!r}")
    if not 0 <= float(hp["prob_mask_cond"]) < 1:
        raise UserError(f"mcvd: prob_mask_cond must be in [0, 1), got {hp['prob_mask_cond']!r}")
    if not 0 < hp["sigma_end"] < 1 or not 0 < hp["sigma_begin"] < 1:
        raise UserError("mcvd: sigma_begin and sigma_end are betas of the linear schedule, each in (0, 1)")
    _, height, width = task.shape
    factor = 2 ** (len(hp["ch_mult"]) - 1)
    if height % factor or width % factor:
        raise UserError(f"mcvd: frames of {height}x{width} do not halve {len(hp['ch_mult']) - 1} times "
                        f"(ch_mult has {len(hp['ch_mult'])} levels); use a shorter ch_mult")
    heads = hp["n_head_channels"]
    if heads != -1:
        for mult in hp["ch_mult"]:
            ch = hp["ngf"] * mult
            if ch >= heads and ch % heads:
                raise UserError(f"mcvd: attention over {ch} channels (ngf*{mult}) cannot use heads of "
                                f"n_head_channels={heads}; pick a divisor or -1 for one head")
    return hp


def build_mcvd(task, hparams) -> MCVDModel:
    return MCVDModel(task, **check_hparams(task, hparams))
