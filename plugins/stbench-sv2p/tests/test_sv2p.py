"""SV2P: sizes against counts read off tensor2tensor's code, and what the paper and the reference define exactly
(CDNA kernel normalisation and compositing, the KL term, the phases and the KL weight schedule)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stbench import UserError, plugins
from stbench.config import resolve
from stbench.profiling import count_macs
from stbench.tasks import Task
from stbench_sv2p.model import kl_weight, training_phase
from stbench_sv2p.ops import (apply_cdna, composite, gaussian_kl, ground_truth_count, inverse_sigmoid, mix_count,
                              normalize_kernels, same_padding, symmetric_pad)

FIXTURES = Path(__file__).parent / "fixtures"


def build(profile, shape, t_in, t_out, **overrides):
    spec = plugins.get_model("sv2p")
    _, hparams, _ = resolve(spec, plugins.get_dataset("kth"), profile, {})
    hparams.update(overrides)
    return spec.build(Task("kth", t_in, t_out, tuple(shape)), hparams)


def params_of(model, prefix):
    return sum(p.numel() for name, p in model.named_parameters() if name == prefix or name.startswith(prefix + "."))


COUNTS = json.loads((FIXTURES / "reference_param_counts.json").read_text())["configurations"]


@pytest.mark.parametrize("config", sorted(COUNTS))
def test_every_module_has_the_parameters_tensor2tensor_gives_it(config):
    """Per-module counts read off tensor2tensor's sv2p.py / common_video.py (file and line in the fixture)."""
    entry = COUNTS[config]
    c, h, w = entry["shape"]
    model = build("paper", entry["shape"], entry["t_in"], entry["t_out"])
    env = dict(C=c, H=h, W=w, T=entry["t_in"] + entry["t_out"])
    for module, expected in entry["modules"].items():
        assert eval(expected["formula"], {}, env) == expected["params"], module  # the fixture's own arithmetic
        assert params_of(model, module) == expected["params"], (module, expected["source"])
    assert sum(p.numel() for p in model.parameters()) == entry["total"]  # nothing beyond the listed modules


def test_paper_macs_on_kth():
    """203.95 G MACs for kth-10-20 at stbench's 128x128 (29 frame steps of 7.03 G); the latent tower is not run
    at test time. Every frame step costs the same (checked at the smoke size)."""
    model = build("paper", (1, 128, 128), 10, 20)
    assert count_macs(model, Task("kth", 10, 20, (1, 128, 128))) / 1e9 == pytest.approx(203.95, abs=0.01)
    small = [count_macs(build("smoke", (1, 32, 32), 4, t_out), Task("kth", 4, t_out, (1, 32, 32))) for t_out in (4, 8)]
    assert small[0] % 7 == 0 and small[1] == small[0] // 7 * 11


def test_tf_same_padding():
    # 5x5 stride 2 on 128: 3 pixels of padding, the odd one after (TF); 3x3 stride 2: none before, one after
    assert same_padding((128, 128), 5, 2) == (1, 2, 1, 2)
    assert same_padding((64, 64), 3, 2) == (0, 1, 0, 1)
    assert same_padding((16, 16), 5, 1) == (2, 2, 2, 2)


def test_cdna_kernels_are_non_negative_and_sum_to_one():
    raw = torch.randn(3, 10, 5, 5) * 3
    kernels = normalize_kernels(raw)
    assert (kernels > 0).all()
    assert torch.allclose(kernels.sum(dim=(-2, -1)), torch.ones(3, 10))
    shifted = torch.clamp(raw - 1e-12, min=0) + 1e-12  # relu(k - shift) + shift, then divided by the sum
    assert torch.allclose(kernels, shifted / shifted.sum(dim=(-2, -1), keepdim=True))


@pytest.mark.parametrize("padding", ["zeros", "symmetric"])
def test_cdna_applies_each_samples_own_kernels_to_every_colour(padding):
    torch.manual_seed(0)
    image, kernels = torch.rand(2, 3, 9, 7), normalize_kernels(torch.randn(2, 4, 5, 5))
    out = apply_cdna(image, kernels, padding)
    assert len(out) == 4
    mode = "constant" if padding == "zeros" else "symmetric"
    for b in range(2):
        for m in range(4):
            for c in range(3):
                padded = torch.from_numpy(np.pad(image[b, c].numpy(), 2, mode=mode))
                expected = F.conv2d(padded[None, None], kernels[b, m][None, None])[0, 0]  # correlation, as TF
                assert torch.allclose(out[m][b, c], expected, atol=1e-6)


