"""Checkpoint files in: stbench's own per-epoch checkpoints and OpenSTL's released weights, loaded into a model.

This is the one place that reads checkpoint files. Three formats are recognised:

- ``stbench``: the per-epoch checkpoint a run writes (a dict with ``model``, ``config_hash``,
  ``epoch``, ``step``, ``optimizers``, ...); its ``model`` state dict is loaded as it is.
- ``openstl-pth``: pre-Lightning OpenSTL, a bare state dict (its best model) or a dict holding
  ``state_dict`` (its latest checkpoint, beside ``epoch``, ``optimizer``, ``scheduler``).
- ``openstl-lightning``: OpenSTL's Lightning ``.ckpt``, whose ``state_dict`` keys start with ``model.``.
- ``ncsnv2-list``: the list ``[model state_dict, optimizer state_dict, epoch, step(, EMA shadow)]`` that
  NCSNv2-derived runners save (MCVD); the EMA shadow, when present, replaces the parameters it names,
  as those runners' loaders do before sampling.

DistributedDataParallel's ``module.`` prefix is stripped from any of them. Files are read with
``torch.load(weights_only=True)``: a checkpoint can hold tensors and plain values, never code.
OpenSTL's key names reach the model through its spec's ``checkpoint_ignore`` (parameters
OpenSTL creates but never uses, dropped and named) and ``checkpoint_rename`` (its names for
the same parameters).
"""
import fnmatch
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from .errors import UserError

FORMATS = ("stbench", "openstl-pth", "openstl-lightning", "ncsnv2-list")
STBENCH_KEYS = frozenset({"model", "config_hash", "epoch"})
LIGHTNING_MARKERS = frozenset({"pytorch-lightning_version", "global_step", "optimizer_states", "loops"})
SHOWN = 3  # differing keys named in an error line


@dataclass
class Checkpoint:
    """The weights of one checkpoint file and where they came from."""

    state: Dict[str, torch.Tensor]
    format: str
    path: str
    sha256: str
    prefixes_stripped: List[str] = field(default_factory=list)
    epoch: Optional[int] = None

    @property
    def foreign(self) -> bool:
        """True for another implementation's weights (key names may differ from stbench's)."""
        return self.format != "stbench"


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a damaged or foreign file
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        if "Unsupported global" in str(error):  # a pickled class or function: never run
            raise UserError(f"checkpoint {path} holds Python objects besides tensors, and stbench reads only "
                            f"weights (torch.load weights_only=True); re-save it as "
                            f"torch.save(model.state_dict(), FILE) and pass that file") from None
        raise UserError(f"{path} is not a readable PyTorch checkpoint ({text[:120]}); it may be truncated "
                        f"or another kind of file: download it again or pass a .pth/.ckpt file") from None


def _is_state_dict(obj: Any) -> bool:
    return (isinstance(obj, Mapping) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()))


def _strip(state: Dict[str, torch.Tensor], prefix: str) -> Optional[Dict[str, torch.Tensor]]:
    if state and all(key.startswith(prefix) for key in state):
        return {key[len(prefix):]: value for key, value in state.items()}
    return None


def read_checkpoint(path) -> Checkpoint:
    """Read a checkpoint file (see the module docstring for the formats); one-line error otherwise."""
    path = Path(path).expanduser().absolute()
    if not path.exists():
        raise UserError(f"checkpoint {path} does not exist; pass the path of a .pth or .ckpt file "
                        f"(an stbench run folder holds one as checkpoint.pt)")
    if path.is_dir():
        raise UserError(f"checkpoint {path} is a folder; pass the checkpoint file inside it")
    obj = _load(path)
    epoch, ema = None, None
    if isinstance(obj, Mapping) and STBENCH_KEYS <= set(obj) and _is_state_dict(obj["model"]):
        fmt, state, epoch = "stbench", dict(obj["model"]), obj.get("epoch")
        if isinstance(obj.get("ema"), Mapping) and _is_state_dict(obj["ema"]):  # the weights the run evaluated
            fmt, state = "stbench-ema", {k: v.to(state[k].dtype) if k in state else v for k, v in obj["ema"].items()}
    elif isinstance(obj, Mapping) and "state_dict" in obj and _is_state_dict(obj["state_dict"]):
        state, epoch = dict(obj["state_dict"]), obj.get("epoch")
        fmt = "openstl-lightning" if LIGHTNING_MARKERS & set(obj) else "openstl-pth"
    elif _is_state_dict(obj):
        fmt, state = "openstl-pth", dict(obj)
    elif isinstance(obj, (list, tuple)) and len(obj) >= 4 and _is_state_dict(obj[0]):
        fmt, state, epoch = "ncsnv2-list", dict(obj[0]), obj[2]
        ema = dict(obj[4]) if len(obj) > 4 and _is_state_dict(obj[4]) else None
    else:
        shown = ", ".join(sorted(map(str, obj))[:6]) if isinstance(obj, Mapping) else type(obj).__name__
        raise UserError(f"{path} holds no model weights (found {shown or 'an empty dict'}); pass a state dict, "
                        f"an OpenSTL .pth/.ckpt file or an stbench checkpoint.pt")
    stripped = []
    while True:  # Lightning wraps the model as `model.`; DDP adds `module.` (either order)
        for prefix in ("module.", "model."):
            if prefix == "model." and fmt == "stbench":
                continue
            inner = _strip(state, prefix)
            if inner is not None:
                state = inner
                stripped.append(prefix)
                if prefix == "model.":
                    fmt = "openstl-lightning"
                break
        else:
            break
    if ema is not None:  # the shadow is keyed like the unwrapped model
        state.update({key[len("module."):] if key.startswith("module.") else key: value
                      for key, value in ema.items()})
    return Checkpoint(state=state, format=fmt, path=str(path), sha256=file_sha256(path),
                      prefixes_stripped=stripped, epoch=int(epoch) if isinstance(epoch, int) else None)


