"""DiffCast against its equations: q(r_t | r_0) in closed form, the noise-prediction loss, the sampler update (DDIM
and DDPM) with a fixed noise predictor, y = mu + r, seeded sampling; the backbone built through the registry;
settings and user errors."""
import math

import pytest
import torch
import torch.nn.functional as F

import stbench_diffcast
from stbench import Task, UserError, plugins
from stbench.models import count_params
from stbench.profiling import _count, count_macs
from stbench_diffcast.diffusion import (beta_schedule, cumulative_alphas, ddim_step, noise_prediction_loss, q_sample,
                                        sample, sampling_levels)
from stbench_diffcast.model import DiffCastModel, build_diffcast


def registered_spec():
    specs = []
    stbench_diffcast.stbench_register_models(register=specs.append)
    return specs[0]


SPEC = registered_spec()
TASK = Task("mmnist", 4, 5, (1, 16, 16))


def smoke_hparams(**changes):
    return dict(SPEC.hparams_for("smoke", "mmnist"), **changes)


def smoke_model(task=TASK, seed=0, **changes) -> DiffCastModel:
    torch.manual_seed(seed)
    return build_diffcast(task, smoke_hparams(**changes))


def clip(task=TASK, batch=2, seed=3):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, task.t_in, *task.shape, generator=generator)
    y = torch.rand(batch, task.t_out, *task.shape, generator=generator)
    return x, y


# -- the diffusion's equations ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_schedule_and_cumulative_alphas(kind):
    betas = beta_schedule(kind, 50)
    assert betas.shape == (50,) and bool((betas > 0).all()) and bool((betas < 1).all())
    abar, product = cumulative_alphas(betas), 1.0
    for t in range(50):
        product *= 1.0 - float(betas[t])
        assert abs(float(abar[t]) - product) < 1e-12
    if kind == "linear":  # DDPM's end points at T = 1000, scaled by 1000 / T
        assert math.isclose(float(beta_schedule("linear", 1000)[0]), 1e-4)
        assert math.isclose(float(beta_schedule("linear", 1000)[-1]), 0.02)
        assert math.isclose(float(betas[0]), 1e-4 * 20) and math.isclose(float(betas[-1]), 0.02 * 20)
    else:  # Nichol & Dhariwal: abar(t) = f(t) / f(0), f(t) = cos((t/T + s) / (1 + s) * pi / 2)^2
        f = [math.cos((t / 50 + 0.008) / 1.008 * math.pi / 2) ** 2 for t in range(51)]
        for t in range(1, 50):
            expected = min(1 - f[t] / f[t - 1], 0.999)
            assert abs(float(betas[t - 1]) - expected) < 1e-12


def test_q_sample_is_the_closed_form_of_the_forward_chain():
    """q(r_t | r_0) = N(sqrt(abar_t) r_0, (1 - abar_t) I): the formula exactly, and the moments of the Markov chain
    r_t = sqrt(1 - beta_t) r_{t-1} + sqrt(beta_t) z run step by step."""
    betas = beta_schedule("linear", 40)
    abar = cumulative_alphas(betas)
    r0 = torch.tensor([[0.8, -0.3, 0.0]], dtype=torch.float64)
    t = torch.tensor([17])
    noise = torch.tensor([[0.5, -1.2, 2.0]], dtype=torch.float64)
    expected = math.sqrt(float(abar[17])) * r0 + math.sqrt(1 - float(abar[17])) * noise
    assert torch.allclose(q_sample(r0, t, noise, abar), expected, atol=1e-12, rtol=0)

    draws = 40000
    generator = torch.Generator().manual_seed(0)
    chain = r0.expand(draws, -1).clone()
    for step in range(40):
        chain = (1 - betas[step]).sqrt() * chain + betas[step].sqrt() * torch.randn(chain.shape, generator=generator,
                                                                                    dtype=torch.float64)
        if step in (9, 39):
            a = float(abar[step])
            mean_tol = 5 * math.sqrt((1 - a) / draws)
            assert torch.allclose(chain.mean(0), math.sqrt(a) * r0[0], atol=mean_tol, rtol=0)
            assert torch.allclose(chain.var(0), torch.full((3,), 1 - a, dtype=torch.float64), atol=0.03, rtol=0)


def fixed_eps(r, t):
    """A fixed noise predictor: linear in r_t, depending on the level."""
    return 0.3 * r + 0.01 * (t.to(r.dtype) + 1).reshape(-1, *([1] * (r.dim() - 1)))


