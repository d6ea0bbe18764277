import pytest

from stbench import UserError, parse_task
from stbench.tasks import Task


@pytest.mark.parametrize("text,dataset,t_in,t_out,protocol", [
    ("mmnist-10-10", "mmnist", 10, 10, "equal"),
    ("kth-10-40", "kth", 10, 40, "extended"),
    ("kitticaltech-10-1", "kitticaltech", 10, 1, "reduced"),
    ("mmnist-dynamic-10-10", "mmnist-dynamic", 10, 10, "equal"),
    ("  SEVIR-13-12 ", "sevir", 13, 12, "reduced"),
])
def test_parse(text, dataset, t_in, t_out, protocol):
    task = parse_task(text)
    assert (task.dataset, task.t_in, task.t_out, task.protocol) == (dataset, t_in, t_out, protocol)
    assert task.name == f"{dataset}-{t_in}-{t_out}"
    assert task.length == t_in + t_out


@pytest.mark.parametrize("text", ["mmnist", "mmnist-10", "mmnist-a-10", "10-10", "mmnist-10-10-", "-1-1"])
def test_malformed(text):
    with pytest.raises(UserError, match="malformed task"):
        parse_task(text)


@pytest.mark.parametrize("text", ["mmnist-0-10", "mmnist-10-0"])
def test_lengths_must_be_positive(text):
    with pytest.raises(UserError, match="at least 1"):
        parse_task(text)


def test_with_shape():
    task = Task("kth", 10, 20).with_shape([1, 128, 128])
    assert task.shape == (1, 128, 128) and task.name == "kth-10-20"
