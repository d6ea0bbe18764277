"""SwinLSTM (Tang et al., ICCV 2023): LSTM cells whose gate pre-activation is a stack of Swin Transformer blocks."""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from stbench import STModel, UserError

VARIANTS = ("D", "B")
State = Optional[Tuple[torch.Tensor, torch.Tensor]]


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a sample's residual branch with probability ``p`` and scale
    the kept ones by ``1 / (1 - p)``; the identity in eval mode."""

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def to_windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """``[B, H, W, C]`` -> ``[B * windows, window * window, C]``, windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).transpose(2, 3)
    return x.reshape(-1, window * window, c)


def from_windows(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """The inverse of :func:`to_windows`: ``[B * windows, window * window, C]`` -> ``[B, H, W, C]``."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c).transpose(2, 3)
    return x.reshape(-1, h, w, c)


def relative_position_index(window: int) -> torch.Tensor:
    """``[N, N]`` (N = window^2): for tokens i, j of a window, the row of the bias table for their offset."""
    rows, cols = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack([rows.flatten(), cols.flatten()])  # [2, N]
    offset = coords[:, :, None] - coords[:, None, :] + (window - 1)  # each in [0, 2 window - 2]
    return offset[0] * (2 * window - 1) + offset[1]


def shifted_window_mask(grid: Tuple[int, int], window: int, shift: int) -> torch.Tensor:
    """``[windows, N, N]``: 0 between tokens of one region of the rolled grid, -100 across regions.

    After a cyclic roll by ``shift``, the last windows of each axis hold tokens from both ends of the
    grid; attention between those (which are not neighbours) is masked out, as in the Swin paper.
    """
    h, w = grid
    regions = torch.zeros(1, h, w, 1)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for rows in bounds:
        for cols in bounds:
            regions[:, rows, cols, :] = label
            label += 1
    ids = to_windows(regions, window).squeeze(-1)  # [windows, N]
    differs = ids[:, None, :] != ids[:, :, None]
    return torch.zeros(differs.shape).masked_fill(differs, -100.0)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, with a learned bias per relative offset and head."""

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        # derived from the window size alone: rebuilt, never stored
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        """``x``: ``[B * windows, N, C]``; ``mask``: ``[windows, N, N]`` or None."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        scores = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        scores = scores + bias.view(n, n, self.heads).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            windows = mask.shape[0]
            scores = (scores.view(b // windows, windows, self.heads, n, n) + mask[None, :, None]).view(b, self.heads, n, n)
        out = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(out)


class SwinBlock(nn.Module):
    """A Swin Transformer block (pre-norm window attention and a 4x MLP, both residual) that can first fuse
    a second input: ``fuse([norm1(x), norm1(extra)])`` replaces ``norm1(x)`` before the attention, while
    the residual path keeps ``x``. Blocks that never get a second input have no ``fuse`` layer.

    ``shift`` > 0 rolls the grid by ``-shift`` before the windows are cut (and back after) and masks
    attention across the wrapped border. A grid no larger than the window in its smaller side is one
    unshifted window of that side (timm's rule, which the references inherit).
    """

    def __init__(self, dim: int, grid: Tuple[int, int], heads: int, window: int, shift: int, mlp_ratio: float,
                 drop_path: float, fuses: bool):
        super().__init__()
        if min(grid) <= window:
            window, shift = min(grid), 0
        self.grid, self.window, self.shift = grid, window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.fuse = nn.Linear(2 * dim, dim) if fuses else None
        self.attn = WindowAttention(dim, heads, window)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential()
        self.mlp.add_module("fc1", nn.Linear(dim, hidden))
        self.mlp.add_module("act", nn.GELU())
        self.mlp.add_module("fc2", nn.Linear(hidden, dim))
        mask = shifted_window_mask(grid, window, shift) if shift else None
        self.register_buffer("attn_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor, extra: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``x``, ``extra``: tokens ``[B, H*W, C]`` of the block's grid."""
        b, length, c = x.shape
        h, w = self.grid
        y = self.norm1(x)
        if extra is not None:
            y = self.fuse(torch.cat([y, self.norm1(extra)], dim=-1))
        y = y.view(b, h, w, c)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = from_windows(self.attn(to_windows(y, self.window), self.attn_mask), self.window, h, w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + self.drop_path(y.reshape(b, length, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class SwinLSTMCell(nn.Module):
    """The SwinLSTM cell: ``F = STB stack(x, h)``, ``g = sigmoid(F)``, ``c' = g * (c + tanh(F))``,
    ``h' = g * tanh(c')``.

    Block 0 fuses the input ``x`` with the hidden state ``h``; every later even block fuses the running
    features with ``x`` again; odd blocks take the running features alone, with shifted windows.
    """

    def __init__(self, dim: int, grid: Tuple[int, int], depth: int, heads: int, window: int, mlp_ratio: float,
                 drop_paths: Sequence[float]):
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(dim, grid, heads, window, shift=0 if i % 2 == 0 else window // 2, mlp_ratio=mlp_ratio,
                      drop_path=drop_paths[i], fuses=i % 2 == 0)
            for i in range(depth))

    def forward(self, x: torch.Tensor, state: State) -> Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        h, c = state if state is not None else (torch.zeros_like(x), torch.zeros_like(x))
        f = self.blocks[0](x, h)
        for i, block in enumerate(self.blocks[1:], start=1):
            f = block(f, x if i % 2 == 0 else None)
        gate = torch.sigmoid(f)
        c = gate * (c + torch.tanh(f))
        h = gate * torch.tanh(c)
        return h, (h, c)


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch`` x ``patch`` patches to tokens ``[B, h*w, dim]`` (a strided conv, then LayerNorm)."""

    def __init__(self, channels: int, dim: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(channels, dim, patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(frame).flatten(2).transpose(1, 2))


class PatchMerging(nn.Module):
    """Halve the grid: each 2x2 group of tokens (order (0,0), (1,0), (0,1), (1,1) as (row, col)) is
    concatenated, normalised and projected from 4C to 2C."""

    def __init__(self, dim: int, grid: Tuple[int, int]):
        super().__init__()
        self.grid = grid
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        x = x.view(b, *self.grid, c)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class PatchExpanding(nn.Module):
    """Double the grid: a linear map C -> 2C, each token's 2C split into a 2x2 group of C/2 (row-major), LayerNorm."""

    def __init__(self, dim: int, grid: Tuple[int, int]):
        super().__init__()
        self.grid = grid
        self.expand = nn.Linear(dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(dim // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        h, w = self.grid
        x = self.expand(x).view(b, h, w, 2, 2, -1).permute(0, 1, 3, 2, 4, 5)
        return self.norm(x.reshape(b, 4 * h * w, -1))


class Stage(nn.Module):
    """One cell of the D model and the resampling after it (PatchMerging down, PatchExpanding up)."""

    def __init__(self, cell: SwinLSTMCell, name: str, resample: nn.Module):
        super().__init__()
        self.cell, self.resample_name = cell, name
        self.add_module(name, resample)

    def resample(self) -> nn.Module:
        return getattr(self, self.resample_name)


class SwinLSTM(STModel):
    """SwinLSTM (Tang et al., ICCV 2023) as OpenSTL runs it, variants D (deep) and B (base).

    Each frame is cut into ``patch_size`` patches and embedded (``embed``); the tokens pass SwinLSTM
    cells, each with its own (h, c) state; a stride-2 3x3 transposed convolution (``read_out``) and a
    sigmoid give the next frame. Hence ``patch_size`` must be 2, as in every reference configuration.

    - ``D``: ``down[k]`` is a cell at 1/2^k of the patch grid with ``embed_dim * 2^k`` channels followed by
      patch merging, for k = 0..L-1 (L = ``len(depths_down)``); ``up[j]`` is a cell at 1/2^(L-j) of the grid
      followed by patch expanding, for j = 0..L-1. The up cell at 1/2^(k+1) has ``depths_up[k]`` blocks and
      ``num_heads[k]`` heads, the down cell at 1/2^k ``depths_down[k]`` and ``num_heads[k]``. Stochastic
      depth rises linearly from 0 to ``drop_path`` over the down blocks in order, and separately over the
      up blocks in the order of ``depths_up``, reversed within each cell (the reference's schedule).
    - ``B``: ``cells[i]`` are cells at the patch grid with ``embed_dim`` channels, ``depths[i]`` blocks and
      ``num_heads[i]`` heads, one after the other; every block has stochastic depth ``drop_path``.
      OpenSTL's SwinLSTM-B is one cell; the authors' code stacks one per entry of ``depths``.

    The rollout is OpenSTL's (and the authors'): observed frames 0..T_in-1 go in, then the model's own
    predictions; frame t yields frame t+1. Training runs the same rollout (no teacher forcing of the
    future) and takes the MSE over all ``T_in + T_out - 1`` predicted frames.
    """

    def __init__(self, task, *, variant: str, embed_dim: int, patch_size: int, window_size: int,
                 depths_down: Sequence[int], depths_up: Sequence[int], depths: Sequence[int],
                 num_heads: Sequence[int], mlp_ratio: float, drop_path: float):
        super().__init__()
        if task.shape is None:
            raise ValueError(f"task {task} has no frame shape; resolve it against its dataset first")
        if variant not in VARIANTS:
            raise UserError(f"swinlstm: variant must be one of {', '.join(VARIANTS)} (deep or base model), got {variant!r}")
        if patch_size != 2:
            raise UserError(f"swinlstm: patch_size must be 2: its read-out (a stride-2 transposed convolution) "
                            f"doubles the patch grid back to the frame size; got {patch_size}")
        if embed_dim < 1 or window_size < 1 or mlp_ratio <= 0 or not 0.0 <= drop_path < 1.0:
            raise UserError(f"swinlstm: embed_dim and window_size must be positive, mlp_ratio > 0 and drop_path in "
                            f"[0, 1); got embed_dim={embed_dim}, window_size={window_size}, mlp_ratio={mlp_ratio}, "
                            f"drop_path={drop_path}")
        channels, height, width = task.shape
        if height % 2 or width % 2:
            raise UserError(f"swinlstm: frames must have an even size for patch_size 2; task {task} has "
                            f"{height}x{width}")
        grid = (height // 2, width // 2)
        self.variant, self.mlp_ratio = variant, float(mlp_ratio)
        self.embed = PatchEmbed(channels, embed_dim, patch_size)
        if variant == "D":
            self._build_deep(grid, embed_dim, window_size, _positive("depths_down", depths_down),
                             _positive("depths_up", depths_up), _positive("num_heads", num_heads), drop_path, task)
        else:
            self._build_base(grid, embed_dim, window_size, _positive("depths", depths),
                             _positive("num_heads", num_heads), drop_path, task)
        self.read_out = nn.ConvTranspose2d(embed_dim, channels, 3, stride=2, padding=1, output_padding=1)
        self.grid, self.embed_dim = grid, embed_dim

    # -- construction ---------------------------------------------------------------------------------
    def _build_deep(self, grid, dim, window, depths_down, depths_up, heads, drop_path, task):
        levels = len(depths_down)
        if len(depths_up) != levels or len(heads) != levels:
            raise UserError(f"swinlstm D: depths_down, depths_up and num_heads need one entry per level; got "
                            f"{list(depths_down)}, {list(depths_up)}, {list(heads)}")
        scale = 2 ** levels
        if grid[0] % scale or grid[1] % scale:
            raise UserError(f"swinlstm D: {levels} levels halve the patch grid {grid[0]}x{grid[1]} {levels} times, "
                            f"so it must divide by {scale} (task {task}); use fewer levels")
        rates_down = _linspace(drop_path, sum(depths_down))
        rates_up = _linspace(drop_path, sum(depths_up))
        self.down = nn.ModuleList()
        for k in range(levels):
            size, width = (grid[0] >> k, grid[1] >> k), dim << k
            _check_windows(size, window, width, heads[k], task)
            start = sum(depths_down[:k])
            cell = SwinLSTMCell(width, size, depths_down[k], heads[k], window, self.mlp_ratio,
                                rates_down[start:start + depths_down[k]])
            self.down.append(Stage(cell, "merge", PatchMerging(width, size)))
        self.up = nn.ModuleList()
        for j in range(levels):
            k = levels - 1 - j
            size, width = (grid[0] >> (k + 1), grid[1] >> (k + 1)), dim << (k + 1)
            _check_windows(size, window, width, heads[k], task)
            start = sum(depths_up[:k])
            rates = rates_up[start:start + depths_up[k]][::-1]
            cell = SwinLSTMCell(width, size, depths_up[k], heads[k], window, self.mlp_ratio, rates)
            self.up.append(Stage(cell, "expand", PatchExpanding(width, size)))

    def _build_base(self, grid, dim, window, depths, heads, drop_path, task):
        if len(heads) != len(depths):
            raise UserError(f"swinlstm B: num_heads needs one entry per cell in depths; got depths={list(depths)}, "
                            f"num_heads={list(heads)}")
        for count in heads:
            _check_windows(grid, window, dim, count, task)
        self.cells = nn.ModuleList(
            SwinLSTMCell(dim, grid, depth, count, window, self.mlp_ratio, [drop_path] * depth)
            for depth, count in zip(depths, heads))

    # -- the rollout ----------------------------------------------------------------------------------
    def stages(self) -> List[Tuple[SwinLSTMCell, Optional[nn.Module]]]:
        """(cell, resampling after it) in the order a frame passes them."""
        if self.variant == "D":
            return [(stage.cell, stage.resample()) for stage in (*self.down, *self.up)]
        return [(cell, None) for cell in self.cells]

    def step(self, frame: torch.Tensor, states: List[State]) -> Tuple[torch.Tensor, List[State]]:
        """One frame ``[B, C, H, W]`` through every cell: (the predicted next frame, the new states)."""
        x = self.embed(frame)
        new_states = []
        for (cell, resample), state in zip(self.stages(), states):
            x, state = cell(x, state)
            new_states.append(state)
            if resample is not None:
                x = resample(x)
        b = x.shape[0]
        x = x.transpose(1, 2).reshape(b, self.embed_dim, *self.grid)
        return torch.sigmoid(self.read_out(x)), new_states

    def rollout(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """Predictions of frames 1..steps: inputs are ``x[:, t]`` while observed, then the last prediction."""
        states: List[State] = [None] * len(self.stages())
        predictions: List[torch.Tensor] = []
        for t in range(steps):
            frame = x[:, t] if t < x.shape[1] else predictions[-1]
            prediction, states = self.step(frame, states)
            predictions.append(prediction)
        return torch.stack(predictions, dim=1)

    def forward(self, x: torch.Tensor, t_out: int) -> torch.Tensor:
        return self.rollout(x, x.shape[1] + t_out - 1)[:, -t_out:]

    def loss(self, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        """OpenSTL's training step: the inference rollout over every next frame, MSE against frames 1..T-1."""
        frames = torch.cat([x, y], dim=1)
        return F.mse_loss(self.rollout(x, frames.shape[1] - 1), frames[:, 1:])


def _positive(name: str, values) -> List[int]:
    """A list of positive ints from a list, one int, or OpenSTL's comma-separated string ('2,6')."""
    if isinstance(values, str):
        values = [int(v) if v.strip().isdigit() else v for v in values.split(",")]
    values = [values] if isinstance(values, int) else list(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise UserError(f"swinlstm: {name} must list positive integers, got {values!r}")
    return values


def _linspace(end: float, count: int) -> List[float]:
    """The references' rates: float32 steps from 0 to ``end`` (on the CPU, also while building on ``meta``)."""
    return [float(v) for v in torch.linspace(0, end, count, device="cpu")]


def _check_windows(grid: Tuple[int, int], window: int, dim: int, heads: int, task) -> None:
    effective = min(window, *grid)
    if grid[0] % effective or grid[1] % effective:
        raise UserError(f"swinlstm: a {grid[0]}x{grid[1]} token grid (task {task}) does not split into "
                        f"{effective}x{effective} windows; choose a window_size that divides every level's grid")
    if dim % heads:
        raise UserError(f"swinlstm: {dim} channels do not split into {heads} heads; choose num_heads that divide "
                        f"embed_dim * 2^level")


def build_swinlstm(task, hparams):
    return SwinLSTM(task, variant=str(hparams["variant"]), embed_dim=int(hparams["embed_dim"]),
                    patch_size=int(hparams["patch_size"]), window_size=int(hparams["window_size"]),
                    depths_down=hparams["depths_down"], depths_up=hparams["depths_up"], depths=hparams["depths"],
                    num_heads=hparams["num_heads"], mlp_ratio=float(hparams["mlp_ratio"]),
                    drop_path=float(hparams["drop_path"]))
