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
