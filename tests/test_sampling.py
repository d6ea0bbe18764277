"""Stochastic evaluation: K predictions per test clip with recorded seeds, best-of-K / mean / spread, ensemble
scores (CRPS, spread / skill) as WeatherBench 2 defines them, and K as part of the evaluation identity only."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from stbench.cli import main
from stbench.evaluation import combine_samples
from stbench.metrics.base import MetricContext
from stbench.metrics.ensemble import CRPS, SpreadSkill


def _records(out):
    return {r["model"]: r for r in (json.loads(p.read_text()) for p in Path(out, "runs").glob("*/*/record.json"))}


def _run(out, root, *extra):
    return main(["run", "--tasks", "toy-6-6", "--profile", "smoke", "--data-root", str(root), "--out", str(out),
                 "--metrics", "mse,mae,ssim,crps,spread_skill", *extra])


def test_crps_and_spread_skill_equal_their_direct_formulas():
    generator = torch.Generator().manual_seed(3)
    preds = torch.rand(5, 2, 3, 1, 4, 4, generator=generator, dtype=torch.float64)
    true = torch.rand(2, 3, 1, 4, 4, generator=generator, dtype=torch.float64)
    k = preds.shape[0]
    skill = (preds - true).abs().mean(0)
    pairs = sum((preds[i] - preds[j]).abs() for i in range(k) for j in range(k))
    crps = (skill - 0.5 * pairs / (k * (k - 1))).mean()  # the fair ensemble CRPS, pixel mean
    metric = CRPS("crps", MetricContext())
    metric.update_ensemble(preds[:, :1], true[:1])
    metric.update_ensemble(preds[:, 1:], true[1:])  # streamed over two batches
    assert metric.compute()["crps"] == pytest.approx(float(crps), rel=1e-12)
    variance = preds.var(0, unbiased=True).mean()
    error = ((preds.mean(0) - true) ** 2).mean()
    ratio = SpreadSkill("spread_skill", MetricContext())
    ratio.update_ensemble(preds, true)
    assert ratio.compute()["spread_skill"] == pytest.approx(float(variance.sqrt() / error.sqrt()), rel=1e-12)
    single = CRPS("crps", MetricContext())
    single.update_ensemble(preds[:1], true)
    assert "K >= 2" in single.compute()["crps"].reason  # never a number from one sample


def test_best_of_k_takes_each_clips_best_sample_in_the_metrics_direction():
    def one(mse, ssim):
        return ({"mse": float(np.mean(mse)), "ssim": float(np.mean(ssim))}, {"mse": [1.0]}, {"mse": mse, "ssim": ssim},
                {}, {"mse": {"higher_is_better": False}, "ssim": {"higher_is_better": True}}, {})

    values, _, per_clip, sampling = combine_samples([one([3.0, 1.0], [0.1, 0.9]), one([2.0, 4.0], [0.5, 0.2])], 2)
    assert per_clip["mse"] == [2.0, 1.0] and values["mse"] == 1.5 and values["mse_mean"] == 2.5
    assert per_clip["ssim"] == [0.5, 0.9] and values["ssim"] == pytest.approx(0.7)
    assert values["mse_spread"] == pytest.approx(np.mean([np.std([3, 2], ddof=1), np.std([1, 4], ddof=1)]))
    assert sampling["per_clip_samples"]["mse"] == [[3.0, 2.0], [1.0, 4.0]]


def test_a_stochastic_run_reports_k_samples_and_k_is_evaluation_identity_only(use_plugins, toy_root, tmp_path,
                                                                             capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    assert _run(out, toy_root, "--models", "tinynoisy,tiny", "--samples", "3") == 0
    records = _records(out)
    noisy, tiny = records["tinynoisy"], records["tiny"]
    # deterministic models are K = 1 and unchanged: the same metrics as without --samples
    assert tiny["samples"] == 1 and tiny["sampling"] == {"k": 1, "stochastic": False}
    assert tiny["metrics"]["crps"] is None and "mse_mean" not in tiny["metrics"]
    assert _run(tmp_path / "plain", toy_root, "--models", "tiny") == 0
    assert _records(tmp_path / "plain")["tiny"]["metrics"] == tiny["metrics"]
    sampling = noisy["sampling"]
    assert noisy["samples"] == 3 and sampling["k"] == 3 and sampling["seed"] == 0 and "seed_formula" in sampling
    every = np.asarray(sampling["per_clip_samples"]["mse"])
    assert every.shape == (6, 3)
    best = np.asarray(noisy["per_clip"]["mse"])
    assert (best <= every.mean(1) + 1e-12).all()  # best-of-K is never worse than the mean, clip by clip
    assert noisy["metrics"]["mse"] <= noisy["metrics"]["mse_mean"]
    assert noisy["metrics"]["crps"] > 0 and noisy["metrics"]["spread_skill"] > 0
    board = (out / "leaderboards" / "toy-6-6.md").read_text()
    assert "K = 3 predictions per test clip" in board and "best-of-K per clip" in board
    capsys.readouterr()
    # another K re-evaluates the finished run from its checkpoint: nothing is trained
    assert _run(out, toy_root, "--models", "tinynoisy", "--samples", "5") == 0
    assert "epoch 1/" not in capsys.readouterr().err
    again = _records(out)["tinynoisy"]
    assert again["samples"] == 5 and np.asarray(again["sampling"]["per_clip_samples"]["mse"]).shape == (6, 5)
    assert again["config_hash"] == noisy["config_hash"] and again["evaluation"]["source"] == "re-evaluated"
    # the same K again: the same draws (seeded), so the same numbers
    assert _run(tmp_path / "repeat", toy_root, "--models", "tinynoisy", "--samples", "3") == 0
    assert _records(tmp_path / "repeat")["tinynoisy"]["metrics"] == noisy["metrics"]


def test_one_sample_of_a_stochastic_model_is_one_seeded_pass(use_plugins, toy_root, tmp_path):
    use_plugins("plugin_fixture", only="testplug,baselines")
    assert _run(tmp_path / "a", toy_root, "--models", "tinynoisy", "--samples", "1") == 0
    assert _run(tmp_path / "b", toy_root, "--models", "tinynoisy", "--samples", "1") == 0
    a, b = _records(tmp_path / "a")["tinynoisy"], _records(tmp_path / "b")["tinynoisy"]
    assert a["metrics"] == b["metrics"] and a["sampling"]["k"] == 1 and "mse_mean" not in a["metrics"]
