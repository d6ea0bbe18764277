"""Where LPIPS and FVD find weights (fake caches of torch hub, lpips, torchmetrics, pyiqa, dnnlib and
VideoGPT under a fake HOME), what ``weight_files`` and ``provenance`` report, and that no weight file
runs code unless the user chose a TorchScript file."""
import hashlib
import os
import re

import pytest
import torch
from torch import nn

from stbench import MetricContext, NotAvailable, Unavailable, UserError
from stbench_metrics_perceptual import METRICS, fvd, lpips, weights
from stbench_metrics_perceptual.fvd import STYLEGAN_V_MD5, build_fvd
from stbench_metrics_perceptual.i3d import InceptionI3d, TorchScriptI3D
from stbench_metrics_perceptual.lpips import LINEAR_FILE, LPIPS, LPIPSNet, build_lpips

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

CONTEXT = MetricContext(dataset="kth", task="kth-10-20", value_range=(0.0, 1.0))
TORCHMETRICS_FILE = "torchmetrics/functional/image/lpips_models/alex.pth"
PYIQA_FILE = "LPIPS_v0.1_alex-df73285e.pth"
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"


@pytest.fixture(autouse=True)
def fake_home(monkeypatch, tmp_path):
    """A HOME with empty caches, no cache variables, no STBENCH_* names; installed wheels are looked up
    only in ``tmp_path/site`` (the real environment has lpips installed)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("TORCH_HOME", "XDG_CACHE_HOME", "DNNLIB_CACHE_DIR", "STBENCH_LPIPS_ALEXNET",
                 "STBENCH_LPIPS_LINEAR", "STBENCH_FVD_I3D"):
        monkeypatch.delenv(name, raising=False)
    site = tmp_path / "site"
    site.mkdir()
    real = weights.installed_file
    monkeypatch.setattr(lpips, "installed_file", lambda dist, rel: real(dist, rel, [str(site)]))
    monkeypatch.setattr(weights, "_SHA256", {})
    return home


def put(path, data: bytes = b""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def fake_wheel(site, name, relative, data: bytes):
    """An installed distribution as pip leaves it: dist-info with METADATA and RECORD, and the file."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "RECORD").write_text(f"{relative},,\n{info.name}/METADATA,,\n")
    return put(site / relative, data)


@pytest.fixture(scope="module")
def lpips_files(tmp_path_factory):
    """(trunk bytes, linear bytes) in the torchvision and lpips layouts, from a seeded random net."""
    folder = tmp_path_factory.mktemp("lpips")
    torch.manual_seed(0)
    donor = LPIPSNet()
    torch.save({k: v.clone() for k, v in donor.trunk.state_dict().items()}, folder / "trunk.pth")
    torch.save({f"lin{k}.model.1.weight": lin.weight.detach().abs().clone() for k, lin in enumerate(donor.lins)},
               folder / "linear.pth")
    return (folder / "trunk.pth").read_bytes(), (folder / "linear.pth").read_bytes()


# ---------------------------------------------------------------------------------------------------
# LPIPS: the trunk in torch hub's folder as torch resolves it; the linear layers in wheels and pyiqa.

@pytest.mark.parametrize("variable", ["TORCH_HOME", "XDG_CACHE_HOME", None])
def test_lpips_finds_the_trunk_where_torch_hub_keeps_it(variable, fake_home, tmp_path, monkeypatch, lpips_files):
    if variable == "TORCH_HOME":
        monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
        hub = tmp_path / "th" / "hub"
    elif variable == "XDG_CACHE_HOME":
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        hub = tmp_path / "xdg" / "torch" / "hub"
    else:
        hub = fake_home / ".cache" / "torch" / "hub"
    trunk = put(hub / "checkpoints" / ALEXNET_FILE, lpips_files[0])
    linear = put(tmp_path / "alex.pth", lpips_files[1])
    metric = build_lpips(MetricContext(value_range=(0.0, 1.0), options={"lpips_linear": str(linear)}))
    assert isinstance(metric, LPIPS)
    record = metric.provenance()
    assert record["trunk_file"] == str(trunk) and record["trunk_found_in"] == "torch hub cache"
    assert record["linear_found_in"] == "metric option lpips_linear"


