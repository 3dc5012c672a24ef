"""Sub-networks of a trained Whisper taken as a super-network, without retraining: elastic
encoder/decoder depth (the first k blocks), encoder attention heads (the first h heads of
every encoder block) and FFN width (the first w hidden units), by slicing weights."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class SubnetConfig:
    """Depths in blocks, encoder heads per block, FFN hidden units (encoder, decoder)."""

    enc_depth: int
    dec_depth: int
    enc_heads: int
    enc_ffn: int
    dec_ffn: int


def _keep_rows(lin: nn.Linear, n: int) -> nn.Linear:
    out = nn.Linear(lin.in_features, n, bias=lin.bias is not None)
    with torch.no_grad():
        out.weight.copy_(lin.weight[:n])
        if lin.bias is not None:
            out.bias.copy_(lin.bias[:n])
    return out


def _keep_cols(lin: nn.Linear, n: int) -> nn.Linear:
    out = nn.Linear(n, lin.out_features, bias=lin.bias is not None)
    with torch.no_grad():
        out.weight.copy_(lin.weight[:, :n])
        if lin.bias is not None:
            out.bias.copy_(lin.bias)
    return out


def slice_whisper(model: nn.Module, cfg: SubnetConfig) -> nn.Module:
    """A sliced deep copy of a transformers Whisper (the original is untouched)."""
    c = model.config
    limits = {"enc_depth": c.encoder_layers, "dec_depth": c.decoder_layers,
              "enc_heads": c.encoder_attention_heads, "enc_ffn": c.encoder_ffn_dim,
              "dec_ffn": c.decoder_ffn_dim}  # fmt: skip
    for k, hi in limits.items():
        if not 1 <= getattr(cfg, k) <= hi:
            raise ValueError(f"{k}={getattr(cfg, k)} is outside 1..{hi}")
    m = copy.deepcopy(model)
    enc, dec = m.model.encoder, m.model.decoder
    enc.layers = enc.layers[: cfg.enc_depth]
    dec.layers = dec.layers[: cfg.dec_depth]
    m.config.encoder_layers, m.config.decoder_layers = cfg.enc_depth, cfg.dec_depth
    for layer in enc.layers:
        attn = layer.self_attn
        width = cfg.enc_heads * attn.head_dim
        for name in ("q_proj", "k_proj", "v_proj"):
            setattr(attn, name, _keep_rows(getattr(attn, name), width))
        attn.out_proj = _keep_cols(attn.out_proj, width)
        attn.num_heads = cfg.enc_heads
    for layers, ffn in ((enc.layers, cfg.enc_ffn), (dec.layers, cfg.dec_ffn)):
        for layer in layers:
            layer.fc1 = _keep_rows(layer.fc1, ffn)
            layer.fc2 = _keep_cols(layer.fc2, ffn)
    return m.eval()


def block_params(model: nn.Module) -> int:
    """Parameters inside the encoder and decoder blocks (what slicing changes)."""
    return sum(
        p.numel()
        for stack in (model.model.encoder.layers, model.model.decoder.layers)
        for p in stack.parameters()
    )


__all__ = ["SubnetConfig", "block_params", "slice_whisper"]
