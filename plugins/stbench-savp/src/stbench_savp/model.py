"""SAVP (Lee et al., arXiv 1804.01523) as alexlee-gk/video_prediction's ``savp_model.py`` builds it: a
convolutional-LSTM encoder-decoder that composites CDNA-transformed, background and generated images with
softmax masks, conditioned at every step on a latent z_t (posterior encoder in training, N(0, 1) for the
future at test time), trained with L1, KL, and LSGAN losses from spectrally normalised video (and optionally
image) discriminators, one on prior samples (GAN) and one on posterior samples (VAE-GAN)."""
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from stbench import STModel, UserError
from stbench_sv2p.ops import apply_cdna, composite, gaussian_kl, inverse_sigmoid, normalize_kernels

from .layers import (ConvPool2d, LSTMCell, NormConvLSTMCell, PosteriorEncoder, SNDiscriminator, UpsampleConv2d,
                     discriminator_input_ok, instance_norm, trunc_normal)

VARIANTS = ("savp", "savp-vae", "savp-gan", "deterministic", "deterministic-l2")
REFERENCE_SETS = ("kth", "bair_action_free")
# The reference's hparams/<set>/<ours_...>/model_hparams.json, over savp_model's and base_model's defaults
# (gan_loss_type LSGAN, kl_anneal linear). Keys: weights of the generator's losses and Adam's beta1. The same
# files set nz (hparam `nz`: kth 32; bair_action_free 8, savp_model's default; the deterministic files 0, which
# is what makes them deterministic) and lr and batch_size (training settings; README.md lists them per variant).
_JSON = {"savp": "ours_savp", "savp-vae": "ours_vae_l1", "savp-gan": "ours_gan",
         "deterministic": "ours_deterministic_l1", "deterministic-l2": "ours_deterministic_l2"}
PRESETS: Dict[Tuple[str, str], Dict[str, float]] = {
    ("kth", "savp"): dict(l1=100.0, l2=0.0, kl=0.01, video_gan=0.1, video_vae_gan=0.1, gan_cdist=0.0,
                          vae_gan_cdist=10.0, beta1=0.5),
    ("kth", "savp-gan"): dict(l1=100.0, l2=0.0, kl=0.0, video_gan=0.1, video_vae_gan=0.0, gan_cdist=10.0,
                              vae_gan_cdist=0.0, beta1=0.5),
    ("kth", "savp-vae"): dict(l1=1.0, l2=0.0, kl=1e-5, video_gan=0.0, video_vae_gan=0.0, gan_cdist=0.0,
                              vae_gan_cdist=0.0, beta1=0.9),
    ("kth", "deterministic"): dict(l1=1.0, l2=0.0, kl=0.0, video_gan=0.0, video_vae_gan=0.0, gan_cdist=0.0,
                                   vae_gan_cdist=0.0, beta1=0.9),
    ("kth", "deterministic-l2"): dict(l1=0.0, l2=1.0, kl=0.0, video_gan=0.0, video_vae_gan=0.0, gan_cdist=0.0,
                                      vae_gan_cdist=0.0, beta1=0.9),
    ("bair_action_free", "savp"): dict(l1=100.0, l2=0.0, kl=1.0, video_gan=0.1, video_vae_gan=0.1, gan_cdist=0.0,
                                       vae_gan_cdist=10.0, beta1=0.5),
    ("bair_action_free", "savp-gan"): dict(l1=100.0, l2=0.0, kl=0.0, video_gan=0.1, video_vae_gan=0.0,
                                           gan_cdist=10.0, vae_gan_cdist=0.0, beta1=0.5),
    ("bair_action_free", "savp-vae"): dict(l1=1.0, l2=0.0, kl=0.001, video_gan=0.0, video_vae_gan=0.0,
                                           gan_cdist=0.0, vae_gan_cdist=0.0, beta1=0.9),
    ("bair_action_free", "deterministic"): dict(l1=1.0, l2=0.0, kl=0.0, video_gan=0.0, video_vae_gan=0.0,
                                                gan_cdist=0.0, vae_gan_cdist=0.0, beta1=0.9),
    ("bair_action_free", "deterministic-l2"): dict(l1=0.0, l2=1.0, kl=0.0, video_gan=0.0, video_vae_gan=0.0,
                                                   gan_cdist=0.0, vae_gan_cdist=0.0, beta1=0.9),
}