@pytest.mark.parametrize("where", ["lpips", "torchmetrics", "pyiqa-hub", "pyiqa-home", "pyiqa-checkpoints"])
def test_lpips_finds_the_linear_layers_in_each_tool_s_place(where, fake_home, tmp_path, lpips_files):
    hub = fake_home / ".cache" / "torch" / "hub"
    put(hub / "checkpoints" / ALEXNET_FILE, lpips_files[0])
    site = tmp_path / "site"
    path, label = {
        "lpips": (lambda: fake_wheel(site, "lpips", LINEAR_FILE, lpips_files[1]), "lpips package"),
        "torchmetrics": (lambda: fake_wheel(site, "torchmetrics", TORCHMETRICS_FILE, lpips_files[1]),
                         "torchmetrics package"),
        "pyiqa-hub": (lambda: put(hub / "pyiqa" / PYIQA_FILE, lpips_files[1]), "pyiqa cache"),
        "pyiqa-home": (lambda: put(fake_home / ".cache" / "pyiqa" / PYIQA_FILE, lpips_files[1]),
                       "pyiqa cache (pyiqa 0.1.12)"),
        "pyiqa-checkpoints": (lambda: put(hub / "checkpoints" / PYIQA_FILE, lpips_files[1]),
                              "pyiqa cache (pyiqa before 0.1.12)"),
    }[where]
    path = path()
    metric = build_lpips(CONTEXT)
    assert isinstance(metric, LPIPS)
    assert metric.provenance()["linear_file"] == str(path)
    assert metric.provenance()["linear_found_in"] == label


def test_lpips_search_order_named_then_wheels_then_pyiqa(fake_home, tmp_path, monkeypatch, lpips_files):
    hub = fake_home / ".cache" / "torch" / "hub"
    put(hub / "checkpoints" / ALEXNET_FILE, lpips_files[0])
    put(hub / "pyiqa" / PYIQA_FILE, lpips_files[1])
    assert build_lpips(CONTEXT).provenance()["linear_found_in"] == "pyiqa cache"
    fake_wheel(tmp_path / "site", "torchmetrics", TORCHMETRICS_FILE, lpips_files[1])
    assert build_lpips(CONTEXT).provenance()["linear_found_in"] == "torchmetrics package"
    fake_wheel(tmp_path / "site", "lpips", LINEAR_FILE, lpips_files[1])
    assert build_lpips(CONTEXT).provenance()["linear_found_in"] == "lpips package"
    named = put(tmp_path / "mine.pth", lpips_files[1])
    monkeypatch.setenv("STBENCH_LPIPS_LINEAR", str(named))
    assert build_lpips(CONTEXT).provenance()["linear_found_in"] == "environment variable STBENCH_LPIPS_LINEAR"
    options = {"lpips_linear": str(named)}
    metric = build_lpips(MetricContext(value_range=(0.0, 1.0), options=options))
    assert metric.provenance()["linear_found_in"] == "metric option lpips_linear"


def test_lpips_provenance_names_both_files_with_their_sha256(fake_home, lpips_files):
    hub = fake_home / ".cache" / "torch" / "hub"
    trunk = put(hub / "checkpoints" / ALEXNET_FILE, lpips_files[0])
    linear = put(hub / "pyiqa" / PYIQA_FILE, lpips_files[1])
    metric = build_lpips(CONTEXT)
    metric.update(torch.rand(2, 3, 1, 32, 32), torch.rand(2, 3, 1, 32, 32))
    assert metric.provenance() == {
        "trunk_file": str(trunk), "trunk_sha256": hashlib.sha256(lpips_files[0]).hexdigest(),
        "trunk_found_in": "torch hub cache",
        "linear_file": str(linear), "linear_sha256": hashlib.sha256(lpips_files[1]).hexdigest(),
        "linear_found_in": "pyiqa cache"}
    assert len(metric.per_clip()["lpips"]) == 2


def test_sha256_is_computed_once_per_file_not_per_batch_or_build(fake_home, monkeypatch, lpips_files):
    hub = fake_home / ".cache" / "torch" / "hub"
    put(hub / "checkpoints" / ALEXNET_FILE, lpips_files[0])
    linear = put(hub / "pyiqa" / PYIQA_FILE, lpips_files[1])
    calls, real_sha256 = [], hashlib.sha256

    def counting_sha256():
        calls.append(1)
        return real_sha256()

    monkeypatch.setattr(weights.hashlib, "sha256", counting_sha256)
    for _ in range(3):
        metric = build_lpips(CONTEXT)
        for _ in range(3):
            metric.update(torch.rand(1, 2, 1, 32, 32), torch.rand(1, 2, 1, 32, 32))
            metric.provenance()
    lpips.weight_files({})
    assert len(calls) == 2
    os.utime(linear, ns=(1, 1))  # a file replaced in place is hashed again
    build_lpips(CONTEXT).provenance()
    assert len(calls) == 3


