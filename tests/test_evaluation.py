"""Evaluation: de-normalising with the opened data's statistics, and metric results keyed by registered name."""
import torch

from stbench import Clips, Metric, STModel


class ShiftedClips(Clips):
    """Clips normalised with statistics of their own (as a dataset computing them from its root would)."""

    mean, std = (10.0,), (2.0,)

    def __init__(self):
        self.clips = torch.arange(4 * 4 * 8 * 8, dtype=torch.float32).reshape(4, 4, 1, 8, 8) / 256 - 1.0

    def __len__(self):
        return len(self.clips)

    def __getitem__(self, i):
        return self.clips[i, :2], self.clips[i, 2:]


class Zero(STModel):
    def forward(self, x, t_out):
        return torch.zeros(x.shape[0], t_out, *x.shape[2:])


def test_evaluate_denormalises_with_the_statistics_the_opened_data_carries():
    from torch.utils.data import Subset

    from stbench.data import DatasetSpec
    from stbench.evaluation import build_metrics, evaluate
    from stbench.tasks import Task

    spec = DatasetSpec(name="shifted", shape=(1, 8, 8), open=None, max_length=4, layout="", value_range=None)
    task = Task("shifted", 2, 2, (1, 8, 8))
    data = ShiftedClips()
    metrics = build_metrics(["mse"], spec, task)
    result = evaluate(Zero(), Subset(data, [0, 1, 2, 3]), 2, metrics, spec, task)
    # predictions 0 and targets y in normalised units are 10 and 10 + 2 y in native units
    expected = ((2 * data.clips[:, 2:]) ** 2).sum(dim=(2, 3, 4)).mean()
    assert abs(result.metrics["mse"] - float(expected)) < 1e-3 * float(expected)
    assert (spec.mean, spec.std) == (0.0, 1.0)


class Constant(Clips):
    def __len__(self):
        return 3

    def __getitem__(self, i):
        return torch.zeros(2, 1, 4, 4), torch.full((2, 1, 4, 4), float(i))


class Hits(Metric):
    """A metric whose own ``name`` (the default, "metric") is not the name it is registered under."""

    def reset(self):
        self.clips = []

    def update(self, pred, true):
        self.clips += true.mean(dim=(1, 2, 3, 4)).tolist()

    def compute(self):
        return {self.name: sum(self.clips) / len(self.clips), "hits_74": float(len(self.clips))}

    def per_frame(self):
        return {self.name: [0.5, 1.5]}

    def per_clip(self):
        return {self.name: list(self.clips)}

    def provenance(self):
        return {"weights": "none"}


def test_metric_results_are_keyed_by_the_registered_name_and_other_keys_keep_their_form():
    from stbench import DatasetSpec, MetricSpec
    from stbench.evaluation import evaluate
    from stbench.tasks import Task

    spec = DatasetSpec(name="constant", shape=(1, 4, 4), open=None, max_length=4, layout="", value_range=None)
    metric = Hits()
    assert metric.name == "metric"
    registered = MetricSpec(name="hitrate", build=lambda context: metric, higher_is_better=True)
    result = evaluate(Zero(), Constant(), 2, [(registered, metric)], spec, Task("constant", 2, 2, (1, 4, 4)))
    assert result.metrics == {"hitrate": 1.0, "hits_74": 3.0}
    assert result.per_frame == {"hitrate": [0.5, 1.5]} and result.per_clip == {"hitrate": [0.0, 1.0, 2.0]}
    assert result.provenance == {"hitrate": {"weights": "none"}}
    assert result.info["hitrate"]["label"] == "HITRATE" and result.info["hits_74"]["label"] == "HITS_74"
    assert result.info["hitrate"]["higher_is_better"] is True