def layer_specs(scale: int, ngf: int) -> Tuple[List[Tuple[int, bool]], List[Tuple[int, bool]]]:
    """SAVPCell's (width, has a ConvLSTM) per encoder and decoder layer, chosen by min(height, width)."""
    if scale >= 256:
        return ([(ngf, False), (ngf * 2, False), (ngf * 4, True), (ngf * 8, True), (ngf * 8, True)],
                [(ngf * 8, True), (ngf * 4, True), (ngf * 2, False), (ngf, False), (ngf, False)])
    if scale >= 128:
        return ([(ngf, False), (ngf * 2, True), (ngf * 4, True), (ngf * 8, True)],
                [(ngf * 8, True), (ngf * 4, True), (ngf * 2, False), (ngf, False)])
    if scale >= 64:
        return [(ngf, True), (ngf * 2, True), (ngf * 4, True)], [(ngf * 2, True), (ngf, True), (ngf, False)]
    if scale >= 32:
        return [(ngf, True), (ngf * 2, True)], [(ngf, True), (ngf, False)]
    raise UserError(f"savp: frames must be at least 32 pixels high and wide (SAVPCell's smallest layout), got {scale}")


def identity_kernel(size: int) -> torch.Tensor:
    """savp_model.identity_kernel: 1 at the centre (the central 2x2, averaged, for an even size)."""
    kernel = torch.zeros(size, size)
    centre = slice(size // 2 - 1, size // 2 + 1) if size % 2 == 0 else slice(size // 2, size // 2 + 1)
    kernel[centre, centre] = 1.0
    return kernel / kernel.sum()


class SAVPGenerator(nn.Module):
    """SAVPCell (transformation 'cdna', where_add 'all', tile-concatenated z, conv_pool2d down-sampling,
    upsample_conv2d up-sampling, instance norms, ReLU): one step maps the current frame (with the first frame
    beside it) and the latent features to the next frame."""

    def __init__(self, channels: int, height: int, width: int, ngf: int, nz: int, num_transformed_images: int,
                 kernel_size: int, relu_shift: float):
        super().__init__()
        self.encoder_specs, self.decoder_specs = layer_specs(min(height, width), ngf)
        levels = len(self.encoder_specs)
        if height % 2 ** levels or width % 2 ** levels:
            raise UserError(f"savp: the frame ({height}x{width}) must be divisible by the total stride {2 ** levels}")
        self.nz, self.kernel_size, self.relu_shift = nz, kernel_size, relu_shift
        self.num_transformed = num_transformed_images
        self.rnn_z = LSTMCell(nz, nz) if nz else None
        self.down, self.down_norms, self.down_lstms = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        cin = 2 * channels
        widths = []
        for i, (out, has_lstm) in enumerate(self.encoder_specs):
            self.down.append(ConvPool2d(cin + nz, out, 5 if i == 0 else 3))
            self.down_norms.append(instance_norm(out))
            self.down_lstms.append(NormConvLSTMCell(out + nz, out) if has_lstm else nn.Identity())
            widths.append(out)
            cin = out
        self.up, self.up_norms, self.up_lstms = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for i, (out, has_lstm) in enumerate(self.decoder_specs):
            skip = widths[levels - i - 1] if i > 0 else 0
            self.up.append(UpsampleConv2d(cin + skip + nz, out))
            self.up_norms.append(instance_norm(out))
            self.up_lstms.append(NormConvLSTMCell(out + nz, out) if has_lstm else nn.Identity())
            cin = out
        self.num_lstms = sum(has for _, has in self.encoder_specs + self.decoder_specs)
        smallest = widths[-1] * (height // 2 ** levels) * (width // 2 ** levels)
        self.cdna_kernels = nn.Linear(smallest, kernel_size * kernel_size * num_transformed_images)
        self.register_buffer("identity", identity_kernel(kernel_size), persistent=False)
        self.scratch_hidden, self.scratch_norm = nn.Conv2d(cin, ngf, 3, padding=1), instance_norm(ngf)
        self.scratch = nn.Conv2d(ngf, channels, 3, padding=1)
        self.num_images = num_transformed_images + 3  # CDNA images, the current frame, the first frame, scratch
        self.masks_hidden, self.masks_norm = nn.Conv2d(cin, ngf, 3, padding=1), instance_norm(ngf)
        self.masks = nn.Conv2d(ngf + self.num_images * channels, self.num_images, 3, padding=1)
        for layer in (self.cdna_kernels, self.scratch_hidden, self.scratch, self.masks_hidden, self.masks):
            trunc_normal(layer.weight)
            nn.init.zeros_(layer.bias)

    def step(self, image: torch.Tensor, first: torch.Tensor, z: Optional[torch.Tensor], states):
        """One step; ``z``: ``[B, nz]`` (the rnn_z output) or None; ``states``: (conv LSTM states, rnn_z state)."""
        conv_states, z_state = states
        conv_states = list(conv_states) if conv_states is not None else [None] * self.num_lstms
        if self.rnn_z is not None:
            z, z_state = self.rnn_z(z, z_state)

        def tiled(h):
            return h if z is None else torch.cat([h, z[:, :, None, None].expand(-1, -1, *h.shape[-2:])], dim=1)

        layers, used = [], 0
        for i in range(len(self.encoder_specs)):
            h = torch.cat([image, first], dim=1) if i == 0 else layers[-1]
            h = F.relu(self.down_norms[i](self.down[i](tiled(h))))
            if self.encoder_specs[i][1]:
                h, conv_states[used] = self.down_lstms[i](tiled(h), conv_states[used])
                used += 1
            layers.append(h)
        levels = len(layers)
        for i in range(len(self.decoder_specs)):
            h = layers[-1] if i == 0 else torch.cat([layers[-1], layers[levels - i - 1]], dim=1)
            h = F.relu(self.up_norms[i](self.up[i](tiled(h))))
            if self.decoder_specs[i][1]:
                h, conv_states[used] = self.up_lstms[i](tiled(h), conv_states[used])
                used += 1
            layers.append(h)
        top, k = layers[-1], self.kernel_size
        kernels = self.cdna_kernels(layers[levels - 1].flatten(1)).view(-1, self.num_transformed, k, k) + self.identity
        transformed = apply_cdna(image, normalize_kernels(kernels, self.relu_shift), padding="symmetric")
        scratch = torch.sigmoid(self.scratch(F.relu(self.scratch_norm(self.scratch_hidden(top)))))
        transformed += [image, first, scratch]
        h_masks = F.relu(self.masks_norm(self.masks_hidden(top)))
        masks = torch.softmax(self.masks(torch.cat([h_masks] + transformed, dim=1)), dim=1)  # dependent masks
        return composite(transformed, masks), (conv_states, z_state)

    def unroll(self, frames: torch.Tensor, zs: Optional[torch.Tensor], steps: int,
               ground_truth: Optional[torch.Tensor]) -> torch.Tensor:
        """``steps`` steps from ``frames[:, 0]``. At step t the input is ``frames[:, t]`` where ``ground_truth[t]``
        (``[steps, B]`` booleans; None: the known frames) says so, else the previous output. Returns
        ``[B, steps, C, H, W]``, the predictions of frames 1..steps."""
        first, known = frames[:, 0], frames.shape[1]
        generated, states, outputs = torch.zeros_like(first), (None, None), []
        for t in range(steps):
            if t < known:
                mask = ground_truth[t] if ground_truth is not None else torch.ones(
                    first.shape[0], dtype=torch.bool, device=first.device)
                image = torch.where(mask.view(-1, 1, 1, 1), frames[:, t], generated)
            else:
                image = generated
            generated, states = self.step(image, first, zs[:, t] if zs is not None else None, states)
            outputs.append(generated)
        return torch.stack(outputs, dim=1)


def lsgan(logits: torch.Tensor, label: float) -> torch.Tensor:
    """losses.gan_loss with gan_loss_type 'LSGAN': mean((logits - label)^2)."""
    return (logits - label).pow(2).mean()


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """losses.cosine_distance: features normalised over channels (+1e-10), mean over positions of half the
    squared distance."""
    a = a / (a.norm(dim=1, keepdim=True) + 1e-10)
    b = b / (b.norm(dim=1, keepdim=True) + 1e-10)
    return (a - b).pow(2).sum(dim=1).mean() / 2


def kl_loss(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """losses.kl_loss against N(0, 1): the KL summed over the nz latent dimensions, averaged over steps and clips."""
    return gaussian_kl(mean, logvar).sum(dim=-1).mean()


def kl_weight(step: int, weight: float, start: int, end: int) -> float:
    """base_model's kl_anneal 'linear': ``weight * (clip(step, start, end) - start) / (end - start)``."""
    if end <= start:
        return weight if step >= end else 0.0
    return weight * (min(max(step, start), end) - start) / (end - start)


def ground_truth_mask(batch: int, steps: int, context: int, step: int, k: float,
                      device=None) -> torch.Tensor:
    """SAVPCell's schedule sampling ('inverse_sigmoid', from step 0): the context frames always; after them each
    clip and step takes the true frame with probability ``k / (k + exp(step / k))``, never once it is < 0.001."""
    mask = torch.zeros(steps, batch, dtype=torch.bool, device=device)
    mask[:context] = True
    probability = inverse_sigmoid(step, k)
    if probability >= 0.001 and steps > context:
        mask[context:] = torch.rand(steps - context, batch, device=device) < probability
    return mask


class SAVP(STModel):
    """SAVP and its ablations (``variant``): the generator, the posterior encoder (when nz > 0) and the
    discriminators its losses need. ``forward`` infers z for the observed transitions and draws the rest from
    N(0, 1) with torch's global generator. GAN variants train in two stages per step (discriminators, then the
    generator against the updated discriminators), as the reference's default (``joint_gan_optimization`` off)."""

    stochastic = True

    def __init__(self, task, *, variant: str, reference_set: str, nz: int, ngf: int, ndf: int, nef: int, n_layers: int,
                 num_transformed_images: int, cdna_kernel_size: int, relu_shift: float, clip_length: int,
                 schedule_sampling_k: float, kl_anneal_start: int, kl_anneal_end: int, image_sn_gan_weight: float,
                 image_sn_vae_gan_weight: float):
        super().__init__()
        if variant not in VARIANTS:
            raise UserError(f"savp: variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        if reference_set not in REFERENCE_SETS:
            raise UserError(f"savp: reference_set must be one of {', '.join(REFERENCE_SETS)}, got {reference_set!r}")
        channels, height, width = task.shape
        self.variant, self.reference_set = variant, reference_set
        self.weights = dict(PRESETS[(reference_set, variant)])
        self.weights.update(image_gan=float(image_sn_gan_weight), image_vae_gan=float(image_sn_vae_gan_weight))
        if nz < 1:
            raise UserError("savp: nz (the latent size) must be >= 1; the deterministic variants are the model "
                            "without one")
        nz = 0 if variant.startswith("deterministic") else int(nz)
        self.nz, self.t_in = nz, task.t_in
        self.k, self.kl_start, self.kl_end = float(schedule_sampling_k), int(kl_anneal_start), int(kl_anneal_end)
        self.generator = SAVPGenerator(channels, height, width, int(ngf), nz, int(num_transformed_images),
                                       int(cdna_kernel_size), float(relu_shift))
        self.encoder = PosteriorEncoder(channels, int(nef), int(n_layers), nz) if nz else None
        self.stochastic = nz > 0
        w = self.weights
        if not nz and (w["video_vae_gan"] or w["image_vae_gan"]):
            raise UserError("savp: VAE-GAN losses need a posterior (nz > 0)")
        frames = task.t_in + task.t_out - 1
        uses_video = w["video_gan"] or w["video_vae_gan"]
        self.clip_length = int(clip_length)
        fits = self.clip_length <= frames and discriminator_input_ok(3, (self.clip_length, height, width))
        if uses_video and not fits:
            raise UserError(f"savp: the video discriminator takes clips of clip_length {clip_length} of the "
                            f"{frames} predicted frames of {task.name} and needs at least 4 frames and 8 pixels; "
                            f"choose clip_length between 4 and {frames} (--set clip_length=...)")
        self.discriminators = nn.ModuleDict()
        for name, dims, size in (("video_gan", 3, (self.clip_length, height, width)),
                                 ("video_vae_gan", 3, (self.clip_length, height, width)),
                                 ("image_gan", 2, (height, width)), ("image_vae_gan", 2, (height, width))):
            if w[name]:
                self.discriminators[name] = SNDiscriminator(dims, channels, int(ndf), size)
        self.update_stages = ("discriminator", "generator") if len(self.discriminators) else ()
        self.beta1 = float(w["beta1"])

    # -- sampling -------------------------------------------------------------------------------------------
    def posterior(self, frames: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean, logvar = self.encoder(frames)
        return mean + torch.exp(logvar / 2) * torch.randn_like(mean), mean, logvar

    def forward(self, x: torch.Tensor, t_out: int) -> torch.Tensor:
        steps = self.t_in + t_out - 1
        zs = None
        if self.nz:
            future = x.new_empty(x.shape[0], steps - (self.t_in - 1), self.nz).normal_()
            parts = [self.posterior(x)[0], future] if self.t_in > 1 else [future]
            zs = torch.cat(parts, dim=1)  # observed transitions from the posterior, the future from N(0, 1)
        return self.generator.unroll(x, zs, steps, None)[:, self.t_in - 1:]

    # -- training -------------------------------------------------------------------------------------------
    def generate(self, frames: torch.Tensor, step: int) -> Dict[str, torch.Tensor]:
        """savp_model.generator_fn in training: posterior z for every transition; the prior run takes the
        posterior for the observed transitions and N(0, 1) after them; each run samples its own scheduled
        sampling. Returns the prior run ``gen`` and, with nz > 0, the posterior run ``gen_enc`` and its z stats."""
        b, t = frames.shape[:2]
        steps = t - 1
        out = {}
        if self.nz:
            zs, mean, logvar = self.posterior(frames)
            out.update(mean=mean, logvar=logvar)
            prior = torch.cat([zs[:, :self.t_in - 1], torch.randn_like(zs[:, self.t_in - 1:])], dim=1)
            out["gen_enc"] = self.generator.unroll(frames, zs, steps, self._mask(b, steps, step, frames.device))
        else:
            prior = None
        out["gen"] = self.generator.unroll(frames, prior, steps, self._mask(b, steps, step, frames.device))
        return out

    def _mask(self, batch, steps, step, device):
        return ground_truth_mask(batch, steps, self.t_in, step, self.k, device)

    def _sample(self, name: str, video: torch.Tensor) -> torch.Tensor:
        """discriminator_given_video_fn: per clip a random window of ``clip_length`` frames (video discriminators,
        ``[B, C, T, H, W]``) or one random frame (image discriminators)."""
        b, t = video.shape[:2]
        rows = torch.arange(b, device=video.device)
        if name.startswith("video"):
            start = torch.randint(0, t - self.clip_length + 1, (b,), device=video.device)
            index = start[:, None] + torch.arange(self.clip_length, device=video.device)
            return video[rows[:, None], index].transpose(1, 2)
        return video[rows, torch.randint(0, t, (b,), device=video.device)]

    def _fake(self, name: str, outputs) -> torch.Tensor:
        return outputs["gen_enc"] if name.endswith("vae_gan") else outputs["gen"]

    def discriminator_loss(self, outputs, targets) -> torch.Tensor:
        """base_model.discriminator_loss_fn: per discriminator ``weight * (LSGAN(real, 1) + LSGAN(fake, 0))``, the
        fakes detached; the power iteration of each spectral norm advances once, on the real clips."""
        loss = targets.new_zeros(())
        for name, disc in self.discriminators.items():
            _, real = disc(self._sample(name, targets), update=True)
            _, fake = disc(self._sample(name, self._fake(name, outputs).detach()))
            loss = loss + self.weights[name] * (lsgan(real, 1.0) + lsgan(fake, 0.0))
        return loss

    def generator_loss(self, outputs, targets, step: int) -> torch.Tensor:
        """base_model.generator_loss_fn: L1 / L2 of the posterior run (the prior run without a posterior),
        LSGAN(fake, 1) per discriminator, feature matching (cosine distance of the discriminators' activations
        on fake and real clips), and the annealed KL of the posterior."""
        w = self.weights
        recon = outputs.get("gen_enc", outputs["gen"])
        loss = targets.new_zeros(())
        if w["l1"]:
            loss = loss + w["l1"] * (recon - targets).abs().mean()
        if w["l2"]:
            loss = loss + w["l2"] * (recon - targets).pow(2).mean()
        for name, disc in self.discriminators.items():
            features, logits = disc(self._sample(name, self._fake(name, outputs)))
            loss = loss + w[name] * lsgan(logits, 1.0)
            cdist = w["vae_gan_cdist"] if name.endswith("vae_gan") else w["gan_cdist"]
            if cdist:
                with torch.no_grad():
                    real_features, _ = disc(self._sample(name, targets))
                loss = loss + cdist * sum(cosine_distance(f, r) for f, r in zip(features, real_features))
        if w["kl"] and self.nz:
            weight = kl_weight(step, w["kl"], self.kl_start, self.kl_end)
            loss = loss + weight * kl_loss(outputs["mean"], outputs["logvar"])
        return loss

    def stage_losses(self, x, y, step):
        frames = torch.cat([x, y], dim=1)
        outputs = self.generate(frames, step)
        yield "discriminator", self.discriminator_loss(outputs, frames[:, 1:])
        yield "generator", self.generator_loss(outputs, frames[:, 1:], step)  # through the updated discriminators

    def loss(self, x, y, step):
        frames = torch.cat([x, y], dim=1)
        outputs = self.generate(frames, step)
        loss = self.generator_loss(outputs, frames[:, 1:], step)
        if self.discriminators:
            loss = loss + self.discriminator_loss(outputs, frames[:, 1:])
        return loss

    def optimizer_param_groups(self, train_cfg):
        betas = (self.beta1, 0.999)
        discriminator = [p for p in self.discriminators.parameters() if p.requires_grad]
        generator = [p for name, p in self.named_parameters()
                     if p.requires_grad and not name.startswith("discriminators.")]
        if not self.update_stages:
            return [{"params": generator, "betas": betas}]
        return [{"params": generator, "betas": betas, "stage": "generator"},
                {"params": discriminator, "betas": betas, "stage": "discriminator"}]

    def record_notes(self) -> Dict[str, Any]:
        names = {"l1": "L1", "l2": "L2", "kl": "KL", "video_gan": "video GAN", "video_vae_gan": "video VAE-GAN",
                 "image_gan": "image GAN", "image_vae_gan": "image VAE-GAN", "gan_cdist": "GAN feature cdist",
                 "vae_gan_cdist": "VAE-GAN feature cdist"}
        weights = ", ".join(f"{label} {self.weights[key]:g}" for key, label in names.items() if self.weights[key])
        return {"variant": f"{self.variant} (hparams/{self.reference_set}/{_JSON[self.variant]}: {weights}; "
                           f"KL annealed over steps {self.kl_start}-{self.kl_end}; nz {self.nz}; "
                           f"Adam beta1 {self.beta1:g})",
                "predictions": ("z of the observed transitions from the posterior, of the future from N(0, 1), drawn "
                                "with torch's global generator") if self.nz else "deterministic (no latent)"}


HPARAMS = ("variant", "reference_set", "nz", "ngf", "ndf", "nef", "n_layers", "num_transformed_images",
           "cdna_kernel_size",
           "relu_shift", "clip_length", "schedule_sampling_k", "kl_anneal_start", "kl_anneal_end",
           "image_sn_gan_weight", "image_sn_vae_gan_weight")


def build_savp(task, hparams) -> SAVP:
    return SAVP(task, **{key: hparams[key] for key in HPARAMS})
