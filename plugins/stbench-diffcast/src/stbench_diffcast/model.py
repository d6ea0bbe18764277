"""DiffCast: a deterministic backbone (any registered stbench model) plus a residual diffusion conditioned on the
global spatio-temporal context, predicting ``y = mu(x) + r`` with r sampled segment by segment."""
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F

from stbench import STModel, Task, UserError, hparam_schema

from .diffusion import SCHEDULES, beta_schedule, cumulative_alphas, q_sample, sample, sampling_levels
from .gtunet import ContextEncoder, GTUNet

PROFILES = ("paper", "quick", "smoke")
DET_LOSSES = ("mse", "backbone")


class DiffCastModel(STModel):
    """DiffCast for one task.

    - ``mu = backbone(x, t_out)``: the global deterministic trend.
    - ``r = y - mu`` is modelled by a Gaussian diffusion over ``timesteps`` levels (on p x p patches stacked on
      channels when ``patch_size`` p > 1). The future is cut into
      segments of ``segment_length`` frames (0: one segment); segment i is denoised by the GTUNet given the
      noise level, mu of its frames, the last ``local_frames`` frames before it (observed, then predicted),
      the global context of ``[x, mu]`` and i.
    - Training loss ``alpha * L_diff + (1 - alpha) * L_det``: L_diff is DDPM's noise-prediction MSE over every
      segment (ground-truth frames as the local condition), L_det the backbone's MSE (or its own loss).
    - ``forward`` samples: r_T ~ N(0, I) per segment, then ``sampling_steps`` DDIM updates (eta 0) or the
      generalised sampler with ``eta``; every draw comes from torch's global generator.
    """

    stochastic = True

    def __init__(self, backbone: STModel, shape: Tuple[int, int, int], *, dim: int, context_dim: int, dim_mults,
                 num_res_blocks: int,
                 attn_heads: int, mid_attention: bool, dropout: float, patch_size: int, segment_length: int,
                 local_frames: int,
                 timesteps: int, beta_schedule_kind: str, sampling_steps: int, eta: float, loss_alpha: float,
                 det_loss: str, bounds: Optional[Tuple[float, float]] = None, notes: Optional[Dict[str, Any]] = None):
        super().__init__()
        self.patch_size = int(patch_size)
        channels = shape[0] * self.patch_size ** 2
        self.backbone = backbone
        self.unused_parameters = bool(backbone.unused_parameters)
        self.context = ContextEncoder(channels, [(context_dim or dim) * m for m in dim_mults])
        self.denoiser = GTUNet(channels, local_frames, dim, dim_mults, num_res_blocks, attn_heads, mid_attention,
                               dropout, context_dim)
        self.segment_length, self.local_frames = int(segment_length), int(local_frames)
        self.timesteps, self.eta, self.loss_alpha, self.det_loss = int(timesteps), float(eta), float(loss_alpha), det_loss
        self.betas64 = beta_schedule(beta_schedule_kind, self.timesteps)
        abar = cumulative_alphas(self.betas64)
        self.abar = [float(a) for a in abar]  # Python floats: the sampler's coefficients, exact and meta-safe
        self.register_buffer("alphas_cumprod", abar.float(), persistent=False)
        self.levels = sampling_levels(self.timesteps, int(sampling_steps))
        self.bounds = bounds
        self.notes = dict(notes or {})

    # -- pieces -----------------------------------------------------------------------------------------
    def segments(self, t_out: int) -> List[Tuple[int, int]]:
        """(first, end) frame indices of each segment of a t_out-frame future."""
        length = self.segment_length or t_out
        return [(start, min(start + length, t_out)) for start in range(0, t_out, length)]

    def local_condition(self, history: torch.Tensor, end: int) -> torch.Tensor:
        """The ``local_frames`` frames before index ``end`` of ``history``, the first frame repeated in front when
        fewer exist."""
        frames = history[:, max(0, end - self.local_frames):end]
        missing = self.local_frames - frames.shape[1]
        if missing > 0:
            frames = torch.cat([frames[:, :1].expand(-1, missing, -1, -1, -1), frames], dim=1)
        return frames

    def _prepare(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, T, C, H, W] -> [B, T, C * p^2, H' / p, W' / p]: replicate-padded up to multiples of p times the UNet's
        down-sampling factor, then cut into p x p patches stacked on channels (pixel unshuffle)."""
        factor = self.denoiser.factor * self.patch_size
        h, w = frames.shape[-2:]
        flat = frames.flatten(0, 1)
        ph, pw = (-h) % factor, (-w) % factor
        if ph or pw:
            flat = F.pad(flat, (0, pw, 0, ph), mode="replicate")
        if self.patch_size > 1:
            flat = F.pixel_unshuffle(flat, self.patch_size)
        return flat.unflatten(0, frames.shape[:2])

    def _restore(self, frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """The inverse of :meth:`_prepare` (patches back to pixels, padding cropped)."""
        flat = frames.flatten(0, 1)
        if self.patch_size > 1:
            flat = F.pixel_shuffle(flat, self.patch_size)
        return flat.unflatten(0, frames.shape[:2])[..., :height, :width]

    def _eps(self, context, mu_seg, local, segment: int, start: int):
        positions = torch.arange(start, start + mu_seg.shape[1], device=mu_seg.device)

        def eps(noisy: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
            return self.denoiser(noisy, level, mu_seg, local, context, segment, positions)

        return eps

    def _clip(self, mu_seg: torch.Tensor):
        """Keep mu + r0 within the data's (normalised) range while sampling, when the dataset has one."""
        if self.bounds is None:
            return None
        low, high = self.bounds

        def clip(r0: torch.Tensor) -> torch.Tensor:
            return torch.maximum(torch.minimum(r0, high - mu_seg), low - mu_seg)

        return clip

    # -- the contract -------------------------------------------------------------------------------------
    def predict(self, x: torch.Tensor, t_out: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """(mu, r): the backbone's prediction and one sampled residual, both [B, t_out, C, H, W]."""
        height, width = x.shape[-2:]
        mu = self.backbone(x, t_out)
        xp, mup = self._prepare(x), self._prepare(mu)
        context = self.context(torch.cat([xp, mup], dim=1))
        history = xp
        residuals = []
        for segment, (start, end) in enumerate(self.segments(t_out)):
            mu_seg = mup[:, start:end]
            local = self.local_condition(history, history.shape[1])
            if x.device.type == "meta":
                r = self._stacked_passes(context, mu_seg, local, segment, start)
            else:
                r = sample(self._eps(context, mu_seg, local, segment, start), mu_seg.shape, self.abar, self.levels,
                           self.eta, device=x.device, dtype=mu_seg.dtype, clip=self._clip(mu_seg))
            residuals.append(r)
            history = torch.cat([history, mu_seg + r], dim=1)
        r = self._restore(torch.cat(residuals, dim=1), height, width)
        return mu, r

    def _stacked_passes(self, context, mu_seg, local, segment: int, start: int) -> torch.Tensor:
        """Shapes only (the meta device, where FLOPs are counted): a segment's denoiser passes, one per visited
        level, run as one batch; they count the MACs of the sampling loop (convolutions and matmuls scale with the
        batch) in one pass instead of hundreds."""
        passes, batch = len(self.levels), mu_seg.shape[0]

        def stacked(t: torch.Tensor) -> torch.Tensor:
            return t.repeat(passes, *([1] * (t.dim() - 1)))

        noisy = torch.empty((passes * batch, *mu_seg.shape[1:]), device=mu_seg.device, dtype=mu_seg.dtype)
        level = torch.zeros(passes * batch, device=mu_seg.device, dtype=torch.long)
        eps = self._eps([stacked(c) for c in context], stacked(mu_seg), stacked(local), segment, start)(noisy, level)
        return eps[:batch]

    def forward(self, x: torch.Tensor, t_out: int) -> torch.Tensor:
        mu, r = self.predict(x, t_out)
        return mu + r

    def diffusion_loss(self, x: torch.Tensor, y: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """L_diff: the noise-prediction MSE over every frame of every segment (one level and one noise draw per
        clip and segment, from torch's global generator: for each segment in order, the levels, then the noise)."""
        xp, yp, mup = self._prepare(x), self._prepare(y), self._prepare(mu)
        context = self.context(torch.cat([xp, mup], dim=1))
        history = torch.cat([xp, yp], dim=1)  # the true past of every segment (teacher forcing)
        r0 = yp - mup
        total, count = 0.0, 0
        for segment, (start, end) in enumerate(self.segments(y.shape[1])):
            level = torch.randint(0, self.timesteps, (x.shape[0],), device=x.device)
            noise = torch.randn_like(r0[:, start:end])
            local = self.local_condition(history, x.shape[1] + start)
            eps = self._eps(context, mup[:, start:end], local, segment, start)
            pred = eps(q_sample(r0[:, start:end], level, noise, self.alphas_cumprod), level)
            total = total + F.mse_loss(pred, noise, reduction="sum")
            count += noise.numel()
        return total / count

    def loss(self, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        if self.det_loss == "backbone":
            det = self.backbone.loss(x, y, step)
            mu = self.backbone(x, y.shape[1])
        else:
            mu = self.backbone(x, y.shape[1])
            det = F.mse_loss(mu, y)
        return self.loss_alpha * self.diffusion_loss(x, y, mu) + (1 - self.loss_alpha) * det

    def on_epoch_start(self, epoch: int) -> None:
        self.backbone.on_epoch_start(epoch)

    def record_notes(self) -> Dict[str, Any]:
        sampler = "DDIM (eta 0)" if self.eta == 0 else f"generalised DDIM, eta {self.eta:g}"
        return {**self.notes,
                "predictions": f"stochastic samples: backbone trend + residual drawn by {sampler}, "
                               f"{len(self.levels)} of {self.timesteps} noise levels per segment"}


def _backbone_overrides(text: str, spec) -> Dict[str, Any]:
    """``key=value,key=value`` for the backbone's hyper-parameters, each checked against its declarations."""
    schema = hparam_schema(spec)
    out = {}
    for item in [part.strip() for part in str(text or "").split(",") if part.strip()]:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in schema:
            known = ", ".join(sorted(schema))
            raise UserError(f"diffcast: backbone_overrides item {item!r} must be KEY=VALUE with a hyper-parameter of "
                            f"'{spec.name}' ({known})")
        import yaml

        out[key] = schema[key].check(key, yaml.safe_load(value.strip()), f"diffcast backbone_overrides ({spec.name})")
    return out


def _dataset_facts(name: str):
    """(hparams_like, normalised value bounds or None) of a registered dataset; (None, None) if not registered."""
    from stbench import plugins

    spec = plugins.datasets().get(name)
    if spec is None:
        return None, None
    bounds = None
    if spec.value_range is not None and spec.mean is not None and spec.std is not None:
        mean = spec.mean if isinstance(spec.mean, (int, float)) else None
        std = spec.std if isinstance(spec.std, (int, float)) else None
        if mean is not None and std:
            bounds = ((spec.value_range[0] - mean) / std, (spec.value_range[1] - mean) / std)
    return spec.hparams_like, bounds


def build_backbone(task: Task, hparams: Mapping[str, Any]) -> Tuple[STModel, Dict[str, Any]]:
    """The backbone named by ``backbone``, built through the registry with its own declared hyper-parameters for
    ``backbone_profile`` and the task's dataset (``backbone_overrides`` on top)."""
    from stbench import plugins

    name, profile = str(hparams["backbone"]), str(hparams["backbone_profile"])
    if name == "diffcast":
        raise UserError("diffcast: the backbone must be a deterministic model, not diffcast itself (e.g. simvp, phydnet)")
    if profile not in PROFILES:
        raise UserError(f"diffcast: backbone_profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    spec = plugins.get_model(name)
    if spec.multitask:
        raise UserError(f"diffcast: backbone '{name}' is a joint (multi-task) model; choose a single-task model")
    like, _ = _dataset_facts(task.dataset)
    declared = spec.hparams_for(profile, task.dataset, like)
    declared.update(_backbone_overrides(hparams.get("backbone_overrides", ""), spec))
    model = spec.build(task, dict(declared))
    if model.stochastic:
        raise UserError(f"diffcast: backbone '{name}' samples (stochastic); DiffCast needs a deterministic backbone")
    return model, declared


def build_diffcast(task: Task, hparams: Mapping[str, Any]) -> DiffCastModel:
    """Build DiffCast from resolved hyper-parameters (see configs.yaml)."""
    h = dict(hparams)
    for key in ("dim", "context_dim", "num_res_blocks", "attn_heads", "patch_size", "timesteps", "sampling_steps"):
        if int(h[key]) < 1:
            raise UserError(f"diffcast: {key} must be at least 1, got {h[key]}")
    for key in ("segment_length", "local_frames"):
        if int(h[key]) < 0:
            raise UserError(f"diffcast: {key} must be 0 or more, got {h[key]}")
    mults = list(h["dim_mults"]) if isinstance(h["dim_mults"], (list, tuple)) else None
    if not mults or not all(isinstance(m, int) and m >= 1 for m in mults):
        raise UserError(f"diffcast: dim_mults must be a list of whole numbers >= 1, got {h['dim_mults']!r}")
    heads = int(h["attn_heads"])
    bad = [int(h["dim"]) * m for m in mults if (int(h["dim"]) * m) % heads]
    if bad:
        raise UserError(f"diffcast: attn_heads={heads} must divide every width dim * dim_mults (not {bad[0]})")
    if not 0.0 <= float(h["loss_alpha"]) <= 1.0:
        raise UserError(f"diffcast: loss_alpha must be in [0, 1], got {h['loss_alpha']}")
    if float(h["eta"]) < 0:
        raise UserError(f"diffcast: eta must be >= 0, got {h['eta']}")
    if h["beta_schedule"] not in SCHEDULES:
        raise UserError(f"diffcast: beta_schedule must be one of {', '.join(SCHEDULES)}, got {h['beta_schedule']!r}")
    if h["det_loss"] not in DET_LOSSES:
        raise UserError(f"diffcast: det_loss must be one of {', '.join(DET_LOSSES)}, got {h['det_loss']!r}")
    backbone, backbone_hparams = build_backbone(task, h)
    segment_length = int(h["segment_length"])
    local_frames = int(h["local_frames"]) or segment_length or task.t_out
    _, bounds = _dataset_facts(task.dataset)
    notes = {"backbone": str(h["backbone"]), "backbone_profile": str(h["backbone_profile"]),
             "backbone_hparams": backbone_hparams, "local_frames": local_frames,
             "clip_denoised": bool(h["clip_denoised"] and bounds is not None)}
    return DiffCastModel(backbone, tuple(task.shape), dim=int(h["dim"]), context_dim=int(h["context_dim"]),
                         dim_mults=mults,
                         num_res_blocks=int(h["num_res_blocks"]), attn_heads=heads,
                         mid_attention=bool(h["mid_attention"]), dropout=float(h["dropout"]),
                         patch_size=int(h["patch_size"]), segment_length=segment_length, local_frames=local_frames,
                         timesteps=int(h["timesteps"]),
                         beta_schedule_kind=h["beta_schedule"], sampling_steps=int(h["sampling_steps"]),
                         eta=float(h["eta"]), loss_alpha=float(h["loss_alpha"]), det_loss=h["det_loss"],
                         bounds=bounds if h["clip_denoised"] else None, notes=notes)
