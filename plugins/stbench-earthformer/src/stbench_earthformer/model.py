"""Earthformer (Gao et al., NeurIPS 2022): the hierarchical cuboid-attention encoder-decoder
(the authors' CuboidTransformerModel) as an stbench model, and its builder with every option checked."""
from typing import Any, Dict, List, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

from stbench import STModel, UserError, nearest

from .cuboid import (ACTIVATIONS, CROSS_PATTERNS, PADDINGS, SELF_PATTERNS, PatchMerging3D, PosEmbed,
                     StackCuboidCrossAttentionBlock, StackCuboidSelfAttentionBlock, Upsample3DLayer, activation,
                     init_linear)

Z_INITS = ("zeros", "nearest_interp", "last", "mean")
POS_EMBEDS = ("t+h+w", "t+hw")
DOWNSAMPLES = ("conv", "stack_conv")


def _conv_block(in_dim: int, out_dim: int, layers: int, groups: int, act: str) -> nn.Sequential:
    """``layers`` x (3x3 conv, GroupNorm, activation); PyTorch's default conv initialisation, as the reference."""
    block = []
    for i in range(layers):
        block += [nn.Conv2d(in_dim if i == 0 else out_dim, out_dim, 3, padding=1), nn.GroupNorm(groups, out_dim),
                  activation(act)]
    return nn.Sequential(*block)


