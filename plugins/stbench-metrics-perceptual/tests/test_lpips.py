"""LPIPS: the module, weight loading in both file layouts, "n/a" without weights, and agreement
with the lpips package where it is installed."""
import sys
import types

import pytest
import torch

from stbench import MetricContext, UserError
from stbench_metrics_perceptual.lpips import LINEAR_FILE, LPIPS, LPIPSNet, build_lpips, to_rgb_unit
from stbench_metrics_perceptual.weights import installed_file

CONTEXT = MetricContext(dataset="mmnist", task="mmnist-10-10", value_range=(0.0, 1.0))


@pytest.fixture(autouse=True)
def no_weights_around(monkeypatch, tmp_path):
    """Tests see only the weights they make (and the installed lpips wheel's linear layers): no env vars,
    empty torch hub and pyiqa caches."""
    for name in ("STBENCH_LPIPS_ALEXNET", "STBENCH_LPIPS_LINEAR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


def random_net(seed=0):
    """Test-only: random trunk, non-negative linear layers (the trained ones are non-negative too)."""
    torch.manual_seed(seed)
    net = LPIPSNet()
    for lin in net.lins:
        lin.weight.abs_()
    return net


def clips(seed=0, shape=(2, 3, 1, 64, 64)):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def score(metric, pred, true):
    metric.reset()
    metric.update(pred, true)
    return metric.compute()["lpips"]


def test_identical_frames_score_zero_and_noise_raises_the_score():
    metric = LPIPS("lpips", CONTEXT, random_net())
    true = clips()
    assert score(metric, true, true) == 0.0
    assert metric.per_frame() == {"lpips": [0.0, 0.0, 0.0]}
    noise = torch.randn(true.shape, generator=torch.Generator().manual_seed(1))
    scores = [score(metric, (true + level * noise).clamp(0, 1), true) for level in (0.02, 0.1, 0.3)]
    assert 0 < scores[0] < scores[1] < scores[2]


def test_grey_frames_are_repeated_and_rgb_kept():
    grey = torch.tensor([0.0, 0.5, 1.0]).view(3, 1, 1, 1).expand(3, 1, 2, 2)
    rgb = to_rgb_unit(grey, (0.0, 1.0))
    assert rgb.shape == (3, 3, 2, 2) and rgb[:, 0, 0, 0].tolist() == [-1.0, 0.0, 1.0]
    assert torch.equal(rgb[:, 0], rgb[:, 2])
    assert to_rgb_unit(torch.full((1, 3, 2, 2), 300.0), (0.0, 255.0)).max() == 1.0  # clipped first


def test_batching_over_frames_does_not_change_values():
    net = random_net()
    pred, true = clips(1, (2, 3, 3, 40, 36)), clips(2, (2, 3, 3, 40, 36))
    together = LPIPS("lpips", CONTEXT, net).frame_values(pred, true)
    one_by_one = torch.cat([net(to_rgb_unit(p[None], (0, 1)), to_rgb_unit(t[None], (0, 1)))
                            for p, t in zip(pred.flatten(0, 1), true.flatten(0, 1))]).view(2, 3)
    assert torch.allclose(together, one_by_one.double(), atol=1e-6)


def save_weights(tmp_path, seed=0):
    """A torchvision-format AlexNet checkpoint (classifier included) and an lpips-format linear file."""
    torch.manual_seed(seed)
    donor = LPIPSNet()
    trunk = {k: v.clone() for k, v in donor.trunk.state_dict().items()}
    trunk.update({"classifier.1.weight": torch.randn(8, 4), "classifier.1.bias": torch.randn(8)})
    linear = {f"lin{k}.model.1.weight": lin.weight.detach().abs().clone() for k, lin in enumerate(donor.lins)}
    torch.save(trunk, tmp_path / "alexnet.pth")
    torch.save(linear, tmp_path / "alex_linear.pth")
    return trunk, linear


def test_weights_load_from_files_named_by_option(tmp_path):
    trunk, linear = save_weights(tmp_path)
    options = {"lpips_alexnet": str(tmp_path / "alexnet.pth"), "lpips_linear": str(tmp_path / "alex_linear.pth")}
    metric = build_lpips(MetricContext(value_range=(0.0, 1.0), options=options))
    assert isinstance(metric, LPIPS) and metric.unavailable_reason is None
    assert torch.equal(metric.net.trunk.features[10].weight, trunk["features.10.weight"])
    assert torch.equal(metric.net.lins[4].weight, linear["lin4.model.1.weight"])
    true = clips()
    assert score(metric, true, true) == 0.0
    assert score(metric, (true + 0.2).clamp(0, 1), true) > 0


def test_weights_load_from_environment_and_torch_hub_cache(tmp_path, monkeypatch):
    save_weights(tmp_path)
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (tmp_path / "alexnet.pth").rename(hub / "alexnet-owt-7be5be79.pth")
    monkeypatch.setenv("STBENCH_LPIPS_LINEAR", str(tmp_path / "alex_linear.pth"))
    assert isinstance(build_lpips(CONTEXT), LPIPS)


def test_without_weights_lpips_is_unavailable_with_the_reason():
    metric = build_lpips(CONTEXT)
    assert "AlexNet" in metric.reason and "lpips_alexnet" in metric.reason
    metric.update(clips(), clips())
    assert "AlexNet" in metric.compute()["lpips"].reason
    assert metric.per_frame() is None


def test_named_file_that_is_missing_or_wrong_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not a file"):
        build_lpips(MetricContext(options={"lpips_alexnet": str(tmp_path / "nope.pth")}))
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    save_weights(tmp_path)
    with pytest.raises(UserError, match="expected layout"):
        build_lpips(MetricContext(options={"lpips_alexnet": str(tmp_path / "bad.pth"),
                                           "lpips_linear": str(tmp_path / "alex_linear.pth")}))


def test_unbounded_data_unsupported_channels_and_tiny_frames_are_unavailable():
    assert "bounded" in build_lpips(MetricContext(value_range=None)).reason
    for shape, words in (((1, 2, 2, 64, 64), "C=2"), ((1, 2, 1, 16, 16), "16x16")):
        metric = LPIPS("lpips", CONTEXT, random_net())
        metric.update(clips(0, shape), clips(1, shape))
        assert words in metric.unavailable_reason and words in metric.compute()["lpips"].reason


def test_linear_weights_are_found_in_an_installed_lpips_without_importing_it(tmp_path):
    info = tmp_path / "lpips-0.1.4.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lpips\nVersion: 0.1.4\n")
    (info / "RECORD").write_text(f"{LINEAR_FILE},,\nlpips-0.1.4.dist-info/METADATA,,\n")
    weights = tmp_path / LINEAR_FILE
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"weights")
    assert installed_file("lpips", LINEAR_FILE, [str(tmp_path)]) == weights
    assert installed_file("lpips", LINEAR_FILE, [str(tmp_path / "elsewhere")]) is None


