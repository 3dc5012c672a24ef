"""A transformers causal LM built from a GGUF file: the config from its metadata, the weights
dequantized to float32, the tokenizer from its vocabulary.

transformers can read a GGUF file itself (`from_pretrained(gguf_file=...)`) but parses the file
twice with the `gguf` package's slow reader and rebuilds gguf's tensor-name table once per module
(~15 s for SmolLM2-135M). This reads the file once with `gguf_file.GGUFFile` and takes from
transformers only its tables (metadata key -> config key, per-architecture weight fixes such as
llama.cpp's Q/K row permutation and Gemma's norm offset) and its GGUF tokenizer builder, so the
model is the one transformers would build (tests/models/test_gguf_lm.py holds them equal)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from frugal.models.gguf_file import GGUFError, GGUFFile, type_name
from frugal.models.optional import require

# llama.cpp architecture name -> transformers model_type (for the families frugal studies)
ARCHITECTURES = {"llama": "llama", "qwen2": "qwen2", "gemma3": "gemma3_text"}


def gguf_config(gguf: GGUFFile) -> dict[str, Any]:
    """transformers config keys read from the file's metadata, as transformers' GGUF loader
    reads them (its key table; tied embeddings when the file stores no `output.weight`)."""
    from transformers.integrations import GGUF_CONFIG_DEFAULTS_MAPPING, GGUF_CONFIG_MAPPING

    arch = gguf.architecture
    if arch not in ARCHITECTURES:
        raise GGUFError(
            f"{gguf.path}: architecture {arch!r}; frugal builds {', '.join(ARCHITECTURES)}"
        )
    config: dict[str, Any] = dict(GGUF_CONFIG_DEFAULTS_MAPPING.get(arch, {}))
    for key, value in gguf.metadata.items():
        prefix, _, rest = key.partition(".")
        if prefix in (arch, "tokenizer") and GGUF_CONFIG_MAPPING[prefix].get(rest) is not None:
            config[GGUF_CONFIG_MAPPING[prefix][rest]] = value  # special token ids included
    config["model_type"] = ARCHITECTURES[arch]
    config["tie_word_embeddings"] = "output.weight" not in gguf.tensors
    if "vocab_size" not in config and "tokenizer.ggml.tokens" in gguf.metadata:
        config["vocab_size"] = len(gguf.metadata["tokenizer.ggml.tokens"])
    return config


def _name_map(arch: str, model) -> dict[str, str]:
    """GGUF tensor name -> the model's parameter name, from gguf's table built once."""
    import gguf as gguf_pkg

    arch_id = next(k for k, v in gguf_pkg.MODEL_ARCH_NAMES.items() if v == arch)
    table = gguf_pkg.get_tensor_name_map(arch_id, model.config.num_hidden_layers)
    mapping = {}
    for hf_name in model.state_dict():
        base, _, suffix = hf_name.rpartition(".")
        for prefix in ("", "model."):  # gguf's table holds the inner model's names too
            if base.startswith(prefix) and (found := table.get_name(base[len(prefix) :])):
                mapping[f"{found}.{suffix}"] = hf_name
                break
    return mapping


def build_causal_lm(path: str | Path, log=None):
    """(transformers model in float32, note) from a GGUF file. The note says which ggml types
    the weights were stored on: the dequantized model is the reference, not a full-precision
    one."""
    import torch

    hf = require("transformers", "reading a GGUF language model")
    require("gguf", "reading a GGUF language model")
    from transformers.initialization import no_init_weights
    from transformers.modeling_gguf_pytorch_utils import TENSOR_PROCESSORS, TensorProcessor

    with GGUFFile(path) as gguf:
        config_dict = gguf_config(gguf)
        config = hf.AutoConfig.for_model(**config_dict)
        with no_init_weights():
            model = hf.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        processor = TENSOR_PROCESSORS.get(gguf.architecture, TensorProcessor)(config=config_dict)
        names = _name_map(gguf.architecture, model)
        state = {}
        for name in gguf.tensors:
            if name not in names:
                raise GGUFError(
                    f"{gguf.path}: tensor {name} has no place in {type(model).__name__}"
                )
            weights = processor.process(weights=gguf.dequantized(name), name=name).weights
            state[names[name]] = torch.from_numpy(np.ascontiguousarray(weights, np.float32))
        counts = gguf.type_counts()
    # assign: the dequantized arrays become the parameters (no second copy of the model)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    missing = [m for m in missing if not (config.tie_word_embeddings and m == "lm_head.weight")]
    if missing or unexpected:
        raise GGUFError(f"{path}: weights missing {missing[:3]}, unexpected {unexpected[:3]}")
    if config.tie_word_embeddings:
        model.tie_weights()
    model.eval()
    note = "GGUF tensors: " + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items()))
    if log:
        log(note)
    return model, note


def gguf_tokenizer(path: str | Path):
    """The tokenizer a GGUF file describes, of the class `AutoTokenizer` picks for it (read
    through transformers' fast metadata reader: `AutoTokenizer` itself first rebuilds a llama
    config with the slow one, ~6 s for SmolLM2)."""
    hf = require("transformers", "reading a GGUF language model")
    from transformers.models.auto.tokenization_auto import (
        TOKENIZER_MAPPING_NAMES,
        tokenizer_class_from_name,
    )

    path = Path(path)
    with GGUFFile(path) as gguf:
        arch = gguf.architecture
    if arch not in ARCHITECTURES:
        raise GGUFError(f"{path}: architecture {arch!r}; frugal builds {', '.join(ARCHITECTURES)}")
    name = TOKENIZER_MAPPING_NAMES.get(ARCHITECTURES[arch])
    cls = tokenizer_class_from_name(name) if name else hf.TokenizersBackend
    return cls.from_pretrained(str(path.parent), gguf_file=path.name)


def type_histogram(path: str | Path) -> dict[str, int]:
    """ggml type name -> number of tensors stored on it."""
    with GGUFFile(path) as gguf:
        return gguf.type_counts()


__all__ = ["ARCHITECTURES", "build_causal_lm", "gguf_config", "gguf_tokenizer", "type_name"]
