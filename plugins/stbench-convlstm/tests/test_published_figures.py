"""Paper-profile params and MACs of the recurrent family against USTEP (TPAMI 2025) Tables II-V.

MACs are counted by ``stbench.profiling.count_macs`` at batch 1 on the meta device. The
published parameter counts come from OpenSTL, whose ConvLSTM and causal LSTM cells create a
layer they never call; ``unused`` is what those layers hold, so ours + unused = published.
"""
import pytest
import torch

from stbench import Task, plugins
from stbench.config import TRAIN_KEYS
from stbench.models import count_params
from stbench.profiling import count_macs

CONVLSTM_UNUSED = 4 * (256 * 128 * 25 + 256 * 128)  # per layer: conv_o (5x5, 2h->h) and conv_last (1x1, 2h->h)
CAUSAL_UNUSED = 4 * (256 * 128 * 25)  # per layer: conv_o (5x5, 2h->h)
UNUSED = {"convlstm": CONVLSTM_UNUSED, "predrnn": 0, "predrnnpp": CAUSAL_UNUSED, "predrnnv2": 0}

TASKS = {
    "mmnist-10-10": Task("mmnist", 10, 10, (1, 64, 64)),
    "kth-10-20": Task("kth", 10, 20, (1, 128, 128)),
    "kth-10-40": Task("kth", 10, 40, (1, 128, 128)),
    "human-4-4": Task("human", 4, 4, (3, 256, 256)),
    "weather-12-12": Task("weather", 12, 12, (1, 32, 64)),
    "kitticaltech-10-1": Task("kitticaltech", 10, 1, (3, 128, 160)),
}
# task -> model -> (published params M, published FLOPs G = MACs)
PUBLISHED = {
    "mmnist-10-10": {"convlstm": (15.0, 56.8), "predrnn": (23.8, 116.0), "predrnnpp": (38.6, 171.7),
                     "predrnnv2": (23.9, 116.6)},
    "kth-10-20": {"convlstm": (14.9, 1368.0), "predrnn": (23.6, 2800.0), "predrnnpp": (38.3, 4162.0),
                  "predrnnv2": (23.6, 2815.0)},
    "kth-10-40": {"convlstm": (14.9, 2312.0), "predrnn": (23.6, 4730.0), "predrnnpp": (38.3, 7032.0),
                  "predrnnv2": (23.6, 4757.0)},
    "human-4-4": {"convlstm": (15.5, 347.0), "predrnn": (24.6, 704.0), "predrnnpp": (39.3, 1033.0),
                  "predrnnv2": (24.6, 708.0)},
    "weather-12-12": {"convlstm": (15.0, 136.0), "predrnn": (23.6, 278.0), "predrnnpp": (38.3, 413.0),
                      "predrnnv2": (23.6, 279.0)},
    "kitticaltech-10-1": {"convlstm": (15.0, 595.0), "predrnn": (23.7, 1216.0), "predrnnpp": (38.5, 1803.0),
                          "predrnnv2": (23.8, 1223.0)},
}
# counted over every step here; the other tasks count one step and multiply (the steps are identical)
FULL_COUNT = ("mmnist-10-10", "kth-10-20")
CASES = [(task, model) for task, row in PUBLISHED.items() for model in row]


def paper_model(name, task):
    spec = plugins.get_model(name)
    hparams = {k: v for k, v in spec.settings_for("paper", task.dataset).items() if k not in TRAIN_KEYS}
    with torch.device("meta"):  # shapes only: paper-size models build and count in moments
        return spec.build(task, hparams)


@pytest.mark.parametrize("task_name,name", CASES, ids=[f"{m}-{t}" for t, m in CASES])
def test_paper_profile_matches_the_published_figures(task_name, name):
    if name not in plugins.models():
        pytest.skip(f"model {name} is not installed")
    task = TASKS[task_name]
    params_m, gmacs = PUBLISHED[task_name][name]
    model = paper_model(name, task)
    assert (count_params(model) + UNUSED[name]) / 1e6 == pytest.approx(params_m, rel=0.02)
    steps = task.t_in + task.t_out - 1
    if task_name in FULL_COUNT:
        macs = count_macs(model, task)
    else:
        macs = count_macs(model, Task(task.dataset, 1, 1, task.shape)) * steps
    assert macs / 1e9 == pytest.approx(gmacs, rel=0.02)
