"""The README's plugin example, pasted into a new package and pip-installed, lists and runs."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(marker):
    text = README.read_text()
    match = re.search(rf"<!-- plugin-example:{marker} -->\n```\w+\n(.*?)```", text, re.S)
    assert match, f"README lost its {marker} example"
    return match.group(1)


def _install(tmp_path, name, module, pyproject_block, module_block):
    package = tmp_path / name
    package.mkdir()
    (package / "pyproject.toml").write_text(_block(pyproject_block))
    (package / f"{module}.py").write_text(_block(module_block))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(tmp_path / "site"), str(package)], check=True, capture_output=True)
    return tmp_path / "site"


@pytest.mark.slow
def test_readme_plugin_examples_install_list_and_run(tmp_path, mmnist_root):
    site = _install(tmp_path, "stbench-mean", "stbench_mean", "pyproject", "module")
    _install(tmp_path, "stbench-myclips", "stbench_myclips", "dataset-pyproject", "dataset-module")
    env = dict(os.environ, PYTHONPATH=str(site))
    env.pop("STBENCH_PLUGINS", None)
    listed = subprocess.run([sys.executable, "-m", "stbench", "list", "models"], env=env, capture_output=True,
                            text=True, check=True)
    assert re.search(r"^mean\s+baseline", listed.stdout, re.M), listed.stdout
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "stbench", "run", "--models", "mean", "--tasks", "mmnist-10-10",
                           "--profile", "smoke", "--out", str(out), "--data-root", str(mmnist_root)],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "mean mmnist-10-10 smoke seed 0: mse" in done.stdout
    assert "| mean" in (out / "leaderboards" / "mmnist-10-10.md").read_text()
    listed = subprocess.run([sys.executable, "-m", "stbench", "list", "datasets"], env=env, capture_output=True,
                            text=True, check=True)
    assert re.search(r"^myclips\s+1x32x32", listed.stdout, re.M), listed.stdout
    rng = np.random.default_rng(0)
    (tmp_path / "data" / "my_clips").mkdir(parents=True)
    for split, n in (("train", 8), ("test", 4)):
        np.save(tmp_path / "data" / "my_clips" / f"{split}.npy", rng.integers(0, 256, (n, 12, 1, 32, 32), np.uint8))
    done = subprocess.run([sys.executable, "-m", "stbench", "run", "--models", "mean,persistence", "--tasks",
                           "myclips-6-6", "--profile", "smoke", "--out", str(out), "--data-root",
                           str(tmp_path / "data")], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "mean myclips-6-6 smoke seed 0: mse" in done.stdout and "persistence myclips-6-6" in done.stdout