# ---------------------------------------------------------------------------------------------------
# FVD: dnnlib's and VideoGPT's caches, torch hub's folder; TorchScript only where it may run.

class FakeDetector(nn.Module):
    """Stands in for StyleGAN-V's i3d_torchscript.pt: its call signature, 400 outputs."""

    def forward(self, x: torch.Tensor, rescale: bool, resize: bool, return_features: bool) -> torch.Tensor:
        pooled = torch.nn.functional.adaptive_avg_pool3d(x, (2, 2, 2)).flatten(1)
        return pooled.repeat(1, 17)[:, :400]


@pytest.fixture(scope="module")
def i3d_files(tmp_path_factory):
    """(TorchScript bytes, pytorch-i3d state dict bytes), made once: the state dict is 50 MB."""
    folder = tmp_path_factory.mktemp("i3d")
    torch.jit.save(torch.jit.script(FakeDetector()), str(folder / "ts.pt"))
    torch.manual_seed(0)
    torch.save(InceptionI3d().state_dict(), folder / "sd.pt")
    return (folder / "ts.pt").read_bytes(), (folder / "sd.pt").read_bytes()


def dnnlib_name(md5=STYLEGAN_V_MD5):
    return f"{md5}_i3d_torchscript.pt"


def test_fvd_loads_stylegan_v_s_detector_from_dnnlib_s_cache(fake_home, i3d_files):
    path = put(fake_home / ".cache" / "dnnlib" / "downloads" / dnnlib_name(), i3d_files[0])
    metric = build_fvd(CONTEXT)
    assert isinstance(metric.extractor, TorchScriptI3D)
    assert metric.provenance() == {"file": str(path), "sha256": hashlib.sha256(i3d_files[0]).hexdigest(),
                                   "found_in": "dnnlib cache (StyleGAN-V's download)",
                                   "format": "torchscript (stylegan-v)"}
    true = torch.rand(3, 2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    metric.update(1 - true, true)
    assert metric.compute()["fvd"] > 0


def test_dnnlib_cache_dir_variable_and_stylegan_v_s_url_first(fake_home, tmp_path, monkeypatch, i3d_files):
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path / "dnn"))
    downloads = tmp_path / "dnn" / "downloads"
    put(downloads / "tmp_0123456789abcdef0123456789abcdef_i3d_torchscript.pt", b"half")  # dnnlib's temp name
    assert fvd.find_i3d({}) is None
    without_header = "1" * 32 + "_https___www.dropbox.com_s_x_i3d_torchscript.pt_dl_1"  # no file name sent
    put(downloads / without_header, i3d_files[0])
    assert fvd.find_i3d({}).path.name == without_header
    put(downloads / dnnlib_name("0" * 32), i3d_files[0])
    assert fvd.find_i3d({}).path.name == dnnlib_name("0" * 32)
    put(downloads / dnnlib_name(), i3d_files[0])
    assert fvd.find_i3d({}).path == downloads / dnnlib_name()
    put(fake_home / ".cache" / "dnnlib" / "downloads" / dnnlib_name("f" * 32), i3d_files[0])
    assert fvd.find_i3d({}).path.parent == downloads  # HOME's cache is not dnnlib's when the variable is set


def test_fvd_loads_videogpt_s_state_dict_from_its_cache(fake_home, i3d_files):
    path = put(fake_home / ".cache" / "videogpt" / "i3d_pretrained_400.pt", i3d_files[1])
    metric = build_fvd(CONTEXT)
    assert isinstance(metric.extractor, InceptionI3d)
    assert metric.provenance()["file"] == str(path)
    assert metric.provenance()["found_in"] == "VideoGPT cache"
    assert metric.provenance()["format"] == "state dict (pytorch-i3d)"


def test_fvd_search_order_and_torchscript_skipped_in_torch_hub_s_folder(fake_home, tmp_path, monkeypatch,
                                                                        i3d_files):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    hub = tmp_path / "th" / "hub" / "checkpoints"
    put(hub / "i3d_torchscript.pt", i3d_files[0])
    loads = []
    real_load = torch.jit.load
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    metric = build_fvd(CONTEXT)
    assert isinstance(metric, Unavailable) and not loads
    assert "is TorchScript, which runs code" in metric.reason and "fvd_i3d=PATH" in metric.reason
    put(hub / "i3d_pretrained_400.pt", i3d_files[1])
    assert fvd.find_i3d({}).found_in == "torch hub cache" and fvd.find_i3d({}).path.name == "i3d_pretrained_400.pt"
    put(fake_home / ".cache" / "videogpt" / "i3d_pretrained_400.pt", i3d_files[1])
    assert fvd.find_i3d({}).found_in == "VideoGPT cache"
    put(fake_home / ".cache" / "dnnlib" / "downloads" / dnnlib_name(), i3d_files[0])
    assert fvd.find_i3d({}).found_in == "dnnlib cache (StyleGAN-V's download)"
    named = put(tmp_path / "mine.pt", i3d_files[0])
    monkeypatch.setenv("STBENCH_FVD_I3D", str(named))
    assert fvd.find_i3d({}).found_in == "environment variable STBENCH_FVD_I3D"
    found = fvd.find_i3d({"fvd_i3d": str(named)})
    assert found.found_in == "metric option fvd_i3d" and found.path == named
    assert not loads


