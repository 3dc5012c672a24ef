"""Load a CTranslate2 / faster-whisper Whisper checkpoint as frugal's Whisper modules.

The conversion is in memory: model.bin variables are mapped onto transformers' parameter names,
which `frugal.models.whisper_modules` shares (fused q/k/v split apart, k bias zero, output
projection tied to the decoder embeddings), and loaded strictly, so a missing or extra tensor is
an error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from frugal.models.ct2_format import CT2FormatError, CT2Model, read_ct2_model
from frugal.models.whisper_features import LogMel
from frugal.models.whisper_modules import WhisperDims, WhisperGeneration, WhisperNet
from frugal.models.whisper_tokenizer import WhisperTokenizer, missing_merges

MULTILINGUAL_MIN_VOCAB = 51865  # OpenAI's rule: the multilingual vocabulary has 51865+ tokens.


def _count_layers(ct2: CT2Model, prefix: str) -> int:
    n = 0
    while f"{prefix}/layer_{n}/ffn/linear_0/weight" in ct2:
        n += 1
    return n


def whisper_config_from_ct2(ct2: CT2Model, token_ids: dict[str, int]) -> WhisperDims:
    """Whisper's shapes, read off the model.bin variables."""
    vocab, d_model = ct2["decoder/embeddings/weight"].shape
    return WhisperDims(
        vocab_size=int(vocab),
        num_mel_bins=int(ct2["encoder/conv1/weight"].shape[1]),
        d_model=int(d_model),
        encoder_layers=_count_layers(ct2, "encoder"),
        decoder_layers=_count_layers(ct2, "decoder"),
        encoder_attention_heads=int(ct2.scalar("encoder/num_heads")),
        decoder_attention_heads=int(ct2.scalar("decoder/num_heads")),
        encoder_ffn_dim=int(ct2["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        decoder_ffn_dim=int(ct2["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(ct2["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(ct2["decoder/position_encodings/encodings"].shape[0]),
        pad_token_id=token_ids["eot"],
        bos_token_id=token_ids["eot"],
        eos_token_id=token_ids["eot"],
        decoder_start_token_id=token_ids["sot"],
        tie_word_embeddings=True,
        scale_embedding=False,
        activation_function="gelu",
    )


@dataclass(frozen=True)
class Entry:
    """One CTranslate2 variable group and the transformers tensors it holds. `kind`:
    "linear" (weight + bias; several modules are stacked along the rows, a missing bias is
    zero), "conv" (weight + bias of a Conv1d), "norm" (gamma/beta = weight/bias) or
    "tensor" (one tensor, `ct2` is the full variable name)."""

    ct2: str
    kind: str
    hf: tuple[str, ...]


def _block(src: str, dst: str, cross: bool) -> list[Entry]:
    """One transformer layer: self-attention, (for the decoder) cross-attention, FFN."""
    qkv = tuple(f"{dst}.self_attn.{n}" for n in ("q_proj", "k_proj", "v_proj"))
    out = [
        Entry(f"{src}/self_attention/linear_0", "linear", qkv),
        Entry(f"{src}/self_attention/linear_1", "linear", (f"{dst}.self_attn.out_proj",)),
        Entry(f"{src}/self_attention/layer_norm", "norm", (f"{dst}.self_attn_layer_norm",)),
    ]
    if cross:
        kv = (f"{dst}.encoder_attn.k_proj", f"{dst}.encoder_attn.v_proj")
        out += [
            Entry(f"{src}/attention/linear_0", "linear", (f"{dst}.encoder_attn.q_proj",)),
            Entry(f"{src}/attention/linear_1", "linear", kv),
            Entry(f"{src}/attention/linear_2", "linear", (f"{dst}.encoder_attn.out_proj",)),
            Entry(f"{src}/attention/layer_norm", "norm", (f"{dst}.encoder_attn_layer_norm",)),
        ]
    out += [
        Entry(f"{src}/ffn/linear_0", "linear", (f"{dst}.fc1",)),
        Entry(f"{src}/ffn/linear_1", "linear", (f"{dst}.fc2",)),
        Entry(f"{src}/ffn/layer_norm", "norm", (f"{dst}.final_layer_norm",)),
    ]
    return out


def whisper_layout(encoder_layers: int, decoder_layers: int) -> list[Entry]:
    """Where every transformers Whisper parameter lives in a CTranslate2 WhisperSpec; the
    reader (`whisper_state_dict_from_ct2`) and the writer (`frugal.models.ct2_writer`) both
    walk this list, so they are inverses by construction."""
    enc, dec = "model.encoder", "model.decoder"
    out = [
        Entry("encoder/conv1", "conv", (f"{enc}.conv1",)),
        Entry("encoder/conv2", "conv", (f"{enc}.conv2",)),
        Entry("encoder/position_encodings/encodings", "tensor", (f"{enc}.embed_positions.weight",)),
        Entry("encoder/layer_norm", "norm", (f"{enc}.layer_norm",)),
    ]
    for i in range(encoder_layers):
        out += _block(f"encoder/layer_{i}", f"{enc}.layers.{i}", cross=False)
    out += [
        Entry("decoder/embeddings/weight", "tensor", (f"{dec}.embed_tokens.weight",)),
        Entry("decoder/position_encodings/encodings", "tensor", (f"{dec}.embed_positions.weight",)),
        Entry("decoder/layer_norm", "norm", (f"{dec}.layer_norm",)),
    ]
    for i in range(decoder_layers):
        out += _block(f"decoder/layer_{i}", f"{dec}.layers.{i}", cross=True)
    return out


def whisper_state_dict_from_ct2(ct2: CT2Model, config: WhisperDims) -> dict[str, torch.Tensor]:
    """Map CTranslate2 variable names onto transformers' Whisper parameter names (float32)."""
    sd: dict[str, np.ndarray] = {}
    w = ct2.float_weight
    for e in whisper_layout(config.encoder_layers, config.decoder_layers):
        if e.kind == "tensor":
            sd[e.hf[0]] = w(e.ct2)
        elif e.kind == "norm":
            sd[f"{e.hf[0]}.weight"] = w(f"{e.ct2}/gamma")
            sd[f"{e.hf[0]}.bias"] = w(f"{e.ct2}/beta")
        else:
            weights = np.split(w(f"{e.ct2}/weight"), len(e.hf), axis=0)
            biases = np.split(w(f"{e.ct2}/bias"), len(e.hf), axis=0)
            for name, ww, bb in zip(e.hf, weights, biases, strict=True):
                sd[f"{name}.weight"] = ww
                if name.endswith("k_proj"):  # transformers' Whisper has no key bias
                    if np.abs(bb).max() > 0:
                        raise CT2FormatError("non-zero key bias: transformers' Whisper has none")
                else:
                    sd[f"{name}.bias"] = bb
    if "decoder/projection/weight" in ct2 and not _same_weight(
        ct2, "decoder/projection/weight", "decoder/embeddings/weight"
    ):
        raise CT2FormatError("output projection differs from decoder embeddings (untied)")
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in sd.items()}


def _same_weight(ct2: CT2Model, a: str, b: str) -> bool:
    """Whether two weights hold the same values: compared as stored (with their scales) when
    they share a storage type, which costs no float32 copy of a vocabulary-sized matrix."""
    if ct2.aliases.get(a, a) == ct2.aliases.get(b, b):
        return True
    wa, wb = ct2[a], ct2[b]
    if ct2.dtypes.get(ct2.aliases.get(a, a)) != ct2.dtypes.get(ct2.aliases.get(b, b)):
        return np.array_equal(ct2.float_weight(a), ct2.float_weight(b))
    scales = [n.rsplit("/", 1)[0] + "/weight_scale" for n in (a, b)]
    have = [n in ct2 for n in scales]
    if wa.dtype.kind == "i" and any(have):
        same_scales = all(have) and np.array_equal(ct2[scales[0]], ct2[scales[1]])
        if not same_scales:
            return False
    return np.array_equal(wa, wb)


def special_token_ids(tokenizer: WhisperTokenizer, vocab_size: int) -> dict[str, int]:
    """Ids of Whisper's special tokens, read from the tokenizer (they shift by one between
    English-only and multilingual vocabularies, so none is hard-coded)."""
    names = {
        "eot": "<|endoftext|>",
        "sot": "<|startoftranscript|>",
        "translate": "<|translate|>",
        "transcribe": "<|transcribe|>",
        "sot_lm": "<|startoflm|>",
        "sot_prev": "<|startofprev|>",
        "no_speech": "<|nospeech|>",
        "no_timestamps": "<|notimestamps|>",
    }
    ids = {}
    for key, tok in names.items():
        tid = tokenizer.convert_tokens_to_ids(tok)
        if key == "no_speech" and (tid is None or tid == tokenizer.unk_token_id):
            tid = tokenizer.convert_tokens_to_ids("<|nocaptions|>")
        if tid is None or (tid == tokenizer.unk_token_id and key != "eot"):
            raise CT2FormatError(f"tokenizer lacks Whisper special token {tok}")
        ids[key] = int(tid)
    ids["timestamp_begin"] = ids["no_timestamps"] + 1
    if ids["timestamp_begin"] > vocab_size:
        raise CT2FormatError("tokenizer and model vocabulary disagree")
    return ids


def language_ids(tokenizer: WhisperTokenizer, ids: dict[str, int]) -> dict[str, int]:
    """`<|xx|>` language tokens, which lie between start-of-transcript and translate."""
    out = {}
    for tid in range(ids["sot"] + 1, ids["translate"]):
        tok = tokenizer.convert_ids_to_tokens(tid)
        if isinstance(tok, str) and tok.startswith("<|") and tok.endswith("|>"):
            out[tok] = tid
    return out


def generation_config_for(
    ids: dict[str, int], config: WhisperDims, ct2_config: dict, tokenizer: WhisperTokenizer
) -> WhisperGeneration:
    """Whisper generation settings from CTranslate2's config.json and the tokenizer."""
    multilingual = config.vocab_size >= MULTILINGUAL_MIN_VOCAB
    heads = ct2_config.get("alignment_heads") or []
    return WhisperGeneration(
        decoder_start_token_id=ids["sot"],
        bos_token_id=ids["eot"],
        eos_token_id=ids["eot"],
        pad_token_id=ids["eot"],
        max_length=config.max_target_positions,
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [ids["eot"]])),
        alignment_heads=[list(h) for h in heads],
        no_timestamps_token_id=ids["no_timestamps"],
        prev_sot_token_id=ids["sot_prev"],
        max_initial_timestamp_index=50,
        is_multilingual=multilingual,
        lang_to_id=language_ids(tokenizer, ids) if multilingual else {},
        task_to_id={"transcribe": ids["transcribe"], "translate": ids["translate"]}
        if multilingual
        else {},
        return_timestamps=False,
    )


def load_ct2_whisper(
    folder: str | Path, model_parts: Sequence[str | Path] | None = None
) -> tuple[WhisperNet, WhisperTokenizer, LogMel, dict[str, int]]:
    """Load a faster-whisper folder (model.bin, config.json, tokenizer.json) as frugal's Whisper
    modules. `model_parts` replaces model.bin when the checkpoint is split across files."""
    folder = Path(folder)
    for needed in ("config.json", "tokenizer.json"):
        if not (folder / needed).is_file():
            raise FileNotFoundError(f"{folder}: no {needed} (not a faster-whisper model folder)")
    ct2 = read_ct2_model(model_parts or folder / "model.bin")
    if ct2.spec != "WhisperSpec":
        raise CT2FormatError(f"{folder}: spec {ct2.spec!r} is not a Whisper model (WhisperSpec)")
    ct2_config = json.loads((folder / "config.json").read_text())
    tokenizer = WhisperTokenizer.from_file(folder / "tokenizer.json")
    vocab = int(ct2["decoder/embeddings/weight"].shape[0])
    ids = special_token_ids(tokenizer, vocab)
    config = whisper_config_from_ct2(ct2, ids)
    generation = generation_config_for(ids, config, ct2_config, tokenizer)
    model = WhisperNet.from_state_dict(config, whisper_state_dict_from_ct2(ct2, config), generation)
    return model, tokenizer, LogMel(config.num_mel_bins), ids


__all__ = ["load_ct2_whisper", "missing_merges", "special_token_ids", "whisper_layout"]
