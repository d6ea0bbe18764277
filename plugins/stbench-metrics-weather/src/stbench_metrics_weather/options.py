"""Reading metric options (arrays given inline, as comma-separated text or as .npy files) and the
stand-in metric that reports "n/a"."""
from pathlib import Path

import numpy as np
import torch

from stbench import Unavailable, UserError  # noqa: F401 - Unavailable is used by the metric modules


def array_option(options, key):
    """``options[key]`` as a float64 tensor, or None when unset. Accepts a sequence, an array, a
    comma-separated string or the path of a ``.npy`` file."""
    value = options.get(key)
    if value is None:
        return None
    if isinstance(value, (str, Path)) and str(value).endswith(".npy"):
        from stbench import checked_npy

        path = Path(value).expanduser()
        value = checked_npy(path, mmap_mode=None, where=f"metric option '{key}': {path}")  # header vs file size
    elif isinstance(value, str):
        try:
            value = [float(item) for item in value.split(",") if item.strip()]
        except ValueError:
            raise UserError(f"metric option '{key}' must be numbers separated by commas or a .npy file, "
                            f"got '{value[:60]}'") from None
    return torch.as_tensor(np.asarray(value, dtype=np.float64))


def latitudes(options, rows: int) -> torch.Tensor:
    """Latitude of each grid row in degrees: ``options['latitudes']``, else an equiangular global grid
    of ``rows`` rows centred in their cells (5.625 deg: 32 rows, -87.1875 ... 87.1875)."""
    given = array_option(options, "latitudes")
    if given is None:
        return -90.0 + (torch.arange(rows, dtype=torch.float64) + 0.5) * (180.0 / rows)
    if given.numel() != rows:
        raise UserError(f"metric option 'latitudes' has {given.numel()} values but the frames have {rows} rows")
    return given.flatten()


def name_option(options, key):
    """``options[key]`` as a list of names, or None when unset: a sequence of strings or a comma-separated
    string (as ``--metric-option key=a,b`` gives it)."""
    value = options.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    try:
        return [str(item) for item in value]
    except TypeError:
        raise UserError(f"metric option '{key}' must be names separated by commas, got {value!r}") from None
