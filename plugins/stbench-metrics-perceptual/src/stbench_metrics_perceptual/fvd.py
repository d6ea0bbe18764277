"""Frechet Video Distance over the whole test set, from streaming I3D feature statistics."""
import hashlib
from typing import Dict, List, Mapping, Optional

import torch
import torch.nn.functional as F

from stbench import Metric, MetricContext, NotAvailable, Unavailable, UserError

from .i3d import TorchScriptI3D, load_i3d
from .weights import (Found, Place, WeightSearch, dnnlib_downloads_dir, file_sha256, glob_paths, home_cache,
                      in_folder, is_torchscript, provenance_of, torch_hub_dir, weight_entry)

TORCHSCRIPT_FILE = "i3d_torchscript.pt"  # StyleGAN-V's detector (TorchScript: loading it runs code)
STATE_DICT_FILE = "i3d_pretrained_400.pt"  # VideoGPT's port of pytorch-i3d (a plain state dict)
STYLEGAN_V_URL = "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1"
# dnnlib caches a download as <md5 of its URL>_<file name>; StyleGAN-V's URL goes first among several
STYLEGAN_V_MD5 = hashlib.md5(STYLEGAN_V_URL.encode()).hexdigest()
VIDEOGPT_DRIVE_ID = "1mQK8KD8G6UWRa5t87SRMm5PVXtlpneJT"
I3D_SIZE = 224
MIN_FRAMES = 10  # shorter clips are padded by repeating their last frame (I3D's pooling needs ~10)
CLIPS_PER_PASS = 8  # bounds the memory of one I3D pass; the result does not depend on it


class GaussianStats:
    """Running mean and scatter matrix of feature rows, merged batch by batch (Chan et al.), in float64;
    the features themselves are never kept."""

    def __init__(self):
        self.count, self.mean, self.scatter = 0, None, None

    def add(self, rows: torch.Tensor):
        rows = rows.detach().to("cpu", torch.float64)
        n = rows.shape[0]
        if n == 0:
            return
        mean = rows.mean(dim=0)
        centred = rows - mean
        scatter = centred.T @ centred
        if self.count == 0:
            self.count, self.mean, self.scatter = n, mean, scatter
            return
        total = self.count + n
        delta = mean - self.mean
        self.scatter = self.scatter + scatter + torch.outer(delta, delta) * (self.count * n / total)
        self.mean = self.mean + delta * (n / total)
        self.count = total

    def covariance(self) -> torch.Tensor:
        return self.scatter / (self.count - 1)


def _psd_eigenvalues(matrix):
    """Eigen-decomposition of a symmetric PSD matrix with rounding noise (eigenvalues below the
    usual rank tolerance, negative ones included) set to 0: square roots would amplify it."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    tolerance = values.abs().max() * matrix.shape[0] * torch.finfo(values.dtype).eps
    return torch.where(values > tolerance, values, 0.0), vectors


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))`` for two Gaussians.

    ``Tr((S1 S2)^(1/2))`` is the sum of square roots of the eigenvalues of the symmetric
    ``S1^(1/2) S2 S1^(1/2)``, which has the same spectrum as ``S1 S2``: no complex sqrtm needed.
    Feature covariances of fewer clips than dimensions are singular; that is fine here.
    """
    mu1, mu2, cov1, cov2 = (torch.as_tensor(a, dtype=torch.float64) for a in (mu1, mu2, cov1, cov2))
    values, vectors = _psd_eigenvalues(cov1)
    root = (vectors * values.sqrt()) @ vectors.T
    trace_sqrt = _psd_eigenvalues(root @ cov2 @ root)[0].sqrt().sum()
    diff = mu1 - mu2
    distance = diff @ diff + torch.trace(cov1) + torch.trace(cov2) - 2 * trace_sqrt
    return max(float(distance), 0.0)  # >= 0 exactly; rounding can leave -1e-12


def to_i3d_clips(video: torch.Tensor, value_range) -> torch.Tensor:
    """``[B, T, C, H, W]`` native values -> ``[B, 3, max(T, 10), 224, 224]`` RGB in [-1, 1]:
    clipped to the value range, bilinear resize, last frame repeated up to 10 frames, grey repeated."""
    b, t, c, h, w = video.shape
    low, high = value_range
    x = (video.float().clamp(low, high) - low) * (2.0 / (high - low)) - 1.0
    if t < MIN_FRAMES:
        x = torch.cat([x, x[:, -1:].expand(-1, MIN_FRAMES - t, -1, -1, -1)], dim=1)
    frames = F.interpolate(x.flatten(0, 1), size=(I3D_SIZE, I3D_SIZE), mode="bilinear", align_corners=False)
    clips = frames.view(b, -1, c, I3D_SIZE, I3D_SIZE).transpose(1, 2)
    return clips.expand(-1, 3, -1, -1, -1) if c == 1 else clips


