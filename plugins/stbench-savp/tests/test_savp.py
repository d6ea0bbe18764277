"""SAVP: sizes against counts read off alexlee-gk/video_prediction, the fused layers against the identities the
reference documents, and what the paper and the reference define exactly (KL, LSGAN, feature matching, loss
weights per variant, schedules, the two-stage update)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stbench import UserError, plugins
from stbench.config import resolve
from stbench.tasks import Task
from stbench.training import staged_step
from stbench_savp.layers import ConvPool2d, SNDiscriminator, SpectralNorm, UpsampleConv2d, bilinear_kernel
from stbench_savp.model import (PRESETS, cosine_distance, ground_truth_mask, identity_kernel, kl_loss, kl_weight,
                                lsgan)
from stbench_sv2p.ops import gaussian_kl

FIXTURES = Path(__file__).parent / "fixtures"
COUNTS = json.loads((FIXTURES / "reference_param_counts.json").read_text())["configurations"]


def build(profile, shape, t_in, t_out, **overrides):
    spec = plugins.get_model("savp")
    _, hparams, _ = resolve(spec, plugins.get_dataset("kth"), profile, {})
    hparams.update(overrides)
    return spec.build(Task("kth", t_in, t_out, tuple(shape)), hparams)


def params_of(model, prefix):
    return sum(p.numel() for name, p in model.named_parameters() if name == prefix or name.startswith(prefix + "."))


@pytest.mark.parametrize("config", sorted(COUNTS))
def test_every_module_has_the_parameters_the_reference_gives_it(config):
    """Per-module counts read off savp_model.py / networks.py / rnn_ops.py (file and line in the fixture)."""
    entry = COUNTS[config]
    c, h, w = entry["shape"]
    model = build("paper", entry["shape"], entry["t_in"], entry["t_out"], reference_set=entry["reference_set"],
                  nz=entry["nz"])
    for module, expected in entry["modules"].items():
        assert eval(expected["formula"], {}, dict(C=c, H=h, W=w)) == expected["params"], module
        assert params_of(model, module) == expected["params"], (module, expected["source"])
    assert sum(p.numel() for p in model.parameters()) == entry["total"]  # nothing beyond the listed modules


def test_conv_pool_is_a_same_convolution_then_average_pooling():
    """ops.conv_pool2d's docstring identity (ops.py:798-815)."""
    torch.manual_seed(0)
    for k in (3, 5):
        layer = ConvPool2d(3, 4, k)
        x = torch.randn(2, 3, 16, 12)
        naive = F.avg_pool2d(F.conv2d(x, layer.weight, layer.bias, padding=k // 2), 2)
        assert torch.allclose(layer(x), naive, atol=1e-5)


def test_upsample_conv_is_bilinear_upsampling_then_a_convolution():
    """ops.upsample_conv2d's docstring identity (ops.py:646-676): bilinear 'VALID' up-sampling, a 3x3 'FULL'
    convolution, cropped by 2."""
    torch.manual_seed(0)
    layer = UpsampleConv2d(3, 4)
    x = torch.randn(2, 3, 8, 6)
    tent = bilinear_kernel(2)
    line = torch.tensor([0.25, 0.75, 0.75, 0.25])
    assert torch.allclose(tent, line[:, None] * line[None, :])
    up = F.conv_transpose2d(x, torch.diag_embed(tent.expand(3, 4, 4).permute(1, 2, 0)).permute(2, 3, 0, 1), stride=2)
    full = F.conv2d(F.pad(up, (2, 2, 2, 2)), layer.weight, layer.bias)
    expected = full[:, :, 2:2 + 16, 2:2 + 12]
    assert torch.allclose(layer(x), expected, atol=1e-5)


def test_spectral_norm_divides_by_the_largest_singular_value():
    torch.manual_seed(0)
    weight = torch.randn(8, 4, 3, 3)
    norm = SpectralNorm(weight.shape)
    for _ in range(200):  # the stored vector converges over steps, one power iteration each
        normalized = norm(weight, update=True)
    assert torch.linalg.matrix_norm(normalized.reshape(8, -1), ord=2) == pytest.approx(1.0, abs=1e-4)
    u = norm.u.clone()
    norm(weight * 2, update=False)
    assert torch.equal(norm.u, u)  # only the first call of a step advances it


def test_cdna_identity_kernel():
    assert identity_kernel(5)[2, 2] == 1 and identity_kernel(5).sum() == 1
    assert torch.allclose(identity_kernel(4)[1:3, 1:3], torch.full((2, 2), 0.25))


def test_kl_lsgan_and_cosine_distance_against_direct_formulas():
    mean, logvar = torch.randn(3, 5, 8), torch.randn(3, 5, 8)
    direct = torch.distributions.kl_divergence(torch.distributions.Normal(mean, torch.exp(logvar / 2)),
                                               torch.distributions.Normal(0.0, 1.0))
    # losses.kl_loss: -0.5 * mean over (time, batch) of the sum over nz of (1 + log s^2 - mu^2 - s^2)
    assert torch.allclose(kl_loss(mean, logvar), direct.sum(-1).mean(), atol=1e-6)
    assert torch.allclose(gaussian_kl(mean, logvar), direct, atol=1e-6)
    logits = torch.randn(6, 1)
    assert torch.allclose(lsgan(logits, 1.0), ((logits - 1) ** 2).mean())
    assert torch.allclose(lsgan(logits, 0.0), (logits ** 2).mean())
    a, b = torch.randn(2, 4, 3, 5, 5), torch.randn(2, 4, 3, 5, 5)
    an, bn = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    assert torch.allclose(cosine_distance(a, b), ((an - bn) ** 2).sum(1).mean() / 2, atol=1e-6)


def test_presets_are_the_reference_hparams_files():
    """hparams/{kth,bair_action_free}/ours_*/model_hparams.json; nz 32 in the kth files, the default 8 in bair's."""
    assert PRESETS[("kth", "savp")] == dict(l1=100.0, l2=0.0, kl=0.01, video_gan=0.1, video_vae_gan=0.1,
                                            gan_cdist=0.0, vae_gan_cdist=10.0, beta1=0.5)
    assert PRESETS[("kth", "savp-gan")]["gan_cdist"] == 10.0 and PRESETS[("kth", "savp-gan")]["video_vae_gan"] == 0
    assert PRESETS[("kth", "savp-vae")]["kl"] == 1e-5 and PRESETS[("kth", "savp-vae")]["beta1"] == 0.9
    assert PRESETS[("kth", "deterministic-l2")]["l2"] == 1.0
    assert PRESETS[("bair_action_free", "savp")]["kl"] == 1.0
    assert PRESETS[("bair_action_free", "savp-vae")]["kl"] == 0.001
    spec = plugins.get_model("savp")
    assert spec.hparams_for("paper", "kth")["nz"] == 32 and spec.hparams_for("paper", "bair")["nz"] == 8
    assert spec.hparams_for("paper", "bair")["reference_set"] == "bair_action_free"


def test_schedules():
    # base_model.py: kl_anneal 'linear' over kl_anneal_steps (50000, 100000)
    assert [kl_weight(s, 0.01, 50000, 100000) for s in (0, 50000, 75000, 100000, 200000)] == \
        pytest.approx([0.0, 0.0, 0.005, 0.01, 0.01])
    # savp_model.py:313-330: the context always, then p = k / (k + exp(step / k)), none once p < 0.001
    torch.manual_seed(0)
    mask = ground_truth_mask(4000, 9, 3, 0, 900.0)
    assert mask[:3].all() and mask[3:].float().mean().item() == pytest.approx(900 / 901, abs=0.01)
    assert not ground_truth_mask(8, 9, 3, 10 ** 6, 900.0)[3:].any()


def test_variants_build_what_their_losses_need():
    full = build("smoke", (1, 32, 32), 4, 4)
    assert set(full.discriminators) == {"video_gan", "video_vae_gan"} and full.encoder is not None
    assert full.update_stages == ("discriminator", "generator") and full.stochastic
    gan = build("smoke", (1, 32, 32), 4, 4, variant="savp-gan")
    assert set(gan.discriminators) == {"video_gan"} and gan.encoder is not None
    vae = build("smoke", (1, 32, 32), 4, 4, variant="savp-vae")
    assert not vae.discriminators and vae.update_stages == ()
    deterministic = build("smoke", (1, 32, 32), 4, 4, variant="deterministic")
    assert deterministic.encoder is None and not deterministic.stochastic and deterministic.generator.rnn_z is None
    image = build("smoke", (1, 32, 32), 4, 4, image_sn_gan_weight=0.1)
    image_discriminator = image.discriminators["image_gan"]
    assert isinstance(image_discriminator, SNDiscriminator) and image_discriminator.convs[0].dims == 2
    before = image_discriminator.logits.weight.detach().clone()
    optimizer = torch.optim.Adam(image.optimizer_param_groups({}), lr=1e-3)
    staged_step(image, [optimizer], torch.rand(2, 4, 1, 32, 32), torch.rand(2, 4, 1, 32, 32), 0)
    assert not torch.equal(image_discriminator.logits.weight, before)  # trained on single random frames
    with pytest.raises(UserError, match="clip_length"):
        build("smoke", (1, 32, 32), 2, 2, clip_length=4)
    with pytest.raises(UserError, match="variant"):
        build("smoke", (1, 32, 32), 4, 4, variant="vae")


class _Discriminator(torch.nn.Module):
    """Constant logits b; its one "feature" is the clip itself."""

    def __init__(self, b):
        super().__init__()
        self.b = b

    def forward(self, clip, update=False):
        return [clip], torch.full((clip.shape[0], 1), self.b)


def test_generator_loss_weights_of_ours_savp():
    """l1 100 x L1 of the posterior run + kl_weight(step) x KL + 0.1 x LSGAN(fake, 1) for the GAN (prior run) and
    VAE-GAN (posterior run) discriminators + 10 x the VAE-GAN feature cosine distance (base_model.py:733-829)."""
    model = build("smoke", (1, 32, 32), 4, 4, clip_length=7, kl_anneal_start=0, kl_anneal_end=10)
    model.discriminators["video_gan"] = _Discriminator(0.3)
    model.discriminators["video_vae_gan"] = _Discriminator(-0.2)
    frames = torch.rand(2, 8, 1, 32, 32)
    outputs = model.generate(frames, 10 ** 6)
    targets = frames[:, 1:]
    loss = model.generator_loss(outputs, targets, 5)  # clips of all 7 frames: no sampling left
    fake_enc, real = outputs["gen_enc"].transpose(1, 2), targets.transpose(1, 2)
    expected = (100 * (outputs["gen_enc"] - targets).abs().mean()
                + 0.01 * 5 / 10 * kl_loss(outputs["mean"], outputs["logvar"])
                + 0.1 * (0.3 - 1) ** 2 + 0.1 * (-0.2 - 1) ** 2
                + 10 * cosine_distance(fake_enc, real))
    assert torch.allclose(loss, expected, rtol=1e-5)
    d_loss = model.discriminator_loss(outputs, targets)
    assert torch.allclose(d_loss, torch.tensor(0.1 * ((0.3 - 1) ** 2 + 0.3 ** 2) + 0.1 * ((-0.2 - 1) ** 2 + 0.2 ** 2)))


def test_the_prior_run_reuses_the_posterior_for_observed_transitions():
    model = build("smoke", (1, 32, 32), 4, 4)
    torch.manual_seed(0)
    frames = torch.rand(2, 8, 1, 32, 32)
    calls = []
    unroll = model.generator.unroll
    model.generator.unroll = lambda f, zs, steps, gt: calls.append(zs) or unroll(f, zs, steps, gt)
    model.generate(frames, 0)
    posterior, prior = calls
    assert torch.equal(prior[:, :3], posterior[:, :3]) and not torch.equal(prior[:, 3:], posterior[:, 3:])


def test_two_stages_update_the_discriminators_then_the_generator():
    model = build("smoke", (1, 32, 32), 4, 4)
    optimizer = torch.optim.Adam(model.optimizer_param_groups({}), lr=1e-3)
    assert [g["stage"] for g in optimizer.param_groups] == ["generator", "discriminator"]
    assert all(g["betas"] == (0.5, 0.999) for g in optimizer.param_groups)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x, y = torch.rand(2, 4, 1, 32, 32), torch.rand(2, 4, 1, 32, 32)
    stages = model.stage_losses(x, y, 0)
    stage, _ = next(stages)
    assert stage == "discriminator"
    stages.close()
    staged_step(model, [optimizer], x, y, 0)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert any(n.startswith("discriminators.") for n in changed) and any(n.startswith("generator.") for n in changed)


def test_predictions_sample_the_future_latents():
    model = build("smoke", (1, 32, 32), 4, 4).eval()
    x = torch.rand(2, 4, 1, 32, 32)
    with torch.no_grad():
        torch.manual_seed(1)
        a = model(x, 3)
        torch.manual_seed(1)
        b = model(x, 3)
        c = model(x, 3)
    assert a.shape == (2, 3, 1, 32, 32) and torch.equal(a, b) and not torch.equal(a, c)
    deterministic = build("smoke", (1, 32, 32), 4, 4, variant="deterministic").eval()
    with torch.no_grad():
        assert torch.equal(deterministic(x, 3), deterministic(x, 3))


def test_layouts_follow_the_frame_size():
    for size, levels in ((32, 2), (64, 3), (128, 4)):
        model = build("smoke", (1, size, size), 4, 4)
        assert len(model.generator.encoder_specs) == levels
    assert np.isclose(bilinear_kernel(2).sum().item(), 4.0)


def test_usteps_params_are_the_reference_model_at_64x64():
    """USTEP's 17.6 M (Tables III / IV) is the reference's full SAVP (generator, posterior encoder and the two
    video discriminators) at 64x64 frames with nz 8: 17.63 M, within 0.2%. With hparams/kth/ours_savp's nz 32
    it is 18.50 M; at stbench's 128x128 KTH the reference layout has four levels (savp_model.py:198-210) and
    51.13 M. USTEP's FLOPs match neither size (README.md)."""
    from stbench.leaderboard import published

    figures = [e for task in ("kth-10-20", "kth-10-40") for e in published()["tasks"][task] if e["model"] == "savp"]
    assert [e["params_m"] for e in figures] == [17.6, 17.6]
    at_64 = COUNTS["kth-10-20 at 1x64x64, nz 8 (savp_model.py:815 default, as the BAIR sets use)"]["total"]
    assert at_64 / 1e6 == pytest.approx(17.6, rel=0.02)
    at_128 = COUNTS["kth-10-20 at 1x128x128, hparams/kth/ours_savp (nz 32)"]["total"]
    assert at_128 / 1e6 == pytest.approx(51.13, abs=0.005)


def test_inference_macs():
    """Inference runs the posterior encoder on the observed pairs and the generator over every frame step; the
    discriminators and the posterior run are training-only. 64x64, nz 32: 51.0 G for kth-10-20 (1.74 G per step)."""
    from stbench.profiling import count_macs

    one, two = (count_macs(build("paper", (1, 64, 64), 10, t), Task("kth", 10, t, (1, 64, 64))) for t in (1, 2))
    assert (one + 19 * (two - one)) / 1e9 == pytest.approx(51.0, abs=0.05)  # kth-10-20: 29 generator steps
    assert (two - one) / 1e9 == pytest.approx(1.737, abs=0.001)
