"""Every installed dataset plugin against the dataset contract (registry-driven, as the model contract test is):
its declarations, and, where the plugin offers ``sample_data``, its clips opened from made data, its check
report and a smoke run on them. A new dataset plugin is covered with no test written."""
import json
import math
from pathlib import Path

import pytest
import torch

from stbench import Clips, SampleData, plugins
from stbench.cli import main
from stbench.data import base_dataset, open_all_splits, open_split
from stbench.specs import DATA_ROOT_VARIABLE
from stbench.tasks import check_name, parse_task

DATASETS = sorted(plugins.datasets())
SAMPLED = [name for name in DATASETS if plugins.get_dataset(name).sample_data is not None]
SMOKE_CAPS = {"train": 16, "test": 8}  # the smoke profile's clip caps


def test_the_datasets_that_offer_sample_data_are_covered():
    assert {"bair", "bridgedata", "cityscapes", "enso", "human", "kinetics", "kitti", "kitticaltech", "kth", "nuscenes",
            "robonet", "sevir", "taxibj", "traffic4cast", "ucfsports", "weather"} <= set(SAMPLED)


@pytest.mark.parametrize("name", DATASETS)
def test_every_dataset_declares_what_the_contract_asks(name):
    spec = plugins.get_dataset(name)
    where = f"{name} ({spec.plugin})"
    assert len(spec.shape) == 3 and all(isinstance(n, int) and n > 0 for n in spec.shape), where
    assert isinstance(spec.max_length, int) and spec.max_length >= 2, where
    assert isinstance(spec.layout, str) and spec.layout.strip(), f"{where}: layout must tell where the data goes"
    assert spec.canonical_tasks, where
    for text in spec.canonical_tasks:
        task = plugins.resolve_task(text)  # parses, names this dataset, fits max_length
        assert task.dataset == name and task.shape == tuple(spec.shape), (where, text)
    if spec.value_range is not None:
        low, high = spec.value_range
        assert math.isfinite(low) and math.isfinite(high) and low < high, where
    channels = spec.shape[0]
    for stat in (spec.mean, spec.std):
        values = [stat] if isinstance(stat, (int, float)) else list(stat)
        assert len(values) in (1, channels) and all(math.isfinite(v) for v in values), where
    assert all(v != 0 for v in ([spec.std] if isinstance(spec.std, (int, float)) else spec.std)), where
    assert {"train", "test"} <= set(spec.splits), where
    assert spec.image_origin in ("upper", "lower"), where
    for metric in spec.default_metrics:
        check_name(metric, "metric")
    assert callable(spec.open), where
    for optional in (spec.check, spec.prepare, spec.sample_data):
        assert optional is None or callable(optional), where


@pytest.mark.parametrize("name", DATASETS)
def test_every_dataset_declares_where_its_validation_clips_come_from(name):
    spec = plugins.get_dataset(name)
    assert spec.validation == "val" or isinstance(spec.validation, float), (
        f"{name} ({spec.plugin}) declares no validation split: set DatasetSpec.validation")
    if spec.validation == "val":
        assert "val" in spec.splits
    else:
        assert 0.0 < spec.validation < 1.0
    for task in spec.canonical_tasks:
        assert parse_task(task).dataset == name


@pytest.mark.parametrize("name", ["mmnist", "mfmnist", "mmnist-dynamic"])
def test_generated_validation_clips_are_neither_training_nor_test_clips(name, mmnist_root):
    task = parse_task(f"{name}-10-10")
    spec = plugins.get_dataset(name)
    try:
        train_set, val_set, test_set = open_all_splits(spec, mmnist_root, task, 4, 4, validate=True, val_samples=4)
    except Exception as error:  # Fashion-MNIST is a Debian package that may be missing here
        pytest.skip(f"{name} data unavailable: {error}")
    assert "validation set" in base_dataset(val_set).description
    val_x = torch.stack([val_set[i][0] for i in range(len(val_set))])
    for other in (train_set, test_set):
        other_x = torch.stack([other[i][0] for i in range(len(other))])
        assert not any(torch.equal(v, o) for v in val_x for o in other_x)
    again = open_all_splits(spec, mmnist_root, task, 4, 4, validate=True, val_samples=4)[1]
    assert torch.equal(again[0][0], val_set[0][0])  # a fixed set: the same clips every time


def test_clips_missing_len_or_getitem_fail_when_constructed():
    from stbench import Clips

    with pytest.raises(TypeError, match="abstract class NoItems .*__getitem__"):
        type("NoItems", (Clips,), {"__len__": lambda self: 0})()


