"""UniSTD: per-task codecs around one shared, adapted ViT; single-task and joint (multi-task) models."""
import re
from typing import Any, Dict, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F

from stbench import MultiTaskModel, TRAIN_KEYS, UserError

from .backbone import Backbone
from .codec import TaskCodec, auto_blocks
from .pretrained import load_into, read_vit_checkpoint
from .ramoe import rank_modules

# Hyper-parameters of the shared part: one value for the whole (joint) model.
SHARED_DEFAULTS = dict(
    embed_dim=768, depth=12, heads=12, mlp_ratio=4.0, mlp_act="gelu",
    qkv_experts=6, proj_experts=2, temporal_experts=2, temporal_reduction=6, temporal_attention=True,
    max_rank=32, init_rank=4.5, lora_alpha=1.0, rank_grad_scale=1.0, adapter_passes="two",
    rank_epochs=10, rank_lr=0.05, rank_momentum=0.9, rank_beta=1.0, rank_budget=None,
    pretrained=None, train_backbone=False,
)
# Hyper-parameters of one task's encoder / decoder.
TASK_DEFAULTS = dict(enc_blocks=None, enc_channels=64, enc_hidden=None)


def codec_key(task_name: str) -> str:
    """A module name for a task (ModuleDict keys may not contain dots)."""
    return re.sub(r"[^0-9A-Za-z_-]", "_", task_name)


def split_hparams(hparams: Mapping):
    """(shared settings, this task's settings), defaults filled in; training keys are ignored."""
    unknown = set(hparams) - set(SHARED_DEFAULTS) - set(TASK_DEFAULTS) - set(TRAIN_KEYS)
    if unknown:
        raise UserError(f"unistd: unknown hyper-parameter(s) {', '.join(sorted(unknown))}; known: "
                        f"{', '.join(sorted(set(SHARED_DEFAULTS) | set(TASK_DEFAULTS)))}")
    shared = {k: hparams.get(k, v) for k, v in SHARED_DEFAULTS.items()}
    own = {k: hparams.get(k, v) for k, v in TASK_DEFAULTS.items()}
    return shared, own


