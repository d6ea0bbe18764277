"""Every installed dataset plugin against the dataset contract (registry-driven, as the model contract test is)."""
import pytest
import torch

from stbench import plugins
from stbench.data import base_dataset, open_all_splits
from stbench.tasks import parse_task

DATASETS = sorted(plugins.datasets())


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
