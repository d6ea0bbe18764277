"""Every bundled dataset reports missing data in one line: what is missing (absolute path), where to get it, and
the `stbench data check` command that prints the layout."""
import pytest

from stbench import UserError, parse_task
from stbench.plugins import datasets

# every bundled dataset that needs a download (the Moving MNIST family renders clips from installed digits)
BUNDLED = ["bair", "bridgedata", "cityscapes", "enso", "human", "kinetics", "kitti", "kitticaltech", "kth",
           "nuscenes", "robonet", "sevir", "taxibj", "traffic4cast", "ucfsports", "weather"]


@pytest.mark.parametrize("name", BUNDLED)
def test_missing_data_is_one_line(tmp_path, name):
    spec = datasets()[name]  # KeyError here: a bundled plugin failed to load
    task = parse_task(spec.canonical_tasks[0])
    root = tmp_path / "relative-looking" / ".." / "data"
    root.mkdir(parents=True)
    for attempt in (lambda: spec.open(str(root), "train", task.t_in, task.t_out), lambda: spec.check(str(root))):
        with pytest.raises(UserError) as error:
            attempt()
        message = str(error.value)
        assert "\n" not in message, message
        assert str(tmp_path / "data") in message, message  # absolute and normalised
        assert f"'stbench data check {task.name}'" in message, message
        assert "http" in message or "github.com" in message or ".aws" in message or "aliyun" in message, message