def test_symmetric_padding_repeats_the_border_pixel():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    assert torch.equal(symmetric_pad(x, 2)[0, 0], torch.from_numpy(np.pad(x[0, 0].numpy(), 2, mode="symmetric")))


def test_an_identity_kernel_leaves_the_image_and_masks_composite_convexly():
    image = torch.rand(2, 1, 8, 8)
    identity = torch.zeros(2, 1, 5, 5)
    identity[..., 2, 2] = 1.0
    assert torch.allclose(apply_cdna(image, normalize_kernels(identity * 1e6))[0], image, atol=1e-5)
    images = [torch.rand(2, 1, 8, 8) for _ in range(3)]
    masks = torch.softmax(torch.randn(2, 3, 8, 8), dim=1)
    expected = sum(masks[:, i:i + 1] * images[i] for i in range(3))
    assert torch.allclose(composite(images, masks), expected)
    one_hot = F.one_hot(torch.full((2, 8, 8), 1), 3).permute(0, 3, 1, 2).float()
    assert torch.equal(composite(images, one_hot), images[1])


def test_the_last_cdna_kernel_never_reaches_the_output_as_in_the_reference():
    """sv2p.py:326-330 zips num_masks + 1 transformed images with num_masks masks: the last CDNA image is dropped."""
    model = build("smoke", (1, 32, 32), 4, 4).eval()
    x = torch.rand(2, 4, 1, 32, 32)
    torch.manual_seed(3)
    before = model(x, 2)
    k2 = model.tower.kernel_size ** 2
    with torch.no_grad():
        model.tower.cdna_params.weight[-k2:].normal_()  # the last kernel's rows
        model.tower.cdna_params.bias[-k2:].normal_()
    torch.manual_seed(3)
    assert torch.equal(model(x, 2), before)


def test_gaussian_kl_against_torch_distributions():
    mean, logvar = torch.randn(4, 1, 4, 4), torch.randn(4, 1, 4, 4)
    direct = torch.distributions.kl_divergence(torch.distributions.Normal(mean, torch.exp(logvar / 2)),
                                               torch.distributions.Normal(0.0, 1.0))
    assert torch.allclose(gaussian_kl(mean, logvar), direct, atol=1e-6)


def test_kl_weight_schedule_and_phases():
    # basic_stochastic.py:221-229 and common_video.beta_schedule: 0 before 30000, then 1e-3 ("constant")
    assert kl_weight(29999, "constant", 1e-3, 30000, 50000) == 0.0
    assert kl_weight(30000, "constant", 1e-3, 30000, 50000) == 1e-3
    assert kl_weight(60000, "constant", 1e-3, 30000, 50000) == 1e-3
    assert kl_weight(40000, "linear", 1e-3, 30000, 50000) == pytest.approx(0.5e-3)
    assert kl_weight(50001, "linear", 1e-3, 30000, 50000) == 1e-3
    with pytest.raises(UserError):
        kl_weight(0, "noisy_linear_cosine_decay", 1e-3, 0, 1)
    assert [training_phase(s, 15000, 15000) for s in (0, 14999, 15000, 29999, 30000)] == [1, 1, 2, 2, 3]


def test_scheduled_sampling_counts():
    # round(B k / (k + exp(step / k))): half the batch at step 0 (k/(k+1) of it), none late
    assert inverse_sigmoid(0, 900.0) == pytest.approx(900 / 901)
    assert ground_truth_count(16, 0, 900.0) == 16
    assert ground_truth_count(16, int(900 * np.log(900)), 900.0) == 8
    assert ground_truth_count(16, 10 ** 6, 900.0) == 0
    truth, generated = torch.ones(6, 2), torch.zeros(6, 2)
    mixed = mix_count(truth, generated, 4)
    assert mixed[:, 0].sum() == 4 and set(mixed.flatten().tolist()) <= {0.0, 1.0}


def _loss_parts(model, x, y, step):
    torch.manual_seed(7)
    total = model.loss(x, y, step)
    return total


