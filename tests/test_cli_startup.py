"""The cheap commands import no torch and no plugin implementation; `stbench.lazy` and the lazy exports behave."""
import importlib.metadata
import json
import os
import pickle
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest

import stbench
from stbench import plugins
from stbench.specs import lazy, lazy_exports

HERE = Path(__file__).parent

CHEAP_COMMANDS = (["--help"], ["list", "models"], ["list", "datasets"], ["list", "metrics"], ["list", "tasks"],
                  ["plugins"])

# Runs the CLI in this process, then reports which modules it imported (stdout stays the command's own).
WRAPPER = """
import json, sys
from stbench.cli import main
try:
    code = main(sys.argv[2:])
except SystemExit as stop:  # --help exits through argparse
    code = stop.code
with open(sys.argv[1], "w") as handle:
    json.dump({"code": code, "modules": sorted(sys.modules)}, handle)
"""

# Modules of plugin packages that only declare (no torch, no numpy): what an entry module may import.
DECLARATION_MODULES = {
    "stbench_data_common.checks",  # video_spec, fetch_hint
    "stbench_data_custom.config",  # the YAML schema of a custom dataset
    "stbench_data_kitticaltech.kitti", "stbench_data_kitticaltech.kitticaltech",  # the two specs
}
HEAVY_CORE = ("stbench.models", "stbench.data", "stbench.metrics.base", "stbench.metrics.pixel_scores",
              "stbench.training", "stbench.evaluation", "stbench.running", "stbench.planning")


