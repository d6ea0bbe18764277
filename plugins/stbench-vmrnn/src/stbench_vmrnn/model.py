"""VMRNN (Tang et al., CVPR workshops 2024): LSTM-like recurrent cells whose transform is a stack of
VMamba blocks (2-D selective scan), run on patch tokens; a flat (VMRNN-B) or U-shaped (VMRNN-D) stack."""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from stbench import STModel, UserError

from .scan import SCANS, selective_scan

ARCHITECTURES = ("b", "d")
OUTPUTS = ("sigmoid", "linear")
DIRECTIONS = 4  # VMamba's cross-scan: rows, columns, and both reversed

State = Tuple[torch.Tensor, torch.Tensor]


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a sample's residual branch with probability ``p`` (rescaling the rest)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class CrossScan2D(nn.Module):
    """VMamba's SS2D: a gated selective-scan mixer over a token grid ``[B, H, W, C]``.

    ``in_proj`` splits into a branch ``x`` (depthwise ``d_conv`` convolution, SiLU) and a gate ``z``.
    ``x`` is read as four sequences (row-major, column-major, and both reversed); each has its own
    projections to the step size ``delta`` (rank ``dt_rank``, then up to every channel), ``B`` and ``C``
    (``d_state`` each), its own ``A`` and skip ``D``. The four scans are folded back onto the grid and
    summed, layer-normed, gated by ``silu(z)`` and projected back to ``C`` channels.
    """

    def __init__(self, channels: int, d_state: int = 16, d_conv: int = 3, expand: int = 2,
                 dt_rank: Optional[int] = None, dropout: float = 0.0, scan: str = "chunked",
                 dt_min: float = 0.001, dt_max: float = 0.1, dt_init_floor: float = 1e-4):
        super().__init__()
        inner = expand * channels
        self.inner, self.d_state, self.scan = inner, d_state, scan
        self.dt_rank = dt_rank or math.ceil(channels / 16)
        self.in_proj = nn.Linear(channels, 2 * inner, bias=False)
        self.conv = nn.Conv2d(inner, inner, d_conv, padding=(d_conv - 1) // 2, groups=inner)
        # per direction: inner -> (dt_rank + 2 d_state), as nn.Linear initialises it
        bound = 1.0 / math.sqrt(inner)
        self.x_proj = nn.Parameter(torch.empty(DIRECTIONS, self.dt_rank + 2 * d_state, inner).uniform_(-bound, bound))
        # delta's up-projection keeps unit variance; its bias puts softplus(bias) log-uniformly in [dt_min, dt_max]
        std = self.dt_rank ** -0.5
        self.dt_weight = nn.Parameter(torch.empty(DIRECTIONS, inner, self.dt_rank).uniform_(-std, std))
        dt = torch.exp(torch.rand(DIRECTIONS, inner) * (math.log(dt_max) - math.log(dt_min))
                       + math.log(dt_min)).clamp(min=dt_init_floor)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        # S4D-real: A = -(1 .. d_state) for every channel of every direction
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(
            DIRECTIONS * inner, 1))
        self.D = nn.Parameter(torch.ones(DIRECTIONS * inner))
        self.out_norm = nn.LayerNorm(inner)
        self.out_proj = nn.Linear(inner, channels, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, height, width, _ = tokens.shape
        x, z = self.in_proj(tokens).chunk(2, dim=-1)
        x = F.silu(self.conv(x.permute(0, 3, 1, 2)))
        y = self.cross_scan(x)
        y = self.out_norm(y.transpose(1, 2).reshape(batch, height, width, self.inner))
        return self.dropout(self.out_proj(y * F.silu(z)))

    def cross_scan(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, inner, H, W]`` -> the summed scans ``[B, inner, H*W]``."""
        batch, inner, height, width = x.shape
        length = height * width
        rows, cols = x.flatten(2), x.transpose(2, 3).flatten(2)
        sequences = torch.stack([rows, cols, rows.flip(-1), cols.flip(-1)], dim=1)  # [B, 4, inner, L]
        projected = torch.einsum("bkdl,kcd->bkcl", sequences, self.x_proj)
        dts, B, C = torch.split(projected, [self.dt_rank, self.d_state, self.d_state], dim=2)
        dts = torch.einsum("bkrl,kdr->bkdl", dts, self.dt_weight)
        out = selective_scan(sequences.reshape(batch, DIRECTIONS * inner, length),
                             dts.reshape(batch, DIRECTIONS * inner, length),
                             -torch.exp(self.A_log.float()), B, C, D=self.D, delta_bias=self.dt_bias.flatten(),
                             delta_softplus=True, method=self.scan).view(batch, DIRECTIONS, inner, length)

        def from_columns(seq):
            return seq.view(batch, inner, width, height).transpose(2, 3).reshape(batch, inner, length)

        return out[:, 0] + out[:, 2].flip(-1) + from_columns(out[:, 1]) + from_columns(out[:, 3].flip(-1))


class VisionMambaBlock(nn.Module):
    """A pre-norm residual SS2D block on tokens ``[B, H*W, C]``; the first block of a cell also takes the
    cell's hidden state: both are normed (by the same LayerNorm), concatenated and mixed back to ``C``."""

    def __init__(self, channels: int, grid: Tuple[int, int], *, takes_hidden: bool, drop_path: float, **ss2d):
        super().__init__()
        self.grid = grid
        self.norm = nn.LayerNorm(channels)
        self.mix_hidden = nn.Linear(2 * channels, channels) if takes_hidden else None
        self.ss2d = CrossScan2D(channels, **ss2d)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, hidden: Optional[torch.Tensor] = None) -> torch.Tensor:
        tokens = self.norm(x)
        if self.mix_hidden is not None:
            tokens = self.mix_hidden(torch.cat([tokens, self.norm(hidden)], dim=-1))
        mixed = self.ss2d(tokens.view(x.shape[0], *self.grid, x.shape[-1]))
        return x + self.drop_path(mixed).view(x.shape)


