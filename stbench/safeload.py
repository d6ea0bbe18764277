"""Reading files a user (or a careless collaborator) hands stbench, at a cost bounded by the file: YAML whose
anchors and aliases may expand without limit ("billion laughs"), and arrays whose header may declare far more
than the file holds. Each problem is one line that quotes at most one line of the file, never its expansion."""
import math
import os
import zipfile
from pathlib import Path
from typing import Any, Optional, Tuple

from .errors import UserError

MAX_YAML_BYTES = 4 * 1024 * 1024
# values (scalars, lists, mappings) a YAML document may expand to, aliases counted as often as they are used;
# the largest file stbench ships (a plugin's configs.yaml) has a few thousand
MAX_YAML_VALUES = 200_000
# deflate expands by at most about 1032:1; a member that claims more is lying
MAX_DEFLATE_RATIO = 1100


def _expanded(node, budget: int, where: str) -> int:
    """How many values ``node`` stands for once every alias is expanded; stops at ``budget``."""
    import yaml

    sizes, active = {}, set()

    def size(current) -> int:
        key = id(current)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise UserError(f"{where}: an alias refers to its own anchor (line {current.start_mark.line + 1}); "
                            "write the values out")
        active.add(key)
        total = 1
        if isinstance(current, yaml.SequenceNode):
            children = current.value
        elif isinstance(current, yaml.MappingNode):
            children = [part for pair in current.value for part in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > budget:
                raise UserError(f"{where}: its anchors and aliases expand to more than {budget:,} values "
                                f"(line {current.start_mark.line + 1}); write the values out instead")
        active.discard(key)
        sizes[key] = total
        return total

    try:
        return size(node)
    except RecursionError:
        raise UserError(f"{where}: nested too deeply to read") from None


def yaml_text(text: str, where: str, budget: int = MAX_YAML_VALUES) -> Any:
    """The YAML document in ``text`` (plain data: YAML's safe types), read only if it stays within ``budget``
    values once expanded and within MAX_YAML_BYTES; ``where`` names the file in the one-line error."""
    import yaml

    if len(text) > MAX_YAML_BYTES:
        raise UserError(f"{where}: {len(text):,} characters; a YAML file stbench reads holds at most "
                        f"{MAX_YAML_BYTES:,}")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded(node, budget, where)
        return loader.construct_document(node)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{where}: not valid YAML{line} ({str(problem)[:120]})") from None
    finally:
        loader.dispose()


def yaml_file(path, where: Optional[str] = None, budget: int = MAX_YAML_VALUES) -> Any:
    """:func:`yaml_text` of a file (read at most MAX_YAML_BYTES + 1 bytes)."""
    path = Path(path)
    with open(path, encoding="utf-8") as handle:
        text = handle.read(MAX_YAML_BYTES + 1)
    return yaml_text(text, where or str(path), budget)


def _size(count: int) -> str:
    for unit, scale in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def npy_header(handle) -> Tuple[tuple, bool, Any, int]:
    """(shape, Fortran order, dtype, bytes the data takes) from an open ``.npy`` stream at its start."""
    import numpy as np

    version = np.lib.format.read_magic(handle)
    reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if reader is None:
        raise ValueError(f"unsupported .npy format version {version}")
    shape, fortran, dtype = reader(handle, max_header_size=10000)
    if dtype.hasobject:
        raise ValueError("it holds Python objects; stbench reads numeric arrays only")
    return shape, fortran, dtype, int(math.prod(shape)) * dtype.itemsize


def checked_npy(path, mmap_mode: Optional[str] = "r", where: Optional[str] = None):
    """A ``.npy`` array whose header was checked against the file's size before anything is allocated,
    memory-mapped by default. A header that declares more than the file holds is one line."""
    import numpy as np

    path = Path(path)
    where = where or str(path)
    try:
        with open(path, "rb") as handle:
            shape, _, dtype, needed = npy_header(handle)
            offset = handle.tell()
        held = os.path.getsize(path) - offset
    except FileNotFoundError:
        raise UserError(f"{where}: no such file") from None
    except (OSError, ValueError, EOFError, SyntaxError) as error:
        raise UserError(f"{where}: not a readable .npy array ({str(error).splitlines()[0][:160]})") from None
    if held < needed:
        raise UserError(f"{where}: its header declares an array of shape {tuple(shape)} {dtype} ({_size(needed)}) "
                        f"but the file holds {_size(max(held, 0))} of data; it is truncated or its header is wrong")
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise UserError(f"{where}: not a readable .npy array ({str(error).splitlines()[0][:160]})") from None


def checked_npz_member(path, key: str, where: Optional[str] = None):
    """One array of an ``.npz``, its header checked against the member's stored size (and the member's size
    against what deflate can expand to) before it is read."""
    import numpy as np

    path = Path(path)
    where = where or f"{path}:{key}"
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(key + ".npy")
            if info.compress_type != zipfile.ZIP_STORED and info.file_size > MAX_DEFLATE_RATIO * max(info.compress_size, 1):
                raise UserError(f"{where}: the archive claims {_size(info.file_size)} from {_size(info.compress_size)} "
                                "compressed, more than deflate can hold; the file is damaged or forged")
            with archive.open(info) as handle:
                shape, fortran, dtype, needed = npy_header(handle)
                offset = handle.tell()
                if info.file_size - offset != needed:
                    raise UserError(f"{where}: its header declares an array of shape {tuple(shape)} {dtype} "
                                    f"({_size(needed)}) but the archive stores {_size(max(info.file_size - offset, 0))}"
                                    "; it is truncated or its header is wrong")
                array = np.frombuffer(handle.read(needed), dtype=dtype)
                if array.size != math.prod(shape):
                    raise UserError(f"{where}: the member ends early; the file is truncated")
                return array.reshape(shape, order="F" if fortran else "C").copy()
    except KeyError:
        raise
    except (OSError, ValueError, EOFError, SyntaxError, zipfile.BadZipFile) as error:
        raise UserError(f"{where}: not a readable .npz array ({str(error).splitlines()[0][:160]})") from None


def npz_keys(path, where: Optional[str] = None):
    """The array names an ``.npz`` holds."""
    try:
        with zipfile.ZipFile(path) as archive:
            return [name[:-4] for name in archive.namelist() if name.endswith(".npy")]
    except FileNotFoundError:
        raise UserError(f"{where or path}: no such file") from None
    except (OSError, zipfile.BadZipFile) as error:
        raise UserError(f"{where or path}: not a readable .npz archive ({error})") from None