class FVD(Metric):
    """FVD between the predicted and the true clips of the whole test set (lower is better).

    Scores the ``T_out`` predicted frames (the observed ones are the same in both sets). A set-level
    metric: no per-frame values.
    """

    unavailable_reason: Optional[str] = None

    def __init__(self, name: str, context: MetricContext, extractor: torch.nn.Module, file: Optional[Found] = None):
        self.name, self.context, self.extractor, self.file = name, context, extractor, file
        self.reset()

    def reset(self):
        self.real, self.fake = GaussianStats(), GaussianStats()

    @torch.no_grad()
    def _features(self, video):
        net = self.extractor.to(video.device)
        return torch.cat([net(to_i3d_clips(video[i:i + CLIPS_PER_PASS], self.context.value_range))
                          for i in range(0, video.shape[0], CLIPS_PER_PASS)])

    def update(self, pred, true):
        if pred.shape != true.shape or pred.ndim != 5:
            raise ValueError(f"{self.name}: pred {tuple(pred.shape)} and true {tuple(true.shape)} "
                             "must both be [B, T, C, H, W]")
        if self.unavailable_reason is None and pred.shape[2] not in (1, 3):
            self.unavailable_reason = f"fvd compares grey (C=1) or RGB (C=3) clips; these have C={pred.shape[2]}"
        if self.unavailable_reason is None:
            self.fake.add(self._features(pred))
            self.real.add(self._features(true))

    def compute(self):
        if self.unavailable_reason is None and self.real.count < 2:
            self.unavailable_reason = f"fvd needs at least 2 clips to estimate a covariance; got {self.real.count}"
        if self.unavailable_reason:
            return {self.name: NotAvailable(self.unavailable_reason)}
        return {self.name: frechet_distance(self.real.mean, self.real.covariance(),
                                            self.fake.mean, self.fake.covariance())}

    def provenance(self) -> Dict[str, str]:
        """``file``, ``sha256``, ``found_in`` (named by the user, or which cache) and ``format`` of the
        I3D file: FVDs from different I3D files are not comparable."""
        if self.file is None:
            return {}
        kind = "torchscript (stylegan-v)" if isinstance(self.extractor, TorchScriptI3D) else "state dict (pytorch-i3d)"
        return {**provenance_of("", self.file), "format": kind}


def _dnnlib_cached():
    # named from the server's file name, or from the whole URL (..._i3d_torchscript.pt_dl_1) without one;
    # dnnlib's half-written downloads start with tmp_ and never match
    files = glob_paths(dnnlib_downloads_dir, f"{'[0-9a-f]' * 32}_*i3d_torchscript.pt*")()
    return sorted(files, key=lambda path: not path.name.startswith(STYLEGAN_V_MD5))


I3D = WeightSearch(
    name=f"fvd I3D (Kinetics-400): StyleGAN-V's {TORCHSCRIPT_FILE} or VideoGPT's {STATE_DICT_FILE}",
    option="fvd_i3d", env="STBENCH_FVD_I3D",
    places=(
        Place("dnnlib cache (StyleGAN-V's download)", _dnnlib_cached, may_run_code=True,
              when_absent=lambda: str(dnnlib_downloads_dir() / f"<md5 of the URL>_{TORCHSCRIPT_FILE}")),
        Place("VideoGPT cache", in_folder(lambda: home_cache("videogpt"), STATE_DICT_FILE)),
        Place("torch hub cache", in_folder(lambda: torch_hub_dir() / "checkpoints", STATE_DICT_FILE, TORCHSCRIPT_FILE)),
    ),
    how_to_get=(f"VideoGPT's state dict (never runs code): gdown {VIDEOGPT_DRIVE_ID} -O "
                f"~/.cache/videogpt/{STATE_DICT_FILE}; or StyleGAN-V's detector, which most published FVDs use "
                f"({STYLEGAN_V_URL.split('?')[0]}; TorchScript, so loading it RUNS CODE it holds: stbench loads it "
                "only when you name it or StyleGAN-V's dnnlib left it in its cache); name either with "
                "--metric-option fvd_i3d=PATH or STBENCH_FVD_I3D"),
)


def runs_code_note(found: Found) -> str:
    return (f"{found.path} (in the {found.found_in}) is TorchScript, which runs code it holds when loaded: "
            "skipped; name it with fvd_i3d=PATH or STBENCH_FVD_I3D if you trust it")


def choose_i3d(options: Mapping):
    """(the I3D file to load or None, notes on files skipped): the first file found, except TorchScript
    files found where no tool of the user's put them to be loaded."""
    skipped = []
    for found in I3D.candidates(options):
        if found.may_run_code or not is_torchscript(found.path):
            return found, skipped
        skipped.append(runs_code_note(found))
    return None, skipped


def find_i3d(options: Mapping) -> Optional[Found]:
    return choose_i3d(options)[0]


def weight_files(options: Mapping) -> List[Dict]:
    """The I3D file FVD would use now, or what is missing (never raises)."""
    try:
        chosen, notes = choose_i3d(options)
    except UserError as error:  # a named file that is not there: report it, as build would
        chosen, notes = None, [str(error)]
    if chosen is not None and is_torchscript(chosen.path):
        notes.append("TorchScript: loading it runs code it holds (loaded because it was "
                     + ("named" if chosen.named else "left by StyleGAN-V's download in dnnlib's cache") + ")")
    return [weight_entry(I3D, options, chosen, notes)]


def build_fvd(context: MetricContext, name: str = "fvd"):
    if context.value_range is None:
        return Unavailable(name, f"fvd needs a bounded value range; {context.dataset or 'this dataset'} is unbounded")
    found, skipped = choose_i3d(context.options)
    if found is None:
        return Unavailable(name, "; ".join([
            f"no I3D weights: put VideoGPT's {STATE_DICT_FILE} (gdown {VIDEOGPT_DRIVE_ID}) into "
            f"{home_cache('videogpt')}, or name it or StyleGAN-V's {TORCHSCRIPT_FILE} (TorchScript: runs code "
            "when loaded) with fvd_i3d=PATH / STBENCH_FVD_I3D"] + skipped))
    file_sha256(found.path)  # hashed as loaded, once per file and process
    try:
        extractor = load_i3d(found.path, may_run_code=found.may_run_code)
    except UserError as error:
        if found.named:  # the user's own choice of file: their mistake to fix
            raise
        return Unavailable(name, f"{error} (found in the {found.found_in}; replace or delete it, or name another "
                                 "file with fvd_i3d=PATH / STBENCH_FVD_I3D)")
    return FVD(name, context, extractor, found)