class VMRNNCell(nn.Module):
    """The VMRNN cell: ``o = blocks(x, h)``, ``f = sigmoid(o)``, ``c' = f * (c + tanh(o))``,
    ``h' = f * tanh(c')``; ``h'`` is both the output and the new hidden state."""

    def __init__(self, channels: int, grid: Tuple[int, int], depth: int, drop_paths: Sequence[float], **ss2d):
        super().__init__()
        self.channels, self.grid = channels, grid
        self.blocks = nn.ModuleList(
            VisionMambaBlock(channels, grid, takes_hidden=index == 0, drop_path=drop_paths[index], **ss2d)
            for index in range(depth))

    def initial_state(self, batch: int, like: torch.Tensor) -> State:
        zeros = like.new_zeros(batch, self.grid[0] * self.grid[1], self.channels)
        return zeros, zeros

    def forward(self, x: torch.Tensor, state: State) -> Tuple[torch.Tensor, State]:
        hidden, cell = state
        o = self.blocks[0](x, hidden)
        for block in self.blocks[1:]:
            o = block(o)
        gate = torch.sigmoid(o)
        cell = gate * (cell + torch.tanh(o))
        hidden = gate * torch.tanh(cell)
        return hidden, (hidden, cell)


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch`` x ``patch`` patches to ``channels``-wide tokens ``[B, h*w, C]``, layer-normed."""

    def __init__(self, in_channels: int, channels: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, channels, patch, stride=patch)
        self.norm = nn.LayerNorm(channels)

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(frame).flatten(2).transpose(1, 2))


class PatchMerging(nn.Module):
    """2x2 token neighbourhoods concatenated (in Swin's order), layer-normed and projected ``4C -> 2C``."""

    def __init__(self, channels: int, grid: Tuple[int, int]):
        super().__init__()
        self.grid = grid
        self.norm = nn.LayerNorm(4 * channels)
        self.reduction = nn.Linear(4 * channels, 2 * channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = x.view(x.shape[0], *self.grid, x.shape[-1])
        merged = torch.cat([grid[:, 0::2, 0::2], grid[:, 1::2, 0::2], grid[:, 0::2, 1::2], grid[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(merged.flatten(1, 2)))


class PatchExpanding(nn.Module):
    """Each token ``C -> 2C``, unfolded into a 2x2 neighbourhood of ``C/2``-wide tokens, layer-normed."""

    def __init__(self, channels: int, grid: Tuple[int, int]):
        super().__init__()
        self.grid = grid
        self.expand = nn.Linear(channels, 2 * channels, bias=False)
        self.norm = nn.LayerNorm(channels // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, (height, width), out = x.shape[0], self.grid, x.shape[-1] // 2
        grid = self.expand(x).view(batch, height, width, 2, 2, out).permute(0, 1, 3, 2, 4, 5)
        return self.norm(grid.reshape(batch, 4 * height * width, out))


class PatchInflation(nn.Module):
    """Tokens back to a frame: ``log2(patch) - 1`` stride-2 transposed convolutions (GroupNorm of 16 groups,
    LeakyReLU 0.2) at the token width, then one stride-2 transposed convolution to the frame channels."""

    def __init__(self, channels: int, out_channels: int, grid: Tuple[int, int], patch: int):
        super().__init__()
        self.grid = grid

        def up(c_out):
            return nn.ConvTranspose2d(channels, c_out, 3, stride=2, padding=1, output_padding=1)

        self.upsample = nn.Sequential(*[layer for _ in range(int(math.log2(patch)) - 1)
                                        for layer in (up(channels), nn.GroupNorm(16, channels), nn.LeakyReLU(0.2))])
        self.out = up(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frame = x.transpose(1, 2).reshape(x.shape[0], x.shape[-1], *self.grid)
        return self.out(self.upsample(frame))


class VMRNN(STModel):
    """VMRNN on ``patch_size`` patches of ``embed_dim``-wide tokens.

    ``architecture='b'`` (VMRNN-B): one cell per entry of ``depths`` (that many blocks), all on the
    patch grid, stacked. ``architecture='d'`` (VMRNN-D): encoder cells (``depths``) each followed by
    patch merging (half the grid, twice the width), then decoder cells (``depths_up``, deepest first as
    the reference reads them) each followed by patch expanding. Then the patch inflation and (by
    default) a sigmoid give the next frame. Every cell keeps its own ``(h, c)``.

    Rollout as the reference's: inputs ``1 .. T_in - 1`` are observed frames, after them the last
    observed frame and then the model's own predictions, in training as at inference; the loss covers
    every one of the ``T_in + T_out - 1`` next-frame predictions.
    """

    def __init__(self, task, *, architecture: str, depths: Sequence[int], depths_up: Sequence[int], embed_dim: int,
                 patch_size: int, d_state: int, d_conv: int, expand: int, dt_rank: Optional[int], drop_path: float,
                 dropout: float, scan: str, output: str, l1_weight: float):
        super().__init__()
        self.architecture, self.output, self.l1_weight = architecture, output, float(l1_weight)
        channels, height, width = task.shape
        levels = len(depths) if architecture == "d" else 0
        if height % patch_size or width % patch_size or (height // patch_size) % (1 << levels) \
                or (width // patch_size) % (1 << levels):
            raise UserError(f"vmrnn: patch_size {patch_size} with {levels} merging levels needs frames divisible by "
                            f"{patch_size * (1 << levels)}; task {task} has {height}x{width}. Choose another "
                            f"(--set patch_size=...)")
        grid = (height // patch_size, width // patch_size)
        ss2d = dict(d_state=d_state, d_conv=d_conv, expand=expand, dt_rank=dt_rank, dropout=dropout, scan=scan)
        self.embed = PatchEmbed(channels, embed_dim, patch_size)
        self.encoder, self.merges = nn.ModuleList(), nn.ModuleList()
        self.decoder, self.expands = nn.ModuleList(), nn.ModuleList()
        if architecture == "b":  # the reference's VMRNN-B: one drop-path rate for every block
            for depth in depths:
                self.encoder.append(VMRNNCell(embed_dim, grid, depth, [drop_path] * depth, **ss2d))
        else:  # VMRNN-D: rates rise linearly over the encoder's blocks, and again over the decoder's
            down_rates = _linspace(drop_path, sum(depths))
            for level, depth in enumerate(depths):
                width_at, grid_at = embed_dim << level, (grid[0] >> level, grid[1] >> level)
                start = sum(depths[:level])
                self.encoder.append(VMRNNCell(width_at, grid_at, depth, down_rates[start:start + depth], **ss2d))
                self.merges.append(PatchMerging(width_at, grid_at))
            up_rates = _linspace(drop_path, sum(depths_up))
            for level in range(levels):
                scale = levels - level
                width_at, grid_at = embed_dim << scale, (grid[0] >> scale, grid[1] >> scale)
                index = levels - 1 - level  # the deepest decoder cell takes the last entry of depths_up
                start = sum(depths_up[:index])
                self.decoder.append(VMRNNCell(width_at, grid_at, depths_up[index],
                                              up_rates[start:start + depths_up[index]], **ss2d))
                self.expands.append(PatchExpanding(width_at, grid_at))
        self.inflate = PatchInflation(embed_dim, channels, grid, patch_size)

    @property
    def cells(self) -> List[VMRNNCell]:
        return [*self.encoder, *self.decoder]

    def step(self, frame: torch.Tensor, states: Optional[List[State]]) -> Tuple[torch.Tensor, List[State]]:
        """One frame ``[B, C, H, W]`` in; the next frame and every cell's new ``(h, c)`` out."""
        if states is None:
            states = [cell.initial_state(frame.shape[0], frame) for cell in self.cells]
        new_states = []
        x = self.embed(frame)
        for index, cell in enumerate(self.encoder):
            x, state = cell(x, states[index])
            new_states.append(state)
            if self.merges:
                x = self.merges[index](x)
        for index, (cell, expand) in enumerate(zip(self.decoder, self.expands)):
            x, state = cell(x, states[len(self.encoder) + index])
            new_states.append(state)
            x = expand(x)
        out = self.inflate(x)
        return (torch.sigmoid(out) if self.output == "sigmoid" else out), new_states

    def rollout(self, x: torch.Tensor, t_out: int) -> torch.Tensor:
        """Predictions of frames ``1 .. T_in + t_out - 1`` from the observed ``x``."""
        states, predictions = None, []
        for t in range(x.shape[1] - 1):
            prediction, states = self.step(x[:, t], states)
            predictions.append(prediction)
        frame = x[:, -1]
        for _ in range(t_out):
            frame, states = self.step(frame, states)
            predictions.append(frame)
        return torch.stack(predictions, dim=1)

    def forward(self, x: torch.Tensor, t_out: int) -> torch.Tensor:
        return self.rollout(x, t_out)[:, -t_out:]

    def loss(self, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        predictions = self.rollout(x, y.shape[1])
        targets = torch.cat([x[:, 1:], y], dim=1)
        loss = F.mse_loss(predictions, targets)
        if self.l1_weight:
            loss = loss + self.l1_weight * F.l1_loss(predictions, targets)
        return loss


def _linspace(end: float, count: int) -> List[float]:
    """``count`` rates from 0 to ``end`` (``torch.linspace``'s values, computed without a tensor: builds on meta too)."""
    return [end * index / (count - 1) for index in range(count)] if count > 1 else [0.0] * count


def _depth_list(name: str, value) -> List[int]:
    values = [value] if isinstance(value, int) else list(value or [])
    if any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values):
        raise UserError(f"vmrnn: {name} must list positive block counts, got {value!r}")
    return values


def build_vmrnn(task, hparams):
    architecture = str(hparams["architecture"]).lower()
    if architecture not in ARCHITECTURES:
        raise UserError(f"vmrnn: architecture must be one of {', '.join(ARCHITECTURES)} (VMRNN-B, VMRNN-D), "
                        f"got {hparams['architecture']!r}")
    depths, depths_up = _depth_list("depths", hparams["depths"]), _depth_list("depths_up", hparams["depths_up"])
    if not depths:
        raise UserError("vmrnn: depths must name at least one cell")
    if architecture == "d" and len(depths_up) != len(depths):
        raise UserError(f"vmrnn: architecture d needs one depths_up entry per depths entry, got depths={depths} "
                        f"and depths_up={depths_up}")
    if architecture == "b" and depths_up:
        raise UserError(f"vmrnn: architecture b has no decoder cells; set depths_up=[] (got {depths_up})")
    scan, output = str(hparams["scan"]), str(hparams["output"])
    if scan not in SCANS:
        raise UserError(f"vmrnn: scan must be one of {', '.join(SCANS)}, got {scan!r}")
    if output not in OUTPUTS:
        raise UserError(f"vmrnn: output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    patch, embed = int(hparams["patch_size"]), int(hparams["embed_dim"])
    if patch < 2 or patch & (patch - 1):
        raise UserError(f"vmrnn: patch_size must be a power of 2 of at least 2 (the patch inflation doubles the grid "
                        f"at every stride-2 transposed convolution), got {patch}")
    if patch > 2 and embed % 16:
        raise UserError(f"vmrnn: with patch_size {patch} the patch inflation's GroupNorm needs embed_dim divisible by 16, "
                        f"got {embed}")
    if embed < 1:
        raise UserError(f"vmrnn: embed_dim must be positive, got {embed}")
    drop_path, dropout = float(hparams["drop_path"]), float(hparams["dropout"])
    if not 0 <= drop_path < 1 or not 0 <= dropout < 1:
        raise UserError(f"vmrnn: drop_path and dropout must be in [0, 1), got {drop_path} and {dropout}")
    dt_rank = hparams.get("dt_rank")
    return VMRNN(task, architecture=architecture, depths=depths, depths_up=depths_up, embed_dim=embed,
                 patch_size=patch, d_state=int(hparams["d_state"]), d_conv=int(hparams["d_conv"]),
                 expand=int(hparams["expand"]), dt_rank=int(dt_rank) if dt_rank else None, drop_path=drop_path,
                 dropout=dropout, scan=scan, output=output, l1_weight=float(hparams["l1_weight"]))
