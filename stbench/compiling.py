"""torch.compile for a run (``--compile``): what to compile, compiling it once up front, the eager fallback."""
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import torch

from .errors import UserError

COMPILE_MODES = ("off", "on")


def check_compile(mode: Optional[str]) -> str:
    """``--compile``: off (default) or on."""
    mode = "off" if mode is None else str(mode).strip().lower()
    if mode not in COMPILE_MODES:
        raise UserError(f"--compile {mode}: choose one of {', '.join(COMPILE_MODES)}")
    return mode


@dataclass
class Compiled:
    """What ``--compile`` did, for the run record's ``compile`` block."""

    requested: str = "off"
    used: bool = False
    targets: List[str] = field(default_factory=list)
    seconds: Dict[str, float] = field(default_factory=dict)  # compile (first-call) time, inference / training
    note: Optional[str] = None  # why the run went on eager

    def record(self) -> Dict[str, Any]:
        found = {"requested": self.requested, "used": self.used, "targets": list(self.targets),
                 "seconds": {k: round(v, 3) for k, v in self.seconds.items()}}
        if self.note:
            found["note"] = self.note
        return found


def targets_of(model) -> List[str]:
    """The submodules ``--compile`` compiles: the model's ``compile_targets`` (a recurrent model names its cell,
    so that the unrolled loop stays Python and only the cell is fused), or the whole model ('')."""
    names = list(model.compile_targets or ())
    modules = dict(model.named_modules())
    missing = [name for name in names if name not in modules]
    if missing:
        raise UserError(f"{type(model).__name__}.compile_targets names no submodule '{missing[0]}'; "
                        f"submodules: {', '.join(n for n in list(modules)[1:12] if n)}")
    return names or [""]


def _set(model, names, compiled: bool) -> None:
    modules = dict(model.named_modules())
    for name in names:
        module = modules[name]
        if compiled:
            module.compile()  # in place: parameter names and checkpoints stay as they are
        else:
            module._compiled_call_impl = None  # back to eager


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__


def compile_model(model, mode: str, sample, train: bool, log=print) -> Compiled:
    """Compile ``model``'s targets in place when ``mode`` is ``on`` and run them once on ``sample`` (x, y, t_out)
    so that compiling happens here, timed apart from training and inference: an inference pass, and with
    ``train`` a loss and its backward (the model's parameters, buffers, gradients and torch's random state are
    restored afterwards, so the run goes on as if nothing had run). A failure puts every target back to eager
    and says why in one line; the run goes on eager."""
    result = Compiled(requested=mode)
    if mode != "on":
        return result
    result.targets = targets_of(model)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    was_training = model.training
    x, y, t_out = sample
    # each compiled module shares its class's code with its siblings (a stack of cells of one class), and each
    # (module, training or eval, shape) is one cached graph: room for all of them, so none falls back to eager
    limit = torch._dynamo.config.recompile_limit
    torch._dynamo.config.recompile_limit = max(limit, 8 * len(result.targets))
    try:
        _set(model, result.targets, True)
        model.eval()
        start = time.perf_counter()
        with torch.no_grad():
            model(x, t_out)
        result.seconds["inference"] = time.perf_counter() - start
        if train:
            model.train()
            start = time.perf_counter()
            model.loss(x, y, 0).backward()
            result.seconds["training"] = time.perf_counter() - start
        result.used = True
    except Exception as error:  # no C++ compiler, an op inductor cannot lower, ...: eager gives the same numbers
        _set(model, result.targets, False)
        result.note = f"--compile on failed ({_reason(error)}); the run went on eager"
        log(f"stbench: note: {result.note}")
    finally:
        model.load_state_dict(state)
        for parameter in model.parameters():
            parameter.grad = None
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        model.train(was_training)
    return result
