"""Reading PredNet's hickle files (X_*.hkl frames, sources_*.hkl video names) with h5py alone.

Hickle files are HDF5. PredNet's were written by hickle 2 (``/data_0`` datasets);
hickle 4/5 store an array as ``/data`` and a list as a group of items
(``data0``, ``data1``, ... with ``item_index``, strings as byte arrays, repeats
as object references). Both layouts are read here without the hickle package.
"""
import re
from pathlib import Path

import numpy as np

from stbench import UserError


def _datasets(handle):
    found = []
    handle.visititems(lambda name, item: found.append((name, item)) if hasattr(item, "shape") else None)
    return [(name, item) for name, item in found if not name.startswith("hickle_types_table")]


def frames_dataset(handle, path: Path, hint: str):
    """The one 4-D dataset of an X_*.hkl file (frames [N, H, W, C]), read lazily."""
    arrays = [item for _, item in _datasets(handle) if item.shape is not None and len(item.shape) == 4]
    if len(arrays) != 1:
        shapes = ", ".join(str(item.shape) for _, item in _datasets(handle)) or "none"
        raise UserError(f"{path} holds no single frame array [N, H, W, C] (datasets: {shapes}); {hint}")
    return arrays[0]


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "S" and value.size and value.dtype.itemsize == 1:  # hickle 4/5: one char a cell
            return value.tobytes().decode("utf-8", "replace")
        return _text(value.reshape(-1)[0]) if value.size == 1 else ""
    return str(value)


def _item(handle, dataset):
    value = dataset[()]
    if dataset.dtype.kind == "O" and not isinstance(value, (bytes, str)):  # an object reference to a repeat
        return _text(handle[value][()])
    return _text(value)


def _index(name, item):
    if "item_index" in item.attrs:
        return int(item.attrs["item_index"])
    digits = re.findall(r"\d+", name.rsplit("/", 1)[-1])
    return int(digits[-1]) if digits else -1


def source_names(handle, path: Path, hint: str):
    """The per-frame video names of a sources_*.hkl file, as a list of str."""
    items = _datasets(handle)
    for _, item in items:  # hickle 2/3: one 1-D array of strings
        if item.shape is not None and len(item.shape) == 1 and item.dtype.kind in "SOU" and item.shape[0] > 1:
            return [_text(value) for value in item[()]]
    groups = {}
    for name, item in items:  # hickle 4/5: a group of one dataset per item
        groups.setdefault(name.rsplit("/", 1)[0] if "/" in name else "", []).append((name, item))
    for members in groups.values():
        if len(members) > 1:
            return [_item(handle, item) for name, item in sorted(members, key=lambda m: _index(*m))]
    raise UserError(f"{path} holds no list of source names (one per frame); {hint}")