def test_noise_prediction_loss_is_the_mse_to_the_drawn_noise():
    abar = cumulative_alphas(beta_schedule("cosine", 100))
    generator = torch.Generator().manual_seed(1)
    r0 = torch.randn(3, 2, 1, 4, 4, generator=generator, dtype=torch.float64)
    noise = torch.randn(r0.shape, generator=generator, dtype=torch.float64)
    t = torch.tensor([0, 42, 99])
    by_hand = 0.0
    for i in range(3):
        a = float(abar[int(t[i])])
        r_t = math.sqrt(a) * r0[i] + math.sqrt(1 - a) * noise[i]
        by_hand += float(((noise[i] - (0.3 * r_t + 0.01 * (int(t[i]) + 1))) ** 2).sum())
    by_hand /= noise.numel()
    assert abs(float(noise_prediction_loss(fixed_eps, r0, t, noise, abar)) - by_hand) < 1e-12


def test_sampling_levels():
    assert sampling_levels(1000, 1000) == list(range(999, -1, -1))
    levels = sampling_levels(1000, 10)
    assert len(levels) == 10 and levels[0] == 999 and levels[-1] == 0 and levels == sorted(levels, reverse=True)
    assert sampling_levels(1000, 250)[:3] == [999, 995, 991]
    assert sampling_levels(10, 1) == [9]
    with pytest.raises(UserError):
        beta_schedule("linear", 20)
    with pytest.raises(UserError):
        sampling_levels(10, 11)


def test_ddim_sampler_matches_its_update_formula():
    """eta = 0 (DDIM) and eta = 0.5, 7 of 20 levels: each update as Song et al.'s eq. 12, in float64 by hand,
    with the same draws (r_T first, then one noise per step except the last)."""
    abar = [float(a) for a in cumulative_alphas(beta_schedule("cosine", 20))]
    levels = sampling_levels(20, 7)
    for eta in (0.0, 0.5):
        torch.manual_seed(11)
        ours = sample(fixed_eps, (2, 3, 1, 2, 2), abar, levels, eta, dtype=torch.float64)
        torch.manual_seed(11)
        r = torch.randn(2, 3, 1, 2, 2, dtype=torch.float64)
        for i, level in enumerate(levels):
            prev = abar[levels[i + 1]] if i + 1 < len(levels) else 1.0
            a = abar[level]
            eps = fixed_eps(r, torch.full((2,), level))
            r0 = (r - math.sqrt(1 - a) * eps) / math.sqrt(a)
            sigma = eta * math.sqrt((1 - prev) / (1 - a)) * math.sqrt(1 - a / prev)
            r = math.sqrt(prev) * r0 + math.sqrt(1 - prev - sigma ** 2) * eps
            if i + 1 < len(levels) and eta > 0:
                r = r + sigma * torch.randn(r.shape, dtype=torch.float64)
        assert torch.allclose(ours, r, atol=1e-12, rtol=0), eta


def test_full_chain_with_eta_one_is_ddpm_ancestral_sampling():
    """Every level visited with eta = 1: r_{t-1} = (r_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + sqrt(beta~_t) z,
    beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t, no noise at the last step (Ho et al., Algorithm 2)."""
    betas = beta_schedule("linear", 30)
    abar = cumulative_alphas(betas)
    torch.manual_seed(5)
    ours = sample(fixed_eps, (3, 1, 1, 3, 3), [float(a) for a in abar], sampling_levels(30, 30), 1.0,
                  dtype=torch.float64)
    torch.manual_seed(5)
    r = torch.randn(3, 1, 1, 3, 3, dtype=torch.float64)
    for t in range(29, -1, -1):
        beta, a = float(betas[t]), float(abar[t])
        eps = fixed_eps(r, torch.full((3,), t))
        mean = (r - beta / math.sqrt(1 - a) * eps) / math.sqrt(1 - beta)
        if t > 0:
            variance = (1 - float(abar[t - 1])) / (1 - a) * beta
            r = mean + math.sqrt(variance) * torch.randn(r.shape, dtype=torch.float64)
        else:
            r = mean
    assert torch.allclose(ours, r, atol=1e-10, rtol=0)


def test_ddim_step_clips_the_clean_estimate_and_rederives_the_noise():
    r_t, eps = torch.tensor([2.0, -0.2]), torch.tensor([0.1, 0.4])
    a, prev = 0.5, 0.8
    out = ddim_step(r_t, eps, a, prev, 0.0, clip=lambda r0: r0.clamp(-1, 1))
    r0 = ((r_t - math.sqrt(1 - a) * eps) / math.sqrt(a)).clamp(-1, 1)
    eps2 = (r_t - math.sqrt(a) * r0) / math.sqrt(1 - a)
    assert torch.allclose(out, math.sqrt(prev) * r0 + math.sqrt(1 - prev) * eps2)
    assert torch.allclose(ddim_step(r_t, eps, a, 1.0, 0.0, clip=lambda r0: r0.clamp(-1, 1)), r0)