def rename_key(key: str, rules: Sequence[Tuple[str, str]], own: Mapping[str, Any]) -> str:
    """``key`` under the first rule that matches its start and yields one of ``own``'s keys.

    When rules match but none yields a key of ``own``, the first match's result is returned
    (so an error names what the model lacks); a key no rule matches is kept.
    """
    first = None
    for pattern, replacement in rules:
        match = re.match(pattern, key)
        if match is None:
            continue
        renamed = match.expand(replacement) + key[match.end():]
        if renamed in own:
            return renamed
        if first is None:
            first = renamed
    return key if first is None or key in own else first


def _squeezed(shape) -> Tuple[int, ...]:
    return tuple(size for size in shape if size != 1)


def _first(keys, n=SHOWN) -> str:
    keys = list(keys)
    more = f" and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_weights(model: nn.Module, checkpoint: Checkpoint, model_spec) -> Dict[str, Any]:
    """Load ``checkpoint`` into ``model`` exactly; the notes for the run record.

    For another implementation's weights, keys matching ``model_spec.checkpoint_ignore`` are
    dropped (and named in the notes with their parameter counts) and the rest renamed by
    ``model_spec.checkpoint_rename``; a tensor whose shape differs from the model's only by
    axes of size 1 (a linear layer stored as a 1x1 convolution, a per-channel scale stored as
    ``[C]`` or ``[1, C, 1, 1]``) is viewed in the model's shape. Any other difference (a key
    missing or left over, a shape that differs) is one UserError line naming the first ones.
    """
    own = model.state_dict()
    dropped: List[Dict[str, Any]] = []
    renamed: Dict[str, torch.Tensor] = {}
    origin: Dict[str, str] = {}
    ignore = tuple(model_spec.checkpoint_ignore) if checkpoint.foreign else ()
    rules = tuple(model_spec.checkpoint_rename) if checkpoint.foreign else ()
    for key, value in checkpoint.state.items():
        if any(fnmatch.fnmatchcase(key, pattern) for pattern in ignore):
            dropped.append({"key": key, "parameters": int(value.numel())})
            continue
        target = rename_key(key, rules, own)
        if target in renamed:
            raise UserError(f"checkpoint {checkpoint.path}: keys {origin[target]} and {key} both map to "
                            f"{model_spec.name}'s {target}; it is not a {model_spec.name} checkpoint")
        renamed[target], origin[target] = value, key
    missing = [key for key in own if key not in renamed]
    unexpected = [origin[key] for key in renamed if key not in own]
    mismatched, reshaped = [], 0
    for key, value in renamed.items():
        if key not in own or tuple(value.shape) == tuple(own[key].shape):
            continue
        if _squeezed(value.shape) == _squeezed(own[key].shape):
            renamed[key] = value.reshape(own[key].shape)
            reshaped += 1
        else:
            mismatched.append(f"{origin[key]} {list(value.shape)} vs {list(own[key].shape)}")
    if missing or unexpected or mismatched:
        problems = []
        if missing and not set(renamed) & set(own):
            raise UserError(f"checkpoint {checkpoint.path} shares no key with {model_spec.name} (it holds "
                            f"{_first(checkpoint.state)}); is it a checkpoint of another model? pass --models "
                            f"with the model it was trained as")
        if missing:
            problems.append(f"{len(missing)} of the model's keys missing ({_first(missing)})")
        if unexpected:
            problems.append(f"{len(unexpected)} unknown keys ({_first(unexpected)})")
        if mismatched:
            problems.append(f"{len(mismatched)} shapes differ, checkpoint vs model ({_first(mismatched)})")
        raise UserError(f"checkpoint {checkpoint.path} does not fit {model_spec.name} as built: "
                        f"{'; '.join(problems)}; check that it is a {model_spec.name} checkpoint and that "
                        f"--profile/--set give the sizes it was trained with")
    model.load_state_dict(renamed, strict=True)
    return {
        "path": checkpoint.path, "format": checkpoint.format, "sha256": checkpoint.sha256,
        "epoch": checkpoint.epoch, "prefixes_stripped": list(checkpoint.prefixes_stripped),
        "keys_loaded": len(renamed), "keys_renamed": sum(1 for k, o in origin.items() if k != o),
        "tensors_reshaped": reshaped, "dropped": dropped,
        "dropped_parameters": sum(item["parameters"] for item in dropped),
    }