class UniSTD(MultiTaskModel):
    """UniSTD for one task or several (joint training).

    ``forward(x, t_out, task=None)``: one pass maps the task's ``T_in`` frames to the next
    ``T_in`` frames (the decoder mirrors the encoder, so it emits as many frames as it
    read); ``t_out < T_in`` truncates the pass and ``t_out > T_in`` feeds predictions back
    in chunks of ``T_in`` -- the rollout that the paper's Table 9 FLOPs imply (BAIR 2->10
    costs five passes). ``task`` names the task (``Task.name``) and may be left out when
    the model has one task.
    """

    def __init__(self, tasks: Sequence, task_hparams: Mapping[str, Mapping], shared: Mapping):
        super().__init__()
        self.settings = dict(shared)
        s = self.settings
        info = mapped = None
        if s["pretrained"]:
            mapped, info = read_vit_checkpoint(s["pretrained"])
        clip_style = bool(info and info["pre_norm"])
        self.backbone = Backbone(
            dim=s["embed_dim"], depth=s["depth"], heads=s["heads"], mlp_ratio=s["mlp_ratio"], act=s["mlp_act"],
            eps=1e-5 if clip_style else 1e-6, pre_norm=clip_style, qkv_experts=s["qkv_experts"],
            proj_experts=s["proj_experts"], temporal_experts=s["temporal_experts"],
            temporal_reduction=s["temporal_reduction"], temporal=s["temporal_attention"], max_rank=s["max_rank"],
            init_rank=s["init_rank"], lora_alpha=s["lora_alpha"], rank_grad_scale=s["rank_grad_scale"],
            passes=s["adapter_passes"])
        if info is not None:
            loaded = load_into(self.backbone, mapped, info)
            backbone_note = (f"pretrained ViT from {info['path']} ({info['format']} key names, {loaded} tensors; "
                             f"patch embedding, positions, class token and head unused)")
        else:
            backbone_note = "random init (no pretrained file given: --set pretrained=PATH to a ViT-B/16 state dict)"
        if not s["train_backbone"]:
            for param in self.backbone.frozen_parameters():
                param.requires_grad_(False)

        self.tasks = {task.name: task for task in tasks}
        self.codecs = torch.nn.ModuleDict()
        for task in tasks:
            own = task_hparams[task.name]
            blocks = int(own["enc_blocks"] or auto_blocks(*task.shape[1:]))
            self.codecs[codec_key(task.name)] = TaskCodec(task, dim=s["embed_dim"], blocks=blocks,
                                                          channels=own["enc_channels"], mid=own["enc_hidden"])

        self.adapters = rank_modules(self.backbone)
        budget = s["rank_budget"]
        self.rank_budget = float(budget) if budget is not None else s["init_rank"] * self.rank_count
        self.register_buffer("ranks_rounded", torch.zeros((), dtype=torch.bool))
        self.notes = {
            "backbone": backbone_note,
            "trainable_params": self.trainable_params(),
            "backbone_frozen": not s["train_backbone"],
            "adapters": f"{self.rank_count} rank-adaptive LoRA experts (max rank {s['max_rank']}, initial "
                        f"{s['init_rank']}), rank budget C={self.rank_budget:g}, beta={s['rank_beta']}; ranks "
                        f"trained for {s['rank_epochs']} epochs (SGD Nesterov lr {s['rank_lr']}), then rounded",
        }

    def record_notes(self) -> Dict[str, Any]:
        return dict(self.notes)

    # ------------------------------------------------------------------ prediction

    @property
    def rank_count(self) -> int:
        return sum(m.experts for m in self.adapters)

    def codec(self, task: Optional[str]) -> TaskCodec:
        if task is None:
            if len(self.codecs) != 1:
                raise ValueError(f"this joint UniSTD serves {', '.join(self.tasks)}; pass task=<name>")
            return next(iter(self.codecs.values()))
        key = codec_key(str(task))
        if key not in self.codecs:
            raise ValueError(f"this UniSTD was not built for task '{task}'; it serves {', '.join(self.tasks)}")
        return self.codecs[key]

    def step(self, x: torch.Tensor, task: Optional[str] = None) -> torch.Tensor:
        """One pass: ``[B, T_in, C, H, W]`` -> the next ``T_in`` frames."""
        codec = self.codec(task)
        if tuple(x.shape[1:]) != (codec.t, *codec.frame):
            raise ValueError(f"expected input [B, {codec.t}, {', '.join(map(str, codec.frame))}], "
                             f"got {list(x.shape)}")
        return codec.decode(self.backbone(codec.encode(x)))

    def forward(self, x: torch.Tensor, t_out: int, task: Optional[str] = None) -> torch.Tensor:
        chunks, produced, current = [], 0, x
        while produced < t_out:
            current = self.step(current, task)
            chunks.append(current)
            produced += current.shape[1]
        return torch.cat(chunks, dim=1)[:, :t_out]

    def for_task(self, task: str):
        """A single-task ``STModel`` view of this (joint) model, for code that calls ``forward(x, t_out)``."""
        self.codec(task)  # an unknown task fails here, with the tasks this model serves
        return super().for_task(task)

    # ------------------------------------------------------------------ training

    def ranks_trainable(self) -> bool:
        return bool(self.adapters) and self.adapters[0].rank.requires_grad

    def rank_budget_loss(self) -> torch.Tensor:
        """Eq. 10's ``beta * |C - sum_i r_i|`` over every expert of every RA-MoE."""
        total = sum(m.clamped_rank().sum() for m in self.adapters)
        return self.settings["rank_beta"] * (self.rank_budget - total).abs()

    def loss(self, x: torch.Tensor, y: torch.Tensor, step: int, task: Optional[str] = None) -> torch.Tensor:
        loss = F.mse_loss(self(x, y.shape[1], task), y)
        if self.ranks_trainable():
            loss = loss + self.rank_budget_loss()
        return loss

    def on_epoch_start(self, epoch: int) -> None:
        """Engine hook, called before every epoch (0-based): round and freeze ranks after the search."""
        if epoch >= int(self.settings["rank_epochs"]):
            self.round_ranks()

    def round_ranks(self) -> None:
        for module in self.adapters:
            module.round_ranks()
        self.ranks_rounded.fill_(True)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if bool(self.ranks_rounded):  # a checkpoint taken after rounding resumes with frozen ranks
            for module in self.adapters:
                module.rank.requires_grad_(False)

    def rank_parameters(self):
        return [m.rank for m in self.adapters if m.rank.requires_grad]

    def optimizer_param_groups(self, train_cfg: Optional[Mapping] = None):
        """Weights for the engine's optimizer; ranks in a group that names its own (the paper's SGD).

        The rank group carries ``optimizer="sgd"`` with Nesterov momentum, its own ``lr`` and no
        weight decay. An engine that splits such groups into their own optimizer trains the
        ranks as the paper does; one that does not still trains them, with its optimizer at the
        group's ``lr``.
        """
        ranks = {id(p) for p in self.rank_parameters()}
        weights = [p for p in self.parameters() if p.requires_grad and id(p) not in ranks]
        groups = [{"params": weights, "name": "weights"}]
        if ranks:
            groups.append({"params": self.rank_parameters(), "name": "ranks", "optimizer": "sgd",
                           "lr": float(self.settings["rank_lr"]), "momentum": float(self.settings["rank_momentum"]),
                           "nesterov": True, "weight_decay": 0.0})
        return groups

    def trainable_params(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def rank_summary(self) -> Dict[str, float]:
        """Mean rank of the adapters on Q, K, V, the attention projection and the temporal module."""
        sums: Dict[str, list] = {}
        for name, module in self.backbone.named_modules():
            if module in self.adapters:
                kind = "temporal" if name.endswith("temporal.moe") else name.rsplit(".", 1)[-1].replace("lora_", "")
                sums.setdefault(kind, []).append(module.clamped_rank().mean().item())
        return {kind: sum(values) / len(values) for kind, values in sums.items()}