def test_values_match_the_lpips_package(monkeypatch):
    """The reference implementation, with the same (random) trunk and its shipped linear weights.
    Where torchvision does not import (CPU torch with the registry's CUDA torchvision), a stub
    stands in for ``torchvision.models.alexnet``: lpips only takes ``.features`` from it."""
    linear = installed_file("lpips", LINEAR_FILE)
    if linear is None:
        pytest.skip("the lpips package is not installed (pip install --no-deps lpips==0.1.4)")
    torch.manual_seed(0)
    ours = LPIPSNet()
    ours.load_linear(linear)
    try:
        import torchvision  # noqa: F401
    except Exception:
        stub = types.ModuleType("torchvision")
        stub.models = types.SimpleNamespace(alexnet=lambda pretrained=False, **_: types.SimpleNamespace(
            features=LPIPSNet().trunk.features))
        monkeypatch.setitem(sys.modules, "torchvision", stub)
    for name in [m for m in sys.modules if m == "lpips" or m.startswith("lpips.")]:
        monkeypatch.delitem(sys.modules, name)
    try:
        import lpips
        reference = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)
    except Exception as error:  # pragma: no cover - depends on the environment
        pytest.skip(f"the lpips package does not import here: {type(error).__name__}: {error}")
    finally:  # the copy imported against the stub must not outlive this test
        for name in [m for m in sys.modules if m == "lpips" or m.startswith("lpips.")]:
            sys.modules.pop(name)
    features = [layer for s in range(1, 6) for layer in getattr(reference.net, f"slice{s}")]
    ours.trunk.features[: len(features)].load_state_dict(torch.nn.Sequential(*features).state_dict())
    x0, x1 = clips(3, (5, 3, 64, 64)) * 2 - 1, clips(4, (5, 3, 64, 64)) * 2 - 1
    with torch.no_grad():
        expected = reference(x0, x1).view(-1)
        assert torch.allclose(ours(x0, x1), expected, rtol=1e-5, atol=1e-6)
