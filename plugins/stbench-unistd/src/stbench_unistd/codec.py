"""Per-task encoder and decoder: frames <-> backbone tokens (UniSTD Sec. 3.1, supplement Table 8)."""
import torch
from torch import nn

from .backbone import sincos_2d


def _norm(channels):
    return nn.GroupNorm(2 if channels % 2 == 0 else 1, channels)


def level_sizes(size: int, blocks: int):
    """Spatial size before each stride-2 convolution and after the last: ``[s, ceil(s/2), ...]``."""
    sizes = [int(size)]
    for _ in range(blocks):
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


def auto_blocks(height: int, width: int, max_tokens: int = 256) -> int:
    """Halvings needed for at most ``max_tokens`` tokens (for datasets the paper does not cover)."""
    blocks = 0
    while (level_sizes(height, blocks)[-1] * level_sizes(width, blocks)[-1]) > max_tokens:
        blocks += 1
    return max(blocks, 1)


class TaskCodec(nn.Module):
    """Everything task-specific: encoder, projection to the backbone width, positions, and the way back.

    Encoder block (Table 8): ``Conv2d(stride 1, mid) - GroupNorm - SiLU - Conv2d(stride 2, C') -
    GroupNorm - SiLU`` on every frame (time folded into the batch). ``mid`` is Table 8's
    ``channels=T'`` (the frames per pass) unless set. The ``T`` latents ``[C', H', W']`` of a
    clip are stacked to ``T*C'`` channels, projected by a 1x1 convolution to the backbone
    width and read as ``N = H'W'`` tokens, to which fixed 2-D sinusoidal positions are added.
    The decoder inverts this: a 1x1 projection back to ``T*C'``, then the encoder blocks in
    reverse with transposed convolutions (stride 2 up, then stride 1), the last one to the
    frame channels without norm or activation.
    """

    def __init__(self, task, *, dim, blocks, channels=64, mid=None):
        super().__init__()
        c, h, w = task.shape
        self.t, self.frame = task.t_in, (c, h, w)
        self.channels = int(channels)
        mid = int(mid or task.t_in)
        heights, widths = level_sizes(h, blocks), level_sizes(w, blocks)
        self.grid = (heights[-1], widths[-1])

        encoder, cin = [], c
        for _ in range(blocks):
            encoder += [nn.Conv2d(cin, mid, 3, 1, 1), _norm(mid), nn.SiLU(),
                        nn.Conv2d(mid, self.channels, 3, 2, 1), _norm(self.channels), nn.SiLU()]
            cin = self.channels
        self.encoder = nn.Sequential(*encoder)
        self.proj_in = nn.Conv2d(self.t * self.channels, dim, 1)
        self.register_buffer("pos", sincos_2d(dim, *self.grid)[None], persistent=False)
        self.proj_out = nn.Conv2d(dim, self.t * self.channels, 1)

        decoder = []
        for level in reversed(range(blocks)):
            pad = (1 - heights[level] % 2, 1 - widths[level] % 2)  # output_padding that restores odd sizes
            cout = c if level == 0 else self.channels
            decoder += [nn.ConvTranspose2d(self.channels, mid, 3, 2, 1, output_padding=pad), _norm(mid), nn.SiLU(),
                        nn.ConvTranspose2d(mid, cout, 3, 1, 1)]
            if level:
                decoder += [_norm(cout), nn.SiLU()]
        self.decoder = nn.Sequential(*decoder)

    @property
    def tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W]`` -> tokens ``[B, N, D]`` with positions added."""
        b, t, c, h, w = x.shape
        z = self.encoder(x.reshape(b * t, c, h, w))
        z = self.proj_in(z.reshape(b, t * self.channels, *self.grid))
        return z.flatten(2).transpose(1, 2) + self.pos

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens ``[B, N, D]`` -> frames ``[B, T, C, H, W]``."""
        b = tokens.shape[0]
        z = self.proj_out(tokens.transpose(1, 2).reshape(b, -1, *self.grid))
        y = self.decoder(z.reshape(b * self.t, self.channels, *self.grid))
        return y.reshape(b, self.t, *self.frame)
