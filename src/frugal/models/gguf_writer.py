"""Write a transformers causal LM (Llama, Qwen2, Gemma 3) as a GGUF file llama.cpp reads.

The inverse of `gguf_lm.build_causal_lm`: parameter names through gguf's name table, llama.cpp's
Q/K row permutation for Llama, Gemma's (1 + w) norm convention, hyper-parameters under
llama.cpp's metadata keys. Each tensor is written in the ggml type asked for: plain (F32, F16),
quantized by the `gguf` package's reference quantizer (llama.cpp's round-to-nearest), or, for
a weight frugal already put on a Q4_0 / Q8_0 grid, encoded from its values without re-rounding
(`formats.gguf_blocks`), so the file holds exactly frugal's weights."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from frugal.models.gguf_file import F16, F32, PLAIN_TYPES, GGUFError
from frugal.models.optional import require

# keys GGUFWriter writes itself, or that describe another file's tensors
SET_BY_WRITER = {"general.architecture", "general.alignment", "general.file_type"}

# transformers model_type -> llama.cpp architecture
LLAMA_CPP_ARCH = {"llama": "llama", "qwen2": "qwen2", "gemma3_text": "gemma3"}


def _permute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """transformers' rotary layout -> llama.cpp's (the rows of each head interleaved)."""
    rows = w.shape[0] // n_head // 2
    return w.reshape(n_head, 2, rows, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_tensors(model) -> dict[str, tuple[str, np.ndarray]]:
    """GGUF name -> (parameter name, float32 array in llama.cpp's layout) for every stored
    tensor of `model` (a tied output projection is not stored)."""
    import gguf

    config = model.config
    arch = LLAMA_CPP_ARCH.get(config.model_type)
    if arch is None:
        raise GGUFError(
            f"model type {config.model_type!r}: frugal writes GGUF for {', '.join(LLAMA_CPP_ARCH)}"
        )
    arch_id = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)
    table = gguf.get_tensor_name_map(arch_id, config.num_hidden_layers)
    out = {}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        base, _, suffix = name.rpartition(".")
        target = table.get_name(base)
        if target is None:
            raise GGUFError(f"parameter {name} has no GGUF name for architecture {arch}")
        w = tensor.detach().float().numpy().copy()
        if arch == "llama" and target.endswith("attn_q"):
            w = _permute_qk(w, config.num_attention_heads)
        elif arch == "llama" and target.endswith("attn_k"):
            w = _permute_qk(w, config.num_key_value_heads)
        elif arch == "gemma3" and target.endswith("norm"):
            w = w + 1.0  # Gemma's RMSNorm multiplies by (1 + w); llama.cpp stores 1 + w
        out[f"{target}.{suffix}"] = (name, w)
    return out


def _hyperparameters(writer, config, arch: str) -> None:
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    theta = getattr(config, "rope_theta", None)
    if theta is None:  # transformers 5 keeps it in rope_parameters
        theta = (getattr(config, "rope_parameters", None) or {}).get("rope_theta")
    if theta is not None:
        writer.add_rope_freq_base(float(theta))
    writer.add_vocab_size(config.vocab_size)
    if arch == "llama":
        writer.add_rope_dimension_count(head_dim)
    if arch == "gemma3":
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
        if getattr(config, "sliding_window", None):
            writer.add_sliding_window(config.sliding_window)


def write_gguf(
    model,
    path: str | Path,
    types: Callable[[str, np.ndarray], int] | Mapping[str, int] | None = None,
    exact: Collection[str] = (),
    metadata: Mapping[str, Any] | None = None,
    name: str | None = None,
    value_types: Mapping[str, tuple[int, int | None]] | None = None,
) -> Path:
    """Write `model` to `path`. `types` gives each GGUF tensor's ggml type (a mapping by GGUF
    name, or a function of (GGUF name, array)); F32 by default, vectors always F32. Tensors
    named in `exact` already sit on their type's grid (Q4_0 or Q8_0) and are encoded from
    their values (NotOnGridError if they do not). `metadata` adds keys (a tokenizer's
    `tokenizer.ggml.*`), in the GGUF types `value_types` gives (as `GGUFFile.value_types`
    reads them) or else as their Python type implies; keys for the architecture's
    hyper-parameters that `metadata` holds replace those read from the model's config."""
    gguf = require("gguf", "writing GGUF files")
    import torch
    from gguf.constants import GGMLQuantizationType
    from gguf.quants import quantize

    from frugal.formats.gguf_blocks import ENCODERS

    path = Path(path)
    arch = LLAMA_CPP_ARCH.get(model.config.model_type, "")
    tensors = gguf_tensors(model)
    exact = set(exact)
    if exact - set(tensors):
        raise GGUFError(f"exact tensors the model lacks: {sorted(exact - set(tensors))[:3]}")
    writer = gguf.GGUFWriter(str(path), arch)
    try:
        metadata = {k: v for k, v in (metadata or {}).items() if k not in SET_BY_WRITER}
        if "general.name" not in metadata:
            writer.add_name(name or model.config.model_type)
        if not any(k.startswith(f"{arch}.") for k in metadata):
            _hyperparameters(writer, model.config, arch)
        for key, value in metadata.items():
            _add_value(writer, key, value, (value_types or {}).get(key))
        for gname, (_, w) in tensors.items():
            ggml_type = types(gname, w) if callable(types) else (types or {}).get(gname, F32)
            if w.ndim < 2:
                ggml_type = F32  # norms and biases stay float (as llama.cpp's quantizer keeps them)
            if gname in exact:
                if ggml_type not in ENCODERS:
                    raise GGUFError(f"{gname}: frugal encodes Q4_0 and Q8_0, not {ggml_type}")
                raw = ENCODERS[ggml_type].encode(torch.from_numpy(w)).numpy()
                writer.add_tensor(gname, raw, raw_dtype=GGMLQuantizationType(ggml_type))
            elif ggml_type in (F32, F16):
                writer.add_tensor(gname, w.astype(PLAIN_TYPES[ggml_type]))
            else:
                qt = GGMLQuantizationType(ggml_type)
                writer.add_tensor(gname, quantize(w, qt), raw_dtype=qt)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return path


def _add_value(writer, key: str, value: Any, types: tuple[int, int | None] | None) -> None:
    if types is not None:
        from gguf.constants import GGUFValueType

        vtype, element = types
        sub = GGUFValueType(element) if element is not None else None
        writer.add_key_value(key, value, GGUFValueType(vtype), sub_type=sub)
    elif isinstance(value, bool):
        writer.add_bool(key, value)
    elif isinstance(value, int):
        writer.add_uint32(key, value) if value >= 0 else writer.add_int32(key, value)
    elif isinstance(value, float):
        writer.add_float32(key, value)
    elif isinstance(value, str):
        writer.add_string(key, value)
    elif isinstance(value, list | tuple):
        writer.add_array(key, list(value))
    else:
        raise GGUFError(f"metadata {key}: cannot write a {type(value).__name__}")


__all__ = ["LLAMA_CPP_ARCH", "gguf_tensors", "write_gguf"]