def test_open_split_gives_clips_wrapping_a_plain_dataset_once_and_refusing_anything_else(tmp_path):
    from torch.utils.data import TensorDataset

    from stbench import Clips, DatasetSpec, UserError
    from stbench.data import describe, open_split, statistics_of

    pairs = TensorDataset(torch.zeros(3, 2, 1, 4, 4), torch.ones(3, 2, 1, 4, 4))
    spec = DatasetSpec(name="plain", shape=(1, 4, 4), open=lambda *args: pairs, max_length=4, layout="",
                       plugin="someplugin")
    task = parse_task("plain-2-2")
    opened = open_split(spec, tmp_path, "test", task)
    assert isinstance(opened, Clips) and len(opened) == 3 and torch.equal(opened[1][1], pairs[1][1])
    assert statistics_of(spec, opened) is spec and describe(opened) == {"clips": 3, "source": ""}
    opened.set_epoch(1)  # the Clips default: nothing
    own = DatasetSpec(name="own", shape=(1, 4, 4), open=lambda *args: opened, max_length=4, layout="")
    assert open_split(own, tmp_path, "test", task) is opened  # Clips pass through unwrapped
    refused = DatasetSpec(name="listy", shape=(1, 4, 4), open=lambda *args: [1, 2], max_length=4, layout="",
                          plugin="someplugin")
    with pytest.raises(UserError, match=r"dataset 'listy' \(plugin 'someplugin'\): open\(\) returned a list, not "
                                        r"stbench.Clips"):
        open_split(refused, tmp_path, "test", task)


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """Each sampled dataset's made data, written once for the tests below: {name: (root, SampleData)}."""
    made = {}

    def sample(name):
        if name not in made:
            root = tmp_path_factory.mktemp(f"sample-{name}")
            found = plugins.get_dataset(name).sample_data(str(root))
            assert isinstance(found, SampleData), f"{name}: sample_data must return stbench.SampleData"
            made[name] = (root, found)
        return made[name]

    return sample


@pytest.mark.parametrize("name", SAMPLED)
def test_sample_data_opens_as_clips_of_the_declared_shape_and_range(name, samples):
    spec = plugins.get_dataset(name)
    root, sample = samples(name)
    task = plugins.resolve_task(sample.task)
    assert task.dataset == name and {"train", "test"} <= set(sample.clips) <= set(spec.splits)
    for split, count in sample.clips.items():
        clips = open_split(spec, root, split, task)
        assert isinstance(clips, Clips) and len(clips) == count, (split, len(clips), count)
        for index in sorted({0, count - 1}):
            x, y = clips[index]
            assert x.shape == (task.t_in, *spec.shape) and y.shape == (task.t_out, *spec.shape), (split, index)
            assert x.dtype == torch.float32 and y.dtype == torch.float32
            native = spec.denormalize(torch.cat([x, y])) if clips.mean is None else None
            if native is not None and spec.value_range is not None:
                low, high = spec.value_range
                assert float(native.min()) >= low - 1e-5 and float(native.max()) <= high + 1e-5, (split, index)
            assert torch.isfinite(x).all() and torch.isfinite(y).all()


@pytest.mark.parametrize("name", [n for n in SAMPLED if plugins.get_dataset(n).check is not None])
def test_check_reports_the_sample_data(name, samples):
    root, sample = samples(name)
    report = plugins.get_dataset(name).check(str(root))
    assert isinstance(report, str) and report.strip()
    for line in sample.check_lines:
        assert line in report, report


@pytest.mark.parametrize("name", SAMPLED)
def test_a_smoke_run_on_the_sample_data(name, samples, tmp_path, monkeypatch, capsys):
    if "persistence" not in plugins.models():
        pytest.skip("the persistence baseline (stbench-baselines) is not installed")
    root, sample = samples(name)
    monkeypatch.setenv(DATA_ROOT_VARIABLE, str(root))  # the run sets it; put back afterwards
    code = main(["run", "--models", "persistence", "--tasks", sample.task, "--profile", "smoke",
                 "--data-root", str(root), "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err[-2000:]
    records = [json.loads(p.read_text()) for p in sorted(Path(tmp_path, "out", "runs").rglob("*.json"))]
    assert len(records) == 1
    record = records[0]
    assert record["status"] == "ok" and record["task"] == sample.task
    for split, cap in SMOKE_CAPS.items():  # every clip, or as many as the smoke profile takes
        assert record["data"][split]["clips"] == min(sample.clips[split], cap), record["data"]
    assert record["test_sequences"] == min(sample.clips["test"], SMOKE_CAPS["test"])
    assert record["shape"] == list(plugins.get_dataset(name).shape)
    scored = {key for key, value in record["metrics"].items() if value is not None}
    assert scored >= set(plugins.get_dataset(name).default_metrics) & set(plugins.metrics())