def _frames_apply(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A 2-D block on every frame of ``[B, T, H, W, C]``."""
    b, t, h, w, c = x.shape
    y = block(x.reshape(b * t, h, w, c).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    return y.reshape(b, t, h, w, -1)


class InitialEncoder(nn.Module):
    """Initial downsampling ("conv"): K conv layers on each frame, then patch merging by ``scale``."""

    def __init__(self, in_dim, out_dim, scale, layers, act, padding):
        super().__init__()
        self.layers = layers
        self.conv_block = _conv_block(in_dim, out_dim, layers, 16, act)
        self.patch_merge = PatchMerging3D(out_dim if layers > 0 else in_dim, out_dim, scale, padding)

    def out_shape(self, shape):
        return self.patch_merge.out_shape(shape)

    def forward(self, x):
        if self.layers > 0:
            x = _frames_apply(self.conv_block, x)
        return self.patch_merge(x)


class FinalDecoder(nn.Module):
    """Final upsampling ("conv"): nearest resize + 3x3 conv to the frame size, then K conv layers."""

    def __init__(self, size, dim, layers, act):
        super().__init__()
        self.layers = layers
        self.conv_block = _conv_block(dim, dim, layers, 16, act)
        self.upsample = Upsample3DLayer(dim, dim, size)

    def forward(self, x):
        x = self.upsample(x)
        return _frames_apply(self.conv_block, x) if self.layers > 0 else x


class InitialStackPatchMergingEncoder(nn.Module):
    """Initial downsampling ("stack_conv"): per stage, K conv layers then patch merging."""

    def __init__(self, in_dim, dims, scales, convs, act, padding):
        super().__init__()
        self.convs = list(convs)
        self.conv_block_list = nn.ModuleList()
        self.patch_merge_list = nn.ModuleList()
        for i, (dim, scale, n) in enumerate(zip(dims, scales, convs)):
            prev = in_dim if i == 0 else dims[i - 1]
            self.conv_block_list.append(_conv_block(prev, dim, n, max(1, dim // 4), act))
            self.patch_merge_list.append(PatchMerging3D(dim if n > 0 else prev, dim, (1, scale, scale), padding))

    def out_shapes(self, shape):
        shapes = []
        for merge in self.patch_merge_list:
            shape = merge.out_shape(shape)
            shapes.append(shape)
        return shapes

    def forward(self, x):
        for n, block, merge in zip(self.convs, self.conv_block_list, self.patch_merge_list):
            if n > 0:
                x = _frames_apply(block, x)
            x = merge(x)
        return x


class FinalStackUpsamplingDecoder(nn.Module):
    """Final upsampling ("stack_conv"): per stage, upsample (resize + conv) then K conv layers."""

    def __init__(self, target_shapes, in_dim, convs, act):
        super().__init__()
        self.convs = list(convs)
        self.conv_block_list = nn.ModuleList()
        self.upsample_list = nn.ModuleList()
        for i, (shape, n) in enumerate(zip(target_shapes, convs)):
            prev = in_dim if i == 0 else target_shapes[i - 1][-1]
            out = shape[-1]
            self.upsample_list.append(Upsample3DLayer(prev, prev, shape[1:3]))
            self.conv_block_list.append(_conv_block(prev, out, n, max(1, out // 4), act))

    def forward(self, x):
        for n, block, up in zip(self.convs, self.conv_block_list, self.upsample_list):
            x = up(x)
            if n > 0:
                x = _frames_apply(block, x)
        return x


def _per_block(value, count: int, key: str) -> List:
    if isinstance(value, str):
        return [value] * count
    if isinstance(value, (list, tuple)) and len(value) == count:
        return list(value)
    raise UserError(f"earthformer: {key} must be one pattern name or a list of {count} (one per block), got {value!r}")


class CuboidTransformerEncoder(nn.Module):
    """Blocks of stacked cuboid self-attention with patch merging between them (and global vectors)."""

    def __init__(self, input_shape, block_units, depth, downsample, patterns, num_heads, attn_drop, proj_drop,
                 ffn_drop, ffn_activation, gated_ffn, use_inter_ffn, padding, checkpoint_level, use_relative_pos,
                 use_final_proj, use_global_vector, use_global_vector_ffn, use_global_self_attn,
                 separate_global_qkv, global_dim_ratio):
        super().__init__()
        self.num_blocks, self.use_global_vector = len(depth), use_global_vector
        if self.num_blocks > 1:
            self.down_layers = nn.ModuleList([PatchMerging3D(block_units[i], block_units[i + 1], downsample, padding)
                                              for i in range(self.num_blocks - 1)])
            if use_global_vector:  # default PyTorch initialisation, as the reference
                self.down_layer_global_proj = nn.ModuleList([
                    nn.Linear(global_dim_ratio * block_units[i], global_dim_ratio * block_units[i + 1])
                    for i in range(self.num_blocks - 1)])
        self.mem_shapes = [tuple(input_shape)]
        for i in range(self.num_blocks - 1):
            self.mem_shapes.append(self.down_layers[i].out_shape(self.mem_shapes[-1]))
        blocks = []
        for i in range(self.num_blocks):
            sizes, strategies, shifts = SELF_PATTERNS[patterns[i]](self.mem_shapes[i])
            blocks.append(nn.Sequential(*[
                StackCuboidSelfAttentionBlock(block_units[i], num_heads, sizes, strategies, shifts, padding,
                                              attn_drop, proj_drop, ffn_drop, ffn_activation, gated_ffn,
                                              use_inter_ffn, use_global_vector, use_global_vector_ffn,
                                              use_global_self_attn, separate_global_qkv, global_dim_ratio,
                                              checkpoint_level, use_relative_pos, use_final_proj)
                for _ in range(depth[i])]))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x, global_vectors=None):
        out, global_out = [], []
        for i in range(self.num_blocks):
            if self.use_global_vector:
                for layer in self.blocks[i]:
                    x, global_vectors = layer(x, global_vectors)
                global_out.append(global_vectors)
            else:
                x = self.blocks[i](x)
            out.append(x)
            if i < self.num_blocks - 1:
                x = self.down_layers[i](x)
                if self.use_global_vector:
                    global_vectors = self.down_layer_global_proj[i](global_vectors)
        return out, (global_out if self.use_global_vector else None)


class CuboidTransformerDecoder(nn.Module):
    """From the top block down: stacked cuboid self attention interleaved with cross attention to the
    encoder's memory at the same level, then upsampling to the level below."""

    def __init__(self, t_out, mem_shapes, depth, cross_start, self_patterns, cross_patterns, cross_last_n_frames,
                 num_heads, attn_drop, proj_drop, ffn_drop, ffn_activation, gated_ffn, use_inter_ffn,
                 hierarchical_pos_embed, pos_embed_type, max_temporal_relative, padding, checkpoint_level,
                 use_relative_pos, use_final_proj, use_first_self_attn, use_self_global, self_update_global,
                 use_cross_global, use_global_vector_ffn, use_global_self_attn, separate_global_qkv,
                 global_dim_ratio):
        super().__init__()
        self.num_blocks, self.depth, self.cross_start = len(mem_shapes), list(depth), cross_start
        self.use_first_self_attn, self.hierarchical_pos_embed = use_first_self_attn, hierarchical_pos_embed
        self.use_self_global, self.self_update_global = use_self_global, self_update_global
        self_blocks = []
        for i in range(self.num_blocks):
            count = depth[i] - 1 if (not use_first_self_attn and i == self.num_blocks - 1) else depth[i]
            sizes, strategies, shifts = SELF_PATTERNS[self_patterns[i]](mem_shapes[i])
            self_blocks.append(nn.ModuleList([
                StackCuboidSelfAttentionBlock(mem_shapes[i][-1], num_heads, sizes, strategies, shifts, padding,
                                              attn_drop, proj_drop, ffn_drop, ffn_activation, gated_ffn,
                                              use_inter_ffn, use_self_global, use_global_vector_ffn,
                                              use_global_self_attn, separate_global_qkv, global_dim_ratio,
                                              checkpoint_level, use_relative_pos, use_final_proj)
                for _ in range(count)]))
        self.self_blocks = nn.ModuleList(self_blocks)
        self.cross_blocks = nn.ModuleList()
        for i in range(cross_start, self.num_blocks):
            hws, shifts, strategies, n_temporals = CROSS_PATTERNS[cross_patterns[i]](mem_shapes[i])
            self.cross_blocks.append(nn.ModuleList([
                StackCuboidCrossAttentionBlock(mem_shapes[i][-1], num_heads, hws, shifts, strategies, n_temporals,
                                               padding, cross_last_n_frames, attn_drop, proj_drop, ffn_drop,
                                               ffn_activation, gated_ffn, use_inter_ffn, max_temporal_relative,
                                               checkpoint_level, use_relative_pos, use_cross_global,
                                               separate_global_qkv, global_dim_ratio)
                for _ in range(depth[i])]))
        if self.num_blocks > 1:
            self.upsample_layers = nn.ModuleList([
                Upsample3DLayer(mem_shapes[i + 1][-1], mem_shapes[i][-1], mem_shapes[i][1:3])
                for i in range(self.num_blocks - 1)])
            if hierarchical_pos_embed:
                self.hierarchical_pos_embed_l = nn.ModuleList([
                    PosEmbed(mem_shapes[i][-1], t_out, mem_shapes[i][1], mem_shapes[i][2], pos_embed_type)
                    for i in range(self.num_blocks - 1)])

    def _self(self, i, idx, x, g):
        block = self.self_blocks[i][idx]
        if not self.use_self_global:
            return block(x), g
        x, new_g = block(x, g)
        return x, (new_g if self.self_update_global else g)

    def _cross(self, i, idx, x, mem_l, g):
        if i < self.cross_start:
            return x
        return self.cross_blocks[i - self.cross_start][idx](x, mem_l[i], g)

    def forward(self, x, mem_l, mem_global_l=None):
        for i in range(self.num_blocks - 1, -1, -1):
            g = None if mem_global_l is None else mem_global_l[i]
            if not self.use_first_self_attn and i == self.num_blocks - 1:
                x = self._cross(i, 0, x, mem_l, g)
                for idx in range(self.depth[i] - 1):
                    x, g = self._self(i, idx, x, g)
                    x = self._cross(i, idx + 1, x, mem_l, g)
            else:
                for idx in range(self.depth[i]):
                    x, g = self._self(i, idx, x, g)
                    x = self._cross(i, idx, x, mem_l, g)
            if i > 0:
                x = self.upsample_layers[i - 1](x)
                if self.hierarchical_pos_embed:
                    x = self.hierarchical_pos_embed_l[i - 1](x)
        return x


class EarthformerModel(STModel):
    """Earthformer: ``[B, T_in, C, H, W] -> [B, t_out, C, H, W]``.

    One pass maps the task's ``T_in`` frames to its ``T_out`` frames (the network is built for both);
    a longer horizon rolls out autoregressively on the latest ``T_in`` frames, a shorter one truncates.
    Parameter names are the authors' (``CuboidTransformerModel``), so their checkpoints load as they are.
    """

    def __init__(self, input_shape, target_shape, h: Mapping[str, Any]):
        super().__init__()
        t_in, height, width, c_in = input_shape
        t_out, _, _, c_out = target_shape
        self.t_in, self.t_out = t_in, t_out
        base = h["base_units"]
        self.base_units, self.num_global_vectors = base, h["num_global_vectors"]
        self.global_dim_ratio, self.z_init_method = h["global_dim_ratio"], h["z_init_method"]
        if self.num_global_vectors > 0:
            self.init_global_vectors = nn.Parameter(torch.zeros(self.num_global_vectors, self.global_dim_ratio * base))
            nn.init.trunc_normal_(self.init_global_vectors, std=0.02)
        act, padding = h["initial_downsample_activation"], h["padding_type"]
        if h["initial_downsample_type"] == "conv":
            self.initial_encoder = InitialEncoder(c_in, base, h["initial_downsample_scale"],
                                                  h["initial_downsample_conv_layers"], act, padding)
            self.final_decoder = FinalDecoder((height, width), base, h["final_upsample_conv_layers"], act)
            self.dec_final_proj = nn.Linear(base, c_out)
            enc_shape = self.initial_encoder.out_shape(input_shape)
        else:
            n = h["initial_downsample_stack_conv_num_layers"]
            dims = list(h["initial_downsample_stack_conv_dim_list"] or [base] * n)[:n]
            scales = list(h["initial_downsample_stack_conv_downscale_list"])[:n]
            convs = list(h["initial_downsample_stack_conv_num_conv_list"])
            self.initial_encoder = InitialStackPatchMergingEncoder(c_in, dims, scales, convs, act, padding)
            # the decoder mirrors the encoder's stages, keeping each stage's width (the reference's large_channel)
            out_shapes = self.initial_encoder.out_shapes(tuple(target_shape))
            targets = list(out_shapes[:-1])[::-1] + [tuple(target_shape)]
            targets = [tuple(t[:3]) + (s[-1],) for t, s in zip(targets, out_shapes[::-1])]
            self.final_decoder = FinalStackUpsamplingDecoder(targets, out_shapes[-1][-1], convs[::-1], act)
            self.dec_final_proj = nn.Linear(targets[-1][-1], c_out)
            enc_shape = self.initial_encoder.out_shapes(tuple(input_shape))[-1]
        init_linear(self.dec_final_proj)
        t_enc, h_enc, w_enc = enc_shape[:3]
        depth = list(h["enc_depth"])
        n_blocks = len(depth)
        down = h["downsample"]
        units = h["block_units"] or [base * int((down ** h["scale_alpha"]) ** i) for i in range(n_blocks)]
        use_global = self.num_global_vectors > 0
        # global vectors in the encoder only (the paper's Moving MNIST and SEVIR models): the last encoder
        # attention's global update feeds nothing, as in the reference (DDP must look for it)
        self.unused_parameters = use_global and not (h["use_dec_self_global"] or h["use_dec_cross_global"])
        common = dict(num_heads=h["num_heads"], attn_drop=h["attn_drop"], proj_drop=h["proj_drop"],
                      ffn_drop=h["ffn_drop"], ffn_activation=h["ffn_activation"], gated_ffn=h["gated_ffn"],
                      padding=padding, checkpoint_level=h["checkpoint_level"],
                      use_relative_pos=h["use_relative_pos"], use_final_proj=h["self_attn_use_final_proj"],
                      use_global_vector_ffn=h["use_global_vector_ffn"], use_global_self_attn=h["use_global_self_attn"],
                      separate_global_qkv=h["separate_global_qkv"], global_dim_ratio=self.global_dim_ratio)
        self.encoder = CuboidTransformerEncoder(
            (t_enc, h_enc, w_enc, base), list(units), depth, (1, down, down),
            _per_block(h["self_pattern"], n_blocks, "self_pattern"), use_inter_ffn=h["enc_use_inter_ffn"],
            use_global_vector=use_global, **common)
        self.enc_pos_embed = PosEmbed(base, t_enc, h_enc, w_enc, h["pos_embed_type"])
        mem_shapes = self.encoder.mem_shapes
        top = mem_shapes[-1]
        self.z_proj = nn.Linear(top[-1], top[-1])
        init_linear(self.z_proj)
        self.dec_pos_embed = PosEmbed(top[-1], t_out, top[1], top[2], h["pos_embed_type"])
        self.decoder = CuboidTransformerDecoder(
            t_out, mem_shapes, list(h["dec_depth"]), h["dec_cross_start"],
            _per_block(h["cross_self_pattern"], n_blocks, "cross_self_pattern"),
            _per_block(h["cross_pattern"], n_blocks, "cross_pattern"), h["dec_cross_last_n_frames"],
            use_inter_ffn=h["dec_use_inter_ffn"], hierarchical_pos_embed=h["dec_hierarchical_pos_embed"],
            pos_embed_type=h["pos_embed_type"], max_temporal_relative=t_in + t_out,
            use_first_self_attn=h["dec_use_first_self_attn"], use_self_global=use_global and h["use_dec_self_global"],
            self_update_global=h["dec_self_update_global"], use_cross_global=use_global and h["use_dec_cross_global"],
            **common)

    def initial_z(self, mem: torch.Tensor) -> torch.Tensor:
        b = mem.shape[0]
        if self.z_init_method == "zeros":
            z = torch.zeros((1, self.t_out) + tuple(mem.shape[2:]), dtype=mem.dtype, device=mem.device)
            return self.z_proj(self.dec_pos_embed(z)).expand(b, -1, -1, -1, -1)
        if self.z_init_method == "nearest_interp":
            z = F.interpolate(mem.permute(0, 4, 1, 2, 3), size=(self.t_out,) + tuple(mem.shape[2:4]))
            return self.z_proj(z.permute(0, 2, 3, 4, 1))
        if self.z_init_method == "last":
            z = mem[:, -1:]
        else:
            z = mem.mean(dim=1, keepdim=True)
        return self.z_proj(torch.broadcast_to(z, (b, self.t_out) + tuple(mem.shape[2:])))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The authors' forward: ``[B, T_in, H, W, C] -> [B, T_out, H, W, C_out]`` (channels last)."""
        b = x.shape[0]
        x = self.enc_pos_embed(self.initial_encoder(x))
        if self.num_global_vectors > 0:
            # a copy per clip, not an expand: a view of a parameter passed into a module trips torch's
            # module tracker (FlopCounterMode) under no_grad; the values and gradients are the same
            g = self.init_global_vectors.unsqueeze(0).repeat(b, 1, 1)
            mem_l, mem_global_l = self.encoder(x, g)
        else:
            mem_l, mem_global_l = self.encoder(x)
        out = self.decoder(self.initial_z(mem_l[-1]), mem_l, mem_global_l)
        return self.dec_final_proj(self.final_decoder(out))

    def forward(self, x: torch.Tensor, t_out: int) -> torch.Tensor:
        if x.shape[1] != self.t_in:
            raise UserError(f"earthformer was built for {self.t_in} input frames, got {x.shape[1]}; "
                            f"build it for the task you run")
        frames = x.permute(0, 1, 3, 4, 2)  # [B, T, C, H, W] -> [B, T, H, W, C]
        outputs, made = [], 0
        while made < t_out:
            y = self.predict(frames[:, -self.t_in:])
            outputs.append(y)
            made += y.shape[1]
            if made < t_out:
                frames = torch.cat([frames, y], dim=1)
        return torch.cat(outputs, dim=1)[:, :t_out].permute(0, 1, 4, 2, 3).contiguous()

    def optimizer_param_groups(self, train_cfg):
        """Weight decay on all but LayerNorm parameters and biases (the authors' AdamW groups)."""
        norms = {id(p) for m in self.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()}
        decay, rest = [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            (rest if id(p) in norms or "bias" in name else decay).append(p)
        return [{"params": decay}, {"params": rest, "weight_decay": 0.0}]


# --- building from hyper-parameters, every option checked ------------------------------------------------

def _fail(key: str, value: Any, what: str) -> UserError:
    return UserError(f"earthformer: {key}={value!r} {what}")


def _choice(h, key, choices):
    if h[key] not in choices:
        raise _fail(key, h[key], f"is not supported; choose one of {', '.join(map(str, choices))}")


def _positive_int(h, key, minimum=1):
    value = h[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(key, value, f"must be a whole number >= {minimum}")


def _int_list(h, key, minimum=0, length=None):
    value = h[key]
    if (not isinstance(value, (list, tuple)) or not value
            or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in value)
            or (length is not None and len(value) != length)):
        size = f"{length} " if length is not None else ""
        raise _fail(key, value, f"must be a list of {size}whole numbers >= {minimum}")
    return list(value)


def _scale3(value) -> Optional[tuple]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (1, value, value)
    if isinstance(value, (list, tuple)) and len(value) in (2, 3) and all(isinstance(v, int) for v in value):
        return (1,) + tuple(value) if len(value) == 2 else tuple(value)
    return None


def check_hparams(h: Mapping[str, Any]) -> Dict[str, Any]:
    """The hyper-parameters with every option the published configs use checked; others refused."""
    h = dict(h)
    for key in ("base_units", "num_heads"):
        _positive_int(h, key)
    for key in ("num_global_vectors", "checkpoint_level", "dec_cross_start"):
        _positive_int(h, key, minimum=0)
    _positive_int(h, "global_dim_ratio")
    depth = _int_list(h, "enc_depth", minimum=1)
    _int_list(h, "dec_depth", minimum=1, length=len(depth))
    if h["dec_cross_start"] >= len(depth):
        raise _fail("dec_cross_start", h["dec_cross_start"], f"must be below the number of blocks ({len(depth)})")
    if not h["dec_use_first_self_attn"] and h["dec_depth"][-1] < 1:
        raise _fail("dec_depth", h["dec_depth"], "needs at least 1 in its top block")
    if not isinstance(h["downsample"], int) or isinstance(h["downsample"], bool) or h["downsample"] < 1:
        raise _fail("downsample", h["downsample"], "must be a whole number >= 1 (a spatial factor; time is never merged)")
    _choice(h, "downsample_type", ("patch_merge",))
    _choice(h, "upsample_type", ("upsample",))
    _choice(h, "padding_type", PADDINGS)
    _choice(h, "pos_embed_type", POS_EMBEDS)
    _choice(h, "z_init_method", Z_INITS)
    _choice(h, "norm_layer", ("layer_norm",))
    _choice(h, "ffn_activation", tuple(ACTIVATIONS))
    _choice(h, "initial_downsample_activation", tuple(ACTIVATIONS))
    _choice(h, "initial_downsample_type", DOWNSAMPLES)
    for key in ("attn_linear_init_mode", "ffn_linear_init_mode", "conv_init_mode", "down_up_linear_init_mode",
                "norm_init_mode"):
        _choice(h, key, ("0",))
    for key in ("attn_drop", "proj_drop", "ffn_drop"):
        if not isinstance(h[key], (int, float)) or not 0 <= h[key] < 1:
            raise _fail(key, h[key], "must be a probability in [0, 1)")
    for key in ("self_pattern", "cross_self_pattern"):
        for name in _per_block(h[key], len(depth), key):
            if name not in SELF_PATTERNS:
                raise _fail(key, name, f"is not a cuboid self-attention pattern{nearest(name, SELF_PATTERNS)}; known: "
                            f"axial, full, divided_st, video_swin, video_swin_PxM (P 1/2/4/8/10, M 1..32), "
                            f"spatial_lg_v1, spatial_lg_M, axial_space_dilate_K (K 2/4/8)")
    for name in _per_block(h["cross_pattern"], len(depth), "cross_pattern"):
        if name not in CROSS_PATTERNS:
            raise _fail("cross_pattern", name, f"is not a cuboid cross-attention pattern{nearest(name, CROSS_PATTERNS)}; "
                        f"known: cross_KxK, cross_KxK_lg, cross_KxK_heter (K 1/2/4/8)")
    if h["global_dim_ratio"] != 1 and not h["separate_global_qkv"]:
        raise _fail("global_dim_ratio", h["global_dim_ratio"], "other than 1 needs separate_global_qkv: true")
    if h["dec_cross_last_n_frames"] is not None:
        _positive_int(h, "dec_cross_last_n_frames")
    if h["block_units"] is not None:
        units = _int_list(h, "block_units", minimum=1, length=len(depth))
        if units[0] != h["base_units"]:
            raise _fail("block_units", units, f"must start with base_units ({h['base_units']})")
    else:
        units = [h["base_units"] * int((h["downsample"] ** h["scale_alpha"]) ** i) for i in range(len(depth))]
    for u in units:
        if u % h["num_heads"]:
            raise _fail("num_heads", h["num_heads"], f"must divide every block's width ({units})")
    if h["initial_downsample_type"] == "conv":
        scale = _scale3(h["initial_downsample_scale"])
        if scale is None or min(scale) < 1:
            raise _fail("initial_downsample_scale", h["initial_downsample_scale"],
                        "must be a whole number or a list of 2 (h, w) or 3 (t, h, w) whole numbers >= 1")
        if scale[0] != 1:
            raise _fail("initial_downsample_scale", h["initial_downsample_scale"],
                        "merges time, which the final decoder cannot undo (the reference fails too); use 1 for t")
        h["initial_downsample_scale"] = scale
        _positive_int(h, "initial_downsample_conv_layers", minimum=0)
        _positive_int(h, "final_upsample_conv_layers", minimum=0)
        if h["base_units"] % 16:
            raise _fail("base_units", h["base_units"], "must be a multiple of 16 with initial_downsample_type conv "
                        "(its GroupNorm has 16 groups)")
    else:
        n = h["initial_downsample_stack_conv_num_layers"]
        _positive_int(h, "initial_downsample_stack_conv_num_layers")
        _int_list(h, "initial_downsample_stack_conv_downscale_list", minimum=1)
        convs = _int_list(h, "initial_downsample_stack_conv_num_conv_list", minimum=0, length=n)
        dims = h["initial_downsample_stack_conv_dim_list"] or [h["base_units"]] * n
        if len(h["initial_downsample_stack_conv_downscale_list"]) < n or len(dims) < n:
            raise _fail("initial_downsample_stack_conv_num_layers", n,
                        "needs that many entries in the dim and downscale lists")
        if dims[n - 1] != h["base_units"]:
            raise _fail("initial_downsample_stack_conv_dim_list", dims, f"must end with base_units ({h['base_units']})")
        if 0 in convs:
            raise _fail("initial_downsample_stack_conv_num_conv_list", convs, "needs at least one conv per stage "
                        "(the final decoder's widths assume it)")
    return h


def build_model(task, hparams: Mapping[str, Any]) -> EarthformerModel:
    """Earthformer for ``task``: input ``(T_in, H, W, C)`` and target ``(T_out, H, W, C)``."""
    c, height, width = task.shape
    h = check_hparams(hparams)
    return EarthformerModel((task.t_in, height, width, c), (task.t_out, height, width, c), h)