def test_loss_is_the_two_mses_plus_the_weighted_kl():
    """Phase 3: MSE of the future + MSE of the observed frames' predictions + beta * KL / (T - 1), the KL summed
    over the latent and averaged over clips (common_layers.kl_divergence), added once per clip (base.py:549)."""
    model = build("smoke", (1, 32, 32), 4, 4, num_iterations_1st_stage=0, num_iterations_2nd_stage=0,
                  anneal_end=0, latent_loss_multiplier=0.5)
    x, y = torch.rand(2, 4, 1, 32, 32), torch.rand(2, 4, 1, 32, 32)
    step = 10 ** 6  # no ground truth fed after the observed frames
    total = _loss_parts(model, x, y, step)
    torch.manual_seed(7)
    frames = torch.cat([x, y], dim=1)
    mean, logvar = model.latent_tower(frames)
    latent = mean + torch.exp(logvar / 2) * torch.randn_like(mean)
    predictions = model.rollout(frames, 7, latent)
    expected = (F.mse_loss(predictions[:, 3:], y) + F.mse_loss(predictions[:, :3], x[:, 1:])
                + 0.5 * gaussian_kl(mean, logvar).sum() / 2 / 7)
    assert torch.allclose(total, expected, rtol=1e-6)


def test_phase_one_draws_the_latent_from_the_prior_and_phase_two_adds_no_kl():
    model = build("smoke", (1, 32, 32), 4, 4, num_iterations_1st_stage=10, num_iterations_2nd_stage=10,
                  anneal_end=20, latent_loss_multiplier=100.0)
    x, y = torch.rand(2, 4, 1, 32, 32), torch.rand(2, 4, 1, 32, 32)
    model.zero_grad()
    _loss_parts(model, x, y, 5).backward()
    assert all(p.grad is None for p in model.latent_tower.parameters())  # phase 1: no inference network
    model.zero_grad()
    _loss_parts(model, x, y, 15).backward()
    assert all(p.grad is not None for p in model.latent_tower.parameters())  # phase 2: posterior latent
    # phase 2: the KL weight is 0, whatever latent_loss_multiplier says
    small = build("smoke", (1, 32, 32), 4, 4, num_iterations_1st_stage=10, num_iterations_2nd_stage=10,
                  anneal_end=20, latent_loss_multiplier=0.0)
    small.load_state_dict(model.state_dict())
    assert torch.equal(_loss_parts(small, x, y, 15), _loss_parts(model, x, y, 15))
    assert not torch.equal(_loss_parts(small, x, y, 25), _loss_parts(model, x, y, 25))


def test_predictions_are_samples_of_the_prior_from_the_global_generator():
    model = build("smoke", (1, 32, 32), 4, 4).eval()
    x = torch.rand(2, 4, 1, 32, 32)
    with torch.no_grad():
        torch.manual_seed(1)
        a = model(x, 3)
        torch.manual_seed(1)
        b = model(x, 3)
        c = model(x, 3)
    assert torch.equal(a, b) and not torch.equal(a, c)
    deterministic = build("smoke", (1, 32, 32), 4, 4, stochastic_model=False).eval()
    assert deterministic.latent_tower is None and params_of(deterministic, "tower.enc3") == 4 * 4 + 4
    with torch.no_grad():
        assert torch.equal(deterministic(x, 3), deterministic(x, 3))


def test_frames_must_be_a_multiple_of_eight():
    with pytest.raises(UserError, match="multiple of 8"):
        build("smoke", (1, 36, 36), 4, 4)


def test_adam_settings_of_true_adam():
    model = build("paper", (1, 32, 32), 4, 4)
    (group,) = model.optimizer_param_groups({})
    assert group["betas"] == (0.85, 0.997) and group["eps"] == 1e-6


def test_usteps_params_are_the_reference_network_at_64x64():
    """USTEP's 8.3 M (Tables III / IV) is the reference's prediction network at 64x64 frames (the SV2P / SAVP
    papers' KTH size): 8.31 M, within 0.2%; at stbench's 128x128 KTH the CDNA dense layer alone grows by 6.1 M
    (128 x 16 x 16 x 250 weights instead of 128 x 8 x 8 x 250). USTEP's FLOPs match neither size (README.md)."""
    from stbench.leaderboard import published

    figures = {e["source"]: e for task in ("kth-10-20", "kth-10-40") for e in published()["tasks"][task]
               if e["model"] == "sv2p"}
    assert figures["ustep-t3-stochastic"]["params_m"] == figures["ustep-t4-stochastic"]["params_m"] == 8.3
    counts = COUNTS
    at_64 = counts["kth-10-20 at 1x64x64 (the SV2P / SAVP papers' KTH size)"]["inference_total"]
    assert at_64 / 1e6 == pytest.approx(8.3, rel=0.02)
    model = build("paper", (1, 64, 64), 10, 20)
    assert sum(p.numel() for n, p in model.named_parameters() if not n.startswith("latent_tower.")) == at_64
    assert counts["kth-10-20 at 1x128x128 (stbench's KTH)"]["total"] / 1e6 == pytest.approx(14.52, abs=0.005)
