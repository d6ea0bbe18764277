"""Patches and the teacher-forcing schedules of the shared recurrent rollout."""
import math

import pytest
import torch

from stbench import Task, UserError
from stbench_convlstm import ConvLSTM, ReverseScheduledSampling, ScheduledSampling


def toy(patch_size=4, shape=(2, 16, 24)):
    return ConvLSTM(Task("toy", 3, 3, shape), num_hidden=[4], filter_size=3, patch_size=patch_size,
                    layer_norm=False, sampling=ScheduledSampling())


def test_patches_round_trip_and_have_the_expected_shape():
    model = toy()
    x = torch.rand(2, 5, 2, 16, 24)
    patches = model.to_patches(x)
    assert patches.shape == (2, 5, 2 * 16, 4, 6)
    assert torch.equal(model.from_patches(patches), x)


def test_a_patch_size_that_does_not_divide_the_frame_is_a_user_error():
    with pytest.raises(UserError, match="patch_size 5"):
        toy(patch_size=5)


def test_scheduled_sampling_eta_decays_linearly_then_stops():
    schedule = ScheduledSampling(start_value=1.0, changing_rate=2e-5, stop_iter=50000)
    assert schedule.eta(0) == pytest.approx(1.0 - 2e-5)
    assert schedule.eta(1) == pytest.approx(1.0 - 4e-5)
    assert schedule.eta(24999) == pytest.approx(0.5)
    assert schedule.eta(49998) == pytest.approx(2e-5)
    assert schedule.eta(49999) == pytest.approx(0.0, abs=1e-12)
    assert schedule.eta(50000) == schedule.eta(10 ** 6) == 0.0
    # a rate that would cross zero before stop_iter is floored at 0
    assert ScheduledSampling(changing_rate=1e-3, stop_iter=5000).eta(2000) == 0.0


def test_scheduled_sampling_mask_keeps_observed_frames_and_draws_per_sample_and_step():
    schedule = ScheduledSampling(start_value=1.0, changing_rate=2e-5, stop_iter=50000)
    assert schedule.truth_mask(3, 4, 9, 0).eq(1).all()  # eta ~ 1: every input true
    late = schedule.truth_mask(3, 4, 9, 60000)
    assert late[:, :4].eq(1).all() and late[:, 4:].eq(0).all()  # eta 0: observed true, future predicted
    torch.manual_seed(0)
    half = schedule.truth_mask(64, 4, 20, 24999)[:, 4:]
    assert half.mean().item() == pytest.approx(0.5, abs=0.05)
    assert len({tuple(row.tolist()) for row in half}) > 1  # samples differ
    torch.manual_seed(0)
    assert torch.equal(schedule.truth_mask(64, 4, 20, 24999)[:, 4:], half)  # drawn with torch's RNG


def test_reverse_scheduled_sampling_rates():
    schedule = ReverseScheduledSampling(step_1=25000, step_2=50000, exp_alpha=5000)
    assert schedule.rates(0) == schedule.rates(24999) == (0.5, 0.5)
    assert schedule.rates(25000) == pytest.approx((0.5, 0.5))
    assert schedule.rates(30000) == pytest.approx((1 - 0.5 * math.exp(-1), 0.4))
    assert schedule.rates(37500) == pytest.approx((1 - 0.5 * math.exp(-2.5), 0.25))
    assert schedule.rates(49999) == pytest.approx((1 - 0.5 * math.exp(-24999 / 5000), 0.5 / 25000))
    assert schedule.rates(50000) == schedule.rates(10 ** 6) == (1.0, 0.0)


def test_reverse_scheduled_sampling_mask():
    schedule = ReverseScheduledSampling(step_1=25000, step_2=50000, exp_alpha=5000)
    torch.manual_seed(0)
    early = schedule.truth_mask(256, 10, 19, 0)
    assert early[:, 0].eq(1).all()  # the first frame is always true
    assert early[:, 1:10].mean().item() == pytest.approx(0.5, abs=0.05)  # observed inputs: half predicted
    assert early[:, 10:].mean().item() == pytest.approx(0.5, abs=0.05)
    late = schedule.truth_mask(4, 10, 19, 50000)  # the end of the curriculum is inference
    assert late[:, :10].eq(1).all() and late[:, 10:].eq(0).all()