def run_cli(tmp_path, args, env=None):
    report = tmp_path / "modules.json"
    done = subprocess.run([sys.executable, "-c", WRAPPER, str(report), *args], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(report.read_text())
    assert result["code"] in (0, None), done.stderr
    return done.stdout, set(result["modules"])


def entry_packages():
    return {entry.value.split(":")[0].split(".")[0] for entry in importlib.metadata.entry_points(group="stbench")}


def implementation_modules(modules):
    """Loaded modules that belong to a plugin package but are neither its entry module nor a declaration."""
    packages = entry_packages() | {"stbench_data_common"}
    return sorted(name for name in modules
                  if name.split(".")[0] in packages and "." in name and name not in DECLARATION_MODULES)


@pytest.mark.slow
@pytest.mark.parametrize("args", CHEAP_COMMANDS, ids=" ".join)
def test_cheap_command_imports_no_torch_and_no_implementation(tmp_path, args):
    out, modules = run_cli(tmp_path, args, env={"STBENCH_DATA_ROOT": str(tmp_path / "data")})
    assert out.strip()
    assert "torch" not in modules
    assert implementation_modules(modules) == []
    assert not [name for name in HEAVY_CORE if name in modules]
    if args == ["list", "models"]:
        assert "tau " in out and "persistence" in out  # the descriptions come from the declarations
    if args == ["list", "metrics"]:
        assert "ssim" in out and "lpips" in out


@pytest.mark.slow
def test_a_custom_dataset_is_listed_without_torch(tmp_path):
    """The custom plugin reads a declared array's header at registration; numpy may load, torch may not."""
    root = tmp_path / "data"
    (root / "mine").mkdir(parents=True)
    for split in ("train", "test"):
        np.save(root / "mine" / f"{split}.npy", np.zeros((3, 6, 1, 8, 8), np.uint8))
    (root / "custom").mkdir()
    (root / "custom" / "mine.yaml").write_text("name: mine\nfiles:\n  train: mine/train.npy\n  test: mine/test.npy\n"
                                               "canonical_tasks: [mine-3-3]\n")
    out, modules = run_cli(tmp_path, ["list", "datasets"], env={"STBENCH_DATA_ROOT": str(root)})
    assert any(line.split()[:2] == ["mine", "1x8x8"] for line in out.splitlines()), out
    assert "torch" not in modules
    assert "stbench_data_custom.dataset" not in modules


@pytest.mark.slow
def test_a_plugin_that_fails_to_load_is_still_reported(tmp_path):
    path = os.pathsep.join([str(HERE / "broken_fixture"), os.environ.get("PYTHONPATH", "")])
    out, modules = run_cli(tmp_path, ["plugins"], env={"PYTHONPATH": path, "STBENCH_PLUGINS": "broken,baselines"})
    assert any(line.split()[:2] == ["broken", "FAILED"] for line in out.splitlines()), out
    assert "torch" not in modules


def test_lazy_imports_on_first_call_and_names_its_target():
    sqrt = lazy("math:sqrt")
    assert repr(sqrt) == "lazy('math:sqrt')"
    assert sqrt(9.0) == 3.0 and sqrt.resolve() is __import__("math").sqrt
    assert lazy("os.path:join")("a", "b") == os.path.join("a", "b")
    assert lazy("math:sqrt") == sqrt and len({sqrt, lazy("math:sqrt")}) == 1
    copied = pickle.loads(pickle.dumps(sqrt))
    assert copied == sqrt and copied(16.0) == 4.0
    with pytest.raises(ValueError, match="package.module:attribute"):
        lazy("math.sqrt")
    with pytest.raises(ModuleNotFoundError, match="cannot load stbench_no_such_module:thing: No module named"):
        lazy("stbench_no_such_module:thing")()
    with pytest.raises(AttributeError):
        lazy("math:no_such_function")()


def test_lazy_exports_load_a_submodule_on_access():
    getter = lazy_exports("stbench.metrics", {"pixel_scores": ("SSIM",)})
    from stbench.metrics.pixel_scores import SSIM

    assert getter("SSIM") is SSIM
    assert lazy_exports("stbench.metrics.pixel", {"stbench.metrics.pixel_scores": ("SSIM",)})("SSIM") is SSIM
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        getter("nothing")


def test_stbench_exports_every_name_of_its_api():
    for name in stbench.__all__:
        assert getattr(stbench, name) is not None
    from stbench import Clips, FrameMetric, NotAvailable, STModel
    from stbench.data import Clips as data_clips, DatasetSpec
    from stbench.metrics import FrameMetric as base_frame_metric, MetricSpec, NotAvailable as metric_na
    from stbench.models import ModelSpec, STModel as model_class

    assert (Clips, FrameMetric, STModel, NotAvailable) == (data_clips, base_frame_metric, model_class, metric_na)
    assert (DatasetSpec, MetricSpec, ModelSpec) == (stbench.DatasetSpec, stbench.MetricSpec, stbench.ModelSpec)
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        stbench.Nothing  # noqa: B018



def test_bundled_plugins_import_the_api_from_stbench_only():
    """A plugin needs nothing from inside stbench's modules: every name it imports is in stbench.__all__."""
    import ast

    inside, missing = [], []
    for path in sorted((HERE.parent / "plugins").glob("*/src/**/*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("stbench."):
                if not (node.module or "").startswith("stbench_"):
                    inside.append(f"{path.relative_to(HERE.parent)}:{node.lineno} from {node.module}")
            elif isinstance(node, ast.ImportFrom) and node.module == "stbench":
                missing += [f"{path.relative_to(HERE.parent)}:{node.lineno} {alias.name}" for alias in node.names
                            if alias.name not in stbench.__all__]
    assert not inside, inside
    assert not missing, missing

def _lazy_targets(value):
    """The lazy references in a spec field: a lazy, a partial of one, or a list of them (extra checks)."""
    if isinstance(value, lazy):
        return [value]
    if isinstance(value, partial):
        return _lazy_targets(value.func)
    if isinstance(value, (list, tuple)):
        return [found for item in value for found in _lazy_targets(item)]
    return []


def test_every_lazy_reference_of_every_registered_spec_resolves():
    """A typo in a lazy target would only show when a command uses it; resolve every one now."""
    plugins.reset()
    try:
        registries = plugins.registries()
        targets = []
        for registry in registries.values():
            for spec in registry.values():
                for value in vars(spec).values():
                    targets += _lazy_targets(value)
                check = getattr(spec, "check", None)
                if isinstance(check, partial):  # video_spec's check holds the dataset's own extra checks
                    targets += _lazy_targets(list(check.args))
        assert len(targets) > 30
        for target in targets:
            assert callable(target.resolve()), target
    finally:
        plugins.reset()