def test_a_torchscript_file_where_videogpt_keeps_a_state_dict_is_not_loaded(fake_home, monkeypatch, i3d_files):
    put(fake_home / ".cache" / "videogpt" / "i3d_pretrained_400.pt", i3d_files[0])
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: pytest.fail("TorchScript loaded"))
    assert isinstance(build_fvd(CONTEXT), Unavailable)
    with pytest.raises(UserError, match="TorchScript"):
        fvd.load_i3d(fake_home / ".cache" / "videogpt" / "i3d_pretrained_400.pt")


# ---------------------------------------------------------------------------------------------------
# weight_files: what `stbench weights` prints.

def test_weight_files_are_registered_on_both_metric_specs():
    specs = {spec.name: spec for spec in METRICS}
    # declared lazily (registering imports no torch); each resolves to its module's function
    assert specs["lpips"].weight_files.resolve() is lpips.weight_files
    assert specs["fvd"].weight_files.resolve() is fvd.weight_files
    assert specs["lpips"].build.resolve() is lpips.build_lpips and specs["fvd"].build.resolve() is fvd.build_fvd


def test_weight_files_say_what_is_missing_where_it_was_looked_for_and_how_to_get_it(fake_home):
    trunk, linear = lpips.weight_files({})
    i3d, = fvd.weight_files({})
    for entry in (trunk, linear, i3d):
        assert set(entry) == {"name", "path", "sha256", "found_in", "how_to_get", "searched", "note"}
        assert entry["path"] is None and entry["sha256"] is None and entry["found_in"] is None
    hub = fake_home / ".cache" / "torch" / "hub"
    assert f"torch hub cache: {hub / 'checkpoints' / ALEXNET_FILE}" in trunk["searched"]
    assert "download.pytorch.org/models/alexnet-owt-7be5be79.pth" in trunk["how_to_get"]
    assert str(hub) in trunk["how_to_get"]
    assert "pip install --no-deps lpips==0.1.4" in linear["how_to_get"]
    assert f"pyiqa cache (pyiqa 0.1.12): {fake_home / '.cache' / 'pyiqa' / PYIQA_FILE}" in linear["searched"]
    assert "RUNS CODE" in i3d["how_to_get"] and "~/.cache/videogpt/i3d_pretrained_400.pt" in i3d["how_to_get"]
    assert f"VideoGPT cache: {fake_home / '.cache' / 'videogpt' / 'i3d_pretrained_400.pt'}" in i3d["searched"]
    assert i3d["searched"][:2] == ["metric option fvd_i3d: (not set)",
                                   "environment variable STBENCH_FVD_I3D: (not set)"]
    dnnlib = fake_home / ".cache" / "dnnlib" / "downloads"
    assert f"dnnlib cache (StyleGAN-V's download): {dnnlib}/<md5 of the URL>_i3d_torchscript.pt" in i3d["searched"]


def test_weight_files_report_found_files_notes_and_bad_names_without_raising(fake_home, tmp_path, lpips_files,
                                                                             i3d_files):
    hub = fake_home / ".cache" / "torch" / "hub"
    trunk = put(hub / "checkpoints" / ALEXNET_FILE, lpips_files[0])
    trunk_entry, linear_entry = lpips.weight_files({"lpips_linear": str(tmp_path / "gone.pth")})
    assert trunk_entry["path"] == str(trunk) and trunk_entry["found_in"] == "torch hub cache"
    assert trunk_entry["sha256"] == hashlib.sha256(lpips_files[0]).hexdigest()
    assert "sha256 differs from the published file's (7be5be79...)" in trunk_entry["note"]  # a random net
    assert linear_entry["path"] is None and "not a file" in linear_entry["note"]
    assert f"metric option lpips_linear: {tmp_path / 'gone.pth'}" in linear_entry["searched"]
    assert str(tmp_path / "gone.pth") in linear_entry["note"]

    put(hub / "checkpoints" / "i3d_torchscript.pt", i3d_files[0])
    entry, = fvd.weight_files({})
    assert entry["path"] is None and "is TorchScript, which runs code" in entry["note"]
    path = put(fake_home / ".cache" / "dnnlib" / "downloads" / dnnlib_name(), i3d_files[0])
    entry, = fvd.weight_files({})
    assert entry["path"] == str(path) and entry["found_in"] == "dnnlib cache (StyleGAN-V's download)"
    assert "runs code it holds (loaded because it was left by StyleGAN-V's download" in entry["note"]
    entry, = fvd.weight_files({"fvd_i3d": str(path)})
    assert entry["found_in"] == "metric option fvd_i3d" and "loaded because it was named" in entry["note"]


