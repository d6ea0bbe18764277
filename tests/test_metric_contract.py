"""Every installed metric against the metric contract (registry-driven, as the model and dataset contract tests
are): built from a context, reset / update / compute on small tensors, its keys, its per-frame and per-clip values
and the direction its info declares. A new metric plugin is covered with no test written."""
import math

import pytest
import torch

from stbench import Metric, MetricContext, NotAvailable, plugins
from stbench.evaluation import keyed

METRICS = sorted(plugins.metrics())
CLIPS, FRAMES, SHAPE = 3, 4, (1, 32, 32)
HIGH = 255.0  # native values in [0, 255]: thresholds of the categorical scores (VIL levels) fall inside


def context():
    return MetricContext(dataset="contract", task=f"contract-2-{FRAMES}", value_range=(0.0, HIGH), data_range=HIGH)


def batch(seed, noise):
    """(pred, true) ``[CLIPS, FRAMES, *SHAPE]`` in native units: smooth fields, the prediction off by ``noise``."""
    generator = torch.Generator().manual_seed(seed)
    rows = torch.linspace(0, 1, SHAPE[1]).view(-1, 1)
    cols = torch.linspace(0, 1, SHAPE[2]).view(1, -1)
    phase = torch.rand(CLIPS, FRAMES, 1, 1, 1, generator=generator) * 6.28
    true = HIGH * (0.5 + 0.45 * torch.sin(3 * rows + 5 * cols + phase))
    pred = (true + noise * HIGH * torch.randn(true.shape, generator=generator)).clamp(0, HIGH)
    return pred.float(), true.float()


def score(spec, parts):
    """compute(), per_frame() and per_clip() of a fresh reset, fed ``parts`` (a list of (pred, true) batches), keyed
    by the registered name."""
    metric = spec.build(context())
    assert isinstance(metric, Metric), f"{spec.name}: build(context) must return a stbench.Metric"
    metric.reset()
    for pred, true in parts:
        if metric.ensemble:  # two samples per clip: the prediction and a nudged copy
            metric.update_ensemble(torch.stack([pred, (pred + 0.01 * HIGH).clamp(0, HIGH)]), true)
        else:
            metric.update(pred, true)
    return (keyed(spec, metric, metric.compute()), keyed(spec, metric, metric.per_frame()),
            keyed(spec, metric, metric.per_clip()))


def numbers(values):
    return {key: value for key, value in values.items() if not isinstance(value, NotAvailable)}


def close(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert isinstance(a[key], NotAvailable) == isinstance(b[key], NotAvailable), key
        if not isinstance(a[key], NotAvailable):
            assert math.isclose(a[key], b[key], rel_tol=1e-5, abs_tol=1e-6), (key, a[key], b[key])


@pytest.mark.parametrize("name", METRICS)
def test_metric_keeps_the_contract(name):
    spec = plugins.get_metric(name)
    info = spec.info()
    assert isinstance(info["higher_is_better"], bool) and (info["target"] is None or math.isfinite(info["target"]))
    assert info["label"] and isinstance(info["unit"], str) and isinstance(info["decimals"], int) and info["decimals"] >= 0

    noisy = batch(0, 0.1)
    values, per_frame, per_clip = score(spec, [noisy])
    assert name in values, f"{name}: compute() must report the metric's own key, got {sorted(values)}"
    for key, value in values.items():
        assert key == name or key.startswith(f"{name}_"), f"{name}: key {key} must be '{name}' or '{name}_<part>'"
        assert isinstance(value, NotAvailable) or (isinstance(value, float) and math.isfinite(value)), (key, value)
    for key, frames in per_frame.items():
        assert key in values and len(frames) == FRAMES, (key, len(frames))
    for key, clips in per_clip.items():
        assert key in values and len(clips) == CLIPS, (key, len(clips))

    again = score(spec, [noisy])[0]
    close(values, again)  # reset forgets: the same data scores the same
    halves = score(spec, [tuple(t[:1] for t in noisy), tuple(t[1:] for t in noisy)])[0]
    close(values, halves)  # streaming: two batches score as one

    perfect = numbers(score(spec, [batch(0, 0.0)])[0])
    for key, value in numbers(values).items():
        if key not in perfect:
            continue
        if info["target"] is not None:
            assert abs(perfect[key] - info["target"]) <= abs(value - info["target"]) + 1e-9, (key, perfect[key], value)
        elif info["higher_is_better"]:
            assert perfect[key] >= value - 1e-9, (key, perfect[key], value)
        else:
            assert perfect[key] <= value + 1e-9, (key, perfect[key], value)
