"""Reading a ViT checkpoint (timm or open_clip key names) into the backbone's names."""
import re
from pathlib import Path

import torch

from stbench import UserError

from .backbone import frozen_names

# open_clip part name -> timm part name inside one residual block
_OPEN_CLIP_BLOCK = {
    "ln_1": "norm1", "attn.in_proj_weight": "attn.qkv.weight", "attn.in_proj_bias": "attn.qkv.bias",
    "attn.out_proj": "attn.proj", "ln_2": "norm2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
}
_TIMM_BLOCK = re.compile(r"^blocks\.(\d+)\.(norm1|attn\.qkv|attn\.proj|norm2|mlp\.fc1|mlp\.fc2)\.(weight|bias)$")


def _read(path: Path):
    if not path.is_file():
        raise UserError(f"pretrained checkpoint {path} does not exist; give a ViT-B/16 state dict "
                        "(timm or open_clip key names) with --set pretrained=PATH, or leave it unset for random init")
    try:
        if path.suffix == ".safetensors":
            try:
                from safetensors.torch import load_file
            except ImportError:
                raise UserError(f"{path} is a .safetensors file but the 'safetensors' package is not installed; "
                                "pip install safetensors, or convert it with torch.save") from None
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except UserError:
        raise
    except Exception as error:  # a corrupt or foreign file: say which and why
        raise UserError(f"cannot read pretrained checkpoint {path}: {type(error).__name__}: {error}") from None
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise UserError(f"pretrained checkpoint {path} holds a {type(state).__name__}, not a state dict")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()
            if torch.is_tensor(v)}


def _from_open_clip(state, prefix):
    mapped = {}
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        key = key[len(prefix):]
        match = re.match(r"^transformer\.resblocks\.(\d+)\.(.+)$", key)
        if match:
            index, part = match.groups()
            for old, new in _OPEN_CLIP_BLOCK.items():
                if part == old or part.startswith(old + "."):
                    mapped[f"blocks.{index}.{new}{part[len(old):]}"] = value
        elif key.startswith("ln_pre."):
            mapped["norm_pre." + key[len("ln_pre."):]] = value
        elif key.startswith("ln_post."):
            mapped["norm." + key[len("ln_post."):]] = value
    return mapped


def _from_timm(state):
    mapped = {k: v for k, v in state.items() if _TIMM_BLOCK.match(k)}
    for ours, theirs in (("norm", "norm"), ("norm_pre", "norm_pre")):
        for suffix in ("weight", "bias"):
            if f"{theirs}.{suffix}" in state:
                mapped[f"{ours}.{suffix}"] = state[f"{theirs}.{suffix}"]
    if "norm.weight" not in mapped and "fc_norm.weight" in state:  # global-pool variants keep the final norm here
        mapped["norm.weight"], mapped["norm.bias"] = state["fc_norm.weight"], state["fc_norm.bias"]
    return mapped


def read_vit_checkpoint(path):
    """``(state in the backbone's names, info)`` from a timm or open_clip ViT checkpoint file.

    ``info`` holds ``format``, ``depth``, ``width`` and ``pre_norm`` (whether the file has
    a pre-transformer LayerNorm, as CLIP models do). Patch embedding, class token,
    learned positions and heads are ignored: UniSTD replaces them with per-task
    encoders and fixed sinusoidal positions.
    """
    path = Path(path).expanduser()
    state = _read(path)
    if any(k.startswith("visual.transformer.resblocks.") for k in state):
        mapped, fmt = _from_open_clip(state, "visual."), "open_clip"
    elif any(k.startswith("transformer.resblocks.") for k in state) and "ln_post.weight" in state:
        mapped, fmt = _from_open_clip(state, ""), "open_clip"
    elif any(_TIMM_BLOCK.match(k) for k in state):
        mapped, fmt = _from_timm(state), "timm"
    else:
        sample = ", ".join(sorted(state)[:5])
        raise UserError(f"{path} has neither timm ViT keys (blocks.N.attn.qkv.weight, ...) nor open_clip keys "
                        f"(visual.transformer.resblocks.N.attn.in_proj_weight, ...); its first keys: {sample}")
    depth = 1 + max(int(k.split(".")[1]) for k in mapped if k.startswith("blocks."))
    width = mapped["blocks.0.norm1.weight"].shape[0] if "blocks.0.norm1.weight" in mapped else None
    info = {"format": fmt, "path": str(path), "depth": depth, "width": width, "pre_norm": "norm_pre.weight" in mapped}
    return mapped, info


def load_into(backbone, mapped, info):
    """Copy the checkpoint tensors into ``backbone``; every frozen tensor must come from the file."""
    if info["depth"] != backbone.depth or info["width"] != backbone.dim:
        raise UserError(f"pretrained checkpoint {info['path']} is a ViT of depth {info['depth']} and width "
                        f"{info['width']}; the model is built with depth={backbone.depth}, embed_dim={backbone.dim} "
                        f"(set them to match: --set depth={info['depth']} --set embed_dim={info['width']})")
    needed = frozen_names(backbone.depth, backbone.pre_norm)
    missing = [name for name in needed if name not in mapped]
    if missing:
        raise UserError(f"pretrained checkpoint {info['path']} lacks {len(missing)} backbone tensors, e.g. "
                        f"{', '.join(missing[:3])}")
    own = dict(backbone.named_parameters())
    for name in needed:
        if tuple(mapped[name].shape) != tuple(own[name].shape):
            raise UserError(f"pretrained checkpoint {info['path']}: {name} has shape {tuple(mapped[name].shape)}, "
                            f"the model expects {tuple(own[name].shape)}")
    with torch.no_grad():
        for name in needed:
            own[name].copy_(mapped[name].to(own[name].dtype))
    return len(needed)