def test_the_published_linear_file_matches_its_sha256(fake_home):
    """Where the lpips wheel is really installed, its alex.pth is the published file (no note)."""
    real = weights.installed_file("lpips", LINEAR_FILE)
    if real is None:
        pytest.skip("the lpips package is not installed (pip install --no-deps lpips==0.1.4)")
    entry = weights.weight_entry(lpips.LINEAR, {}, weights.Found(real, "lpips package"))
    assert entry["sha256"] == lpips.LINEAR_SHA256 and entry["note"] is None


# ---------------------------------------------------------------------------------------------------
# No code runs from a weight file (issue 14, point 1).

class Payload:
    """Writes a marker file when unpickled: what an attacker's planted .pth would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def plant(path, marker, zip_format=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"features.0.weight": torch.zeros(1), "payload": Payload(marker)}, path,
               _use_new_zipfile_serialization=zip_format)
    return path


@pytest.mark.parametrize("zip_format", [True, False])
def test_the_planted_payload_is_live(tmp_path, zip_format):
    """Control for the tests below: loading the planted file without weights_only runs the payload
    (done here, on a file this test made, only to show the tests below could fail)."""
    path = plant(tmp_path / "p.pth", tmp_path / "marker", zip_format)
    torch.load(path, weights_only=False)
    assert (tmp_path / "marker").read_text() == "ran"


@pytest.mark.parametrize("zip_format", [True, False])
@pytest.mark.parametrize("option", ["lpips_alexnet", "lpips_linear", "fvd_i3d"])
def test_a_payload_in_a_named_weight_file_does_not_run(option, zip_format, tmp_path, lpips_files):
    marker = tmp_path / "marker"
    bad = plant(tmp_path / "bad.pth", marker, zip_format)
    good = {"lpips_alexnet": put(tmp_path / "a.pth", lpips_files[0]),
            "lpips_linear": put(tmp_path / "l.pth", lpips_files[1])}
    options = {**{k: str(v) for k, v in good.items()}, option: str(bad)}
    build = build_fvd if option == "fvd_i3d" else build_lpips
    with pytest.raises(UserError, match=f"cannot read .* weights from {re.escape(str(bad))}"):
        build(MetricContext(value_range=(0.0, 1.0), options=options))
    assert not marker.exists()


def test_a_payload_planted_in_a_cache_does_not_run_and_leaves_the_metric_n_a(fake_home, tmp_path, lpips_files):
    marker = tmp_path / "marker"
    hub = fake_home / ".cache" / "torch" / "hub"
    plant(hub / "checkpoints" / ALEXNET_FILE, marker)
    put(hub / "pyiqa" / PYIQA_FILE, lpips_files[1])
    plant(fake_home / ".cache" / "videogpt" / "i3d_pretrained_400.pt", marker, zip_format=False)
    for metric in (build_lpips(CONTEXT), build_fvd(CONTEXT)):
        assert isinstance(metric, Unavailable) and "found in the" in metric.reason
        assert isinstance(metric.compute()[metric.name], NotAvailable)
    assert not marker.exists()
    assert lpips.weight_files({})[0]["path"] == str(hub / "checkpoints" / ALEXNET_FILE)  # listed, never loaded
    assert not marker.exists()


def test_a_torchscript_file_named_for_lpips_is_refused_unloaded(tmp_path, monkeypatch, i3d_files, lpips_files):
    script = put(tmp_path / "script.pt", i3d_files[0])
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: pytest.fail("TorchScript loaded"))
    options = {"lpips_alexnet": str(script), "lpips_linear": str(put(tmp_path / "l.pth", lpips_files[1]))}
    with pytest.raises(UserError, match="TorchScript archive .*runs code"):
        build_lpips(MetricContext(value_range=(0.0, 1.0), options=options))
