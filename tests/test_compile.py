"""--compile: the same outputs as eager within float tolerance, recorded, and a clean eager fallback."""
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from stbench import STModel
from stbench.cli import main
from stbench.compiling import check_compile, compile_model, targets_of
from stbench.errors import UserError


class TinyCell(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.conv = nn.Conv2d(2 * width, width, 3, padding=1)

    def forward(self, x, h):
        return torch.tanh(self.conv(torch.cat([x, h], dim=1)))


class TinyRecurrent(STModel):
    """A one-cell recurrent model: the loop over frames stays eager, the cell is what --compile compiles."""

    compile_targets = ("cell",)

    def __init__(self, width=4):
        super().__init__()
        self.lift = nn.Conv2d(1, width, 1)
        self.cell = TinyCell(width)
        self.out = nn.Conv2d(width, 1, 1)

    def forward(self, x, t_out):
        h = torch.zeros_like(self.lift(x[:, 0]))
        frames = []
        for t in range(x.shape[1] + t_out - 1):
            inp = x[:, t] if t < x.shape[1] else frames[-1]
            h = self.cell(self.lift(inp), h)
            if t >= x.shape[1] - 1:
                frames.append(self.out(h))
        return torch.stack(frames, dim=1)


def test_compiled_cell_gives_eager_outputs_and_gradients_and_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    model = TinyRecurrent()
    x, y = torch.rand(2, 3, 1, 8, 8), torch.rand(2, 2, 1, 8, 8)
    model.eval()
    with torch.no_grad():
        eager = model(x, 2)
    model.train()
    model.loss(x, y, 0).backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()

    done = compile_model(model, "on", (x, y, 2), train=True, log=lambda line: None)

    assert done.used and done.note is None and done.targets == ["cell"]
    assert set(done.seconds) == {"inference", "training"} and min(done.seconds.values()) > 0
    assert all(p.grad is None for p in model.parameters()) and torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())  # names unchanged too
    assert model.cell._compiled_call_impl is not None and model.lift._compiled_call_impl is None
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x, 2), eager, atol=1e-5, rtol=1e-5)
    model.train()
    model.loss(x, y, 0).backward()
    for compiled_grad, eager_grad in zip((p.grad for p in model.parameters()), eager_grads):
        assert torch.allclose(compiled_grad, eager_grad, atol=1e-5, rtol=1e-4)
    assert done.record() == {"requested": "on", "used": True, "targets": ["cell"],
                             "seconds": {k: round(v, 3) for k, v in done.seconds.items()}}


def test_compile_setting_and_targets_are_checked():
    assert check_compile(None) == "off" and check_compile("ON") == "on"
    with pytest.raises(UserError, match="--compile fast: choose one of off, on"):
        check_compile("fast")
    model = TinyRecurrent()
    model.compile_targets = ("cel",)
    with pytest.raises(UserError, match="compile_targets names no submodule 'cel'"):
        targets_of(model)
    model.compile_targets = ()
    assert targets_of(model) == [""]  # the whole model by default


def _records(out):
    return [json.loads(p.read_text()) for p in sorted(Path(out, "runs").glob("*/*/record.json"))]


def test_failed_compile_falls_back_to_eager_with_one_note_in_the_record(use_plugins, toy_root, tmp_path, capsys,
                                                                       monkeypatch):
    use_plugins("plugin_fixture", only="testplug")

    def no_compiler(self, *args, **kwargs):  # as inductor fails where no C++ compiler is found
        raise RuntimeError("InductorError: CppCompileError: C++ compile error\ncc: not found")

    args = ["run", "--models", "tiny", "--tasks", "toy-6-6", "--profile", "smoke", "--data-root", str(toy_root)]
    assert main([*args, "--out", str(tmp_path / "eager")]) == 0
    monkeypatch.setattr(nn.Module, "compile", no_compiler)
    assert main([*args, "--out", str(tmp_path / "compiled"), "--compile", "on"]) == 0
    err = capsys.readouterr().err
    assert "note: --compile on failed (RuntimeError: InductorError: CppCompileError: C++ compile error); the run " \
           "went on eager" in err and "Traceback" not in err and "cc: not found" not in err
    [eager], [fallback] = _records(tmp_path / "eager"), _records(tmp_path / "compiled")
    assert eager["compile"] == {"requested": "off", "used": False, "targets": [], "seconds": {}}
    assert fallback["compile"]["requested"] == "on" and fallback["compile"]["used"] is False
    assert fallback["compile"]["note"].startswith("--compile on failed (RuntimeError")
    assert fallback["run"] == eager["run"]  # --compile is not part of the run's identity
    assert fallback["metrics"] == eager["metrics"]  # the restored state and random stream: the same run
    assert main([*args, "--out", str(tmp_path / "x"), "--compile", "maybe"]) == 2
    assert "--compile maybe: choose one of off, on" in capsys.readouterr().err
