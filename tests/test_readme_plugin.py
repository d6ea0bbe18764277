"""The README's plugin example, pasted into a new package and pip-installed, lists and runs."""
import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(marker):
    text = README.read_text()
    match = re.search(rf"<!-- plugin-example:{marker} -->\n```\w+\n(.*?)```", text, re.S)
    assert match, f"README lost its {marker} example"
    return match.group(1)


def test_readme_plugin_example_installs_lists_and_runs(tmp_path, mmnist_root):
    package = tmp_path / "stbench-mean"
    package.mkdir()
    (package / "pyproject.toml").write_text(_block("pyproject"))
    (package / "stbench_mean.py").write_text(_block("module"))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(package)], check=True, capture_output=True)
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