# -- the model ---------------------------------------------------------------------------------------------------

def test_loss_is_alpha_diffusion_plus_one_minus_alpha_backbone_mse():
    """loss = alpha * mean over every segment's frames of (noise - eps(sqrt(abar) r0 + sqrt(1 - abar) noise))^2
    + (1 - alpha) * MSE(mu, y), r0 = y - mu, the true frames before each segment as its local condition."""
    model = smoke_model(loss_alpha=0.3)
    x, y = clip()
    model.train()
    torch.manual_seed(7)
    loss = model.loss(x, y, 0)
    torch.manual_seed(7)
    mu = model.backbone(x, y.shape[1])
    context = model.context(torch.cat([x, mu], dim=1))
    history = torch.cat([x, y], dim=1)
    squared, count = 0.0, 0
    for segment, (start, end) in enumerate([(0, 2), (2, 4), (4, 5)]):  # segment_length 2 over 5 frames
        level = torch.randint(0, 1000, (2,))
        noise = torch.randn_like(y[:, start:end])
        a = model.alphas_cumprod[level].reshape(-1, 1, 1, 1, 1)
        noisy = a.sqrt() * (y - mu)[:, start:end] + (1 - a).sqrt() * noise
        local = history[:, x.shape[1] + start - 2:x.shape[1] + start]  # local_frames = segment_length = 2
        pred = model.denoiser(noisy, level, mu[:, start:end], local, context, segment, torch.arange(start, end))
        squared = squared + ((pred - noise) ** 2).sum()
        count += noise.numel()
    expected = 0.3 * squared / count + 0.7 * F.mse_loss(mu, y)
    assert torch.allclose(loss, expected, rtol=1e-6, atol=0)
    assert model.segments(5) == [(0, 2), (2, 4), (4, 5)]


def test_prediction_is_backbone_trend_plus_sampled_residual():
    model = smoke_model().eval()
    x, _ = clip()
    with torch.no_grad():
        torch.manual_seed(21)
        y_hat = model(x, 5)
        torch.manual_seed(21)
        mu, r = model.predict(x, 5)
        trend = model.backbone(x, 5)
    assert torch.equal(mu, trend)
    assert torch.equal(y_hat, mu + r)
    assert r.abs().max() > 0


def test_eval_forward_is_repeatable_under_a_seed_and_differs_across_seeds():
    model = smoke_model().eval()
    x, _ = clip()
    assert model.stochastic and SPEC.samples == 1
    with torch.no_grad():
        torch.manual_seed(0)
        first = model(x, 5)
        torch.manual_seed(0)
        again = model(x, 5)
        torch.manual_seed(1)
        other = model(x, 5)
    assert torch.equal(first, again)
    assert (first - other).abs().max() > 1e-4


def test_forward_samples_each_segment_from_its_own_noise_in_order():
    """The draws of a prediction: per segment r_T, then nothing more for DDIM (eta 0); the segment's prediction is
    the sampler's output plus mu, given the frames generated before it."""
    model = smoke_model().eval()
    x, _ = clip()
    with torch.no_grad():
        torch.manual_seed(4)
        y_hat = model(x, 3)
        torch.manual_seed(4)
        mu = model.backbone(x, 3)
        context = model.context(torch.cat([x, mu], dim=1))
        history, outs = x, []
        for segment, (start, end) in enumerate([(0, 2), (2, 3)]):
            local = history[:, -2:]
            positions = torch.arange(start, end)
            mu_seg = mu[:, start:end]
            r = sample(lambda n, t: model.denoiser(n, t, mu_seg, local, context, segment, positions), mu_seg.shape,
                       model.abar, model.levels, 0.0,
                       clip=lambda r0: torch.maximum(torch.minimum(r0, 1 - mu_seg), -mu_seg))
            outs.append(mu_seg + r)
            history = torch.cat([history, outs[-1]], dim=1)
    assert torch.allclose(y_hat, torch.cat(outs, dim=1), atol=1e-6, rtol=0)


def test_clipping_keeps_predictions_in_the_data_range():
    """mmnist frames are in [0, 1]: the last DDIM step returns the clipped clean estimate, so mu + r stays in it."""
    model = smoke_model().eval()
    assert model.bounds == (0.0, 1.0)
    with torch.no_grad():
        torch.manual_seed(2)
        y_hat = model(clip()[0] * 3 - 1, 5)
    assert float(y_hat.min()) >= -1e-6 and float(y_hat.max()) <= 1 + 1e-6
    unclipped = smoke_model(clip_denoised=False)
    assert unclipped.bounds is None


def test_patches_round_trip_and_odd_frame_sizes():
    task = Task("mmnist", 3, 2, (2, 18, 14))
    model = smoke_model(task, patch_size=2)
    x, _ = clip(task)
    prepared = model._prepare(x)
    assert prepared.shape == (2, 3, 8, 10, 8)  # padded to multiples of 2 * 2, then 2x2 patches
    assert torch.equal(model._restore(prepared, 18, 14), x)
    model.eval()
    with torch.no_grad():
        assert model(x, 2).shape == (2, 2, 2, 18, 14)


def test_local_condition_repeats_the_first_frame_when_history_is_short():
    model = smoke_model(local_frames=4)
    history = torch.arange(2.0).reshape(1, 2, 1, 1, 1).expand(1, 2, 1, 2, 2)
    local = model.local_condition(history, 2)
    assert local[0, :, 0, 0, 0].tolist() == [0.0, 0.0, 0.0, 1.0]


# -- the backbone through the registry, sizes, settings ---------------------------------------------------------

def test_backbone_is_built_through_the_registry_with_its_own_declarations():
    model = smoke_model(backbone="phydnet")
    phydnet = plugins.get_model("phydnet")
    declared = phydnet.hparams_for("smoke", "mmnist", None)
    assert model.notes["backbone"] == "phydnet" and model.notes["backbone_hparams"] == declared
    torch.manual_seed(0)
    reference = phydnet.build(TASK, dict(declared))
    assert type(model.backbone) is type(reference) and count_params(model.backbone) == count_params(reference)
    model.on_epoch_start(3)  # forwarded to PhyDNet's teacher-forcing schedule
    x, y = clip()
    assert torch.isfinite(smoke_model(backbone="phydnet", det_loss="backbone").loss(x, y, 0))

    paper = SPEC.hparams_for("paper", "sevir")
    assert paper["backbone"] == "simvp" and paper["backbone_profile"] == "paper"
    quick = smoke_model(backbone_profile="quick")
    assert quick.notes["backbone_hparams"] == plugins.get_model("simvp").hparams_for("quick", "mmnist", None)


def test_backbone_overrides_are_checked_against_the_backbones_declarations():
    model = smoke_model(backbone_overrides="hid_t=24, n_t=3")
    assert model.notes["backbone_hparams"]["hid_t"] == 24 and model.notes["backbone_hparams"]["n_t"] == 3
    for bad in ("nonsense=3", "hid_t", "hid_t=big"):
        with pytest.raises(UserError):
            smoke_model(backbone_overrides=bad)


@pytest.mark.parametrize("changes", [dict(backbone="diffcast"), dict(backbone="simvpp"), dict(backbone_profile="fast"),
                                     dict(attn_heads=3), dict(beta_schedule="quadratic"), dict(sampling_steps=0),
                                     dict(sampling_steps=2000), dict(loss_alpha=1.5), dict(det_loss="l1"),
                                     dict(dim_mults=[1, 0]), dict(segment_length=-1), dict(eta=-0.1)])
def test_user_errors_are_one_line(changes):
    with pytest.raises(UserError) as error:
        smoke_model(**changes)
    assert "\n" not in str(error.value)


def test_macs_on_meta_equal_the_real_sampling_loop():
    """On the meta device a segment's denoiser passes run stacked in one batch; they count what the loop does."""
    task = Task("mmnist", 4, 3, (1, 16, 16))
    model = smoke_model(task, sampling_steps=3)
    assert count_macs(model, task) == _count(model.eval(), task, "cpu") > 0


def test_paper_sizes_decompose_into_backbone_context_and_denoiser():
    task = Task("sevir", 13, 12, (1, 384, 384))
    model = build_diffcast(task, SPEC.hparams_for("paper", "sevir"))
    simvp = plugins.get_model("simvp")
    backbone = simvp.build(task, simvp.hparams_for("paper", "sevir"))
    assert count_params(model.backbone) == count_params(backbone)
    assert count_params(model) == count_params(backbone) + count_params(model.context) + count_params(model.denoiser)
    # pinned counts of this implementation at the paper configuration (README, "Sizes")
    assert count_params(model.context) == 20_355_264
    assert count_params(model.denoiser) == 51_149_825
    assert count_params(model) == 116_574_658
