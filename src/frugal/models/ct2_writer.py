"""Write a frugal Whisper as a CTranslate2 / faster-whisper folder: model.bin (binary
version 6, the layout `frugal.models.ct2_format` reads), config.json, vocabulary.json,
tokenizer.json and preprocessor_config.json.

Quantization as CTranslate2 names it: float32, float16, bfloat16, or int8 / int8_float32 /
int8_float16 (int8 weights with one float32 scale per row, w = q / scale, for every Linear,
convolution and the embeddings; other tensors in float32, or float16 for int8_float16, or for
int8 in fp16 when that is lossless). A weight already on frugal's int8 per-channel grid
(k·s, s in fp16) keeps its codes k exactly (scale = 1/s); any other weight is quantized with
CTranslate2's own rule (scale = 127 / max|row|) and the error that adds is reported."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from frugal.formats.packing import NotPackableError, pack
from frugal.models.ct2_format import CT2_DTYPE_NAMES
from frugal.models.whisper import WhisperASR
from frugal.models.whisper_ct2 import whisper_layout
from frugal.nn.native import int8_codes

QUANTIZATIONS = ("float32", "float16", "bfloat16", "int8", "int8_float32", "int8_float16")
SPEC, REVISION, VERSION = "WhisperSpec", 3, 6
_CODES = {name: code for code, name in CT2_DTYPE_NAMES.items()}


@dataclass
class Variable:
    """A variable to write: its values and CTranslate2 dtype name."""

    data: np.ndarray
    dtype: str


@dataclass
class ExportReport:
    """What an export did: per quantized weight, whether its int8 codes carried over exactly
    and the relative RMS error the file's values add to frugal's (0 when exact)."""

    quantization: str
    exact: list[str] = field(default_factory=list)
    requantized: dict[str, float] = field(default_factory=dict)
    float_error: dict[str, float] = field(default_factory=dict)

    def worst(self) -> float:
        """Largest relative RMS error added to any tensor."""
        return max([0.0, *self.requantized.values(), *self.float_error.values()])


def _bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (round to nearest even), as uint16."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(torch.bfloat16)
    return t.view(torch.int16).numpy().view(np.uint16)


def _rel_rms(a: np.ndarray, b: np.ndarray) -> float:
    ref = float(np.sqrt(np.mean(np.square(b, dtype=np.float64))))
    err = float(np.sqrt(np.mean(np.square(a.astype(np.float64) - b))))
    return err / ref if ref > 0 else err


def int8_rows(w: torch.Tensor, name: str, report: ExportReport) -> tuple[np.ndarray, np.ndarray]:
    """int8 codes and CTranslate2 scales (w ≈ q / scale) of a 2-D or 3-D weight."""
    w2 = w.detach().float().reshape(w.shape[0], -1)
    try:
        codes, s = int8_codes(pack(w2, "int8_pc"))
        q = codes.numpy().reshape(w.shape)
        s = s.numpy()
        scale = np.where(s > 0, 1.0 / np.where(s > 0, s, 1), 127.0).astype(np.float32)
        report.exact.append(name)
        return q, scale
    except NotPackableError:
        pass
    value = w2.numpy().copy()  # CTranslate2's rule, step for step in float32
    amax = np.amax(np.absolute(value), axis=1)
    amax[amax == 0] = 127.0
    amax = np.maximum(amax, np.float32(127) / np.finfo(np.float32).max)
    scale = (127.0 / amax).astype(np.float32)
    q = np.rint(value * scale[:, None]).astype(np.int8)
    report.requantized[name] = _rel_rms(q.astype(np.float32) / scale[:, None], w2.numpy())
    return q.reshape(w.shape), scale


def _float_var(x: np.ndarray, dtype: str, name: str, report: ExportReport) -> Variable:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if dtype == "float16":
        y = x.astype(np.float16)
        if not np.array_equal(y.astype(np.float32), x):
            report.float_error[name] = _rel_rms(y.astype(np.float32), x)
        return Variable(y, "float16")
    if dtype == "bfloat16":
        bits = _bf16_bits(x)
        back = (bits.astype(np.uint32) << 16).view(np.float32)
        if not np.array_equal(back, x):
            report.float_error[name] = _rel_rms(back, x)
        return Variable(bits, "bfloat16")
    return Variable(x, "float32")


def whisper_variables(
    asr: WhisperASR, quantization: str
) -> tuple[dict[str, Variable], dict[str, str], ExportReport]:
    """The model.bin variables and aliases of `asr` in `quantization`."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"unknown quantization {quantization!r}; choose one of {', '.join(QUANTIZATIONS)}"
        )
    cfg = asr.config
    sd = {k: v.detach().float() for k, v in asr.float_state_dict().items()}
    report = ExportReport(quantization)
    int8 = quantization.startswith("int8")
    rest = {"int8_float16": "float16", "int8": "auto", "int8_float32": "float32"}.get(
        quantization, quantization
    )

    def other(x: torch.Tensor, name: str) -> Variable:
        arr = x.numpy()
        if rest == "auto":
            half = arr.astype(np.float16)
            lossless = np.array_equal(half.astype(np.float32), arr)
            return _float_var(arr, "float16" if lossless else "float32", name, report)
        return _float_var(arr, rest, name, report)

    out: dict[str, Variable] = {}

    def weight(name: str, w: torch.Tensor) -> None:
        if int8:
            q, scale = int8_rows(w, name, report)
            out[name] = Variable(q, "int8")
            out[f"{name}_scale"] = Variable(scale, "float32")
        else:
            out[name] = other(w, name)

    for e in whisper_layout(cfg.encoder_layers, cfg.decoder_layers):
        if e.kind == "norm":
            out[f"{e.ct2}/gamma"] = other(sd[f"{e.hf[0]}.weight"], f"{e.ct2}/gamma")
            out[f"{e.ct2}/beta"] = other(sd[f"{e.hf[0]}.bias"], f"{e.ct2}/beta")
        elif e.kind == "tensor":
            if e.ct2 == "decoder/embeddings/weight":
                weight(e.ct2, sd[e.hf[0]])
            else:
                out[e.ct2] = other(sd[e.hf[0]], e.ct2)
        else:
            w = torch.cat([sd[f"{n}.weight"] for n in e.hf])
            b = torch.cat(
                [sd.get(f"{n}.bias", torch.zeros(sd[f"{n}.weight"].shape[0])) for n in e.hf]
            )
            weight(f"{e.ct2}/weight", w)
            out[f"{e.ct2}/bias"] = other(b, f"{e.ct2}/bias")
    scalars = {
        "encoder/num_heads": (cfg.encoder_attention_heads, "int16"),
        "decoder/num_heads": (cfg.decoder_attention_heads, "int16"),
        "decoder/activation": (3, "int8"),  # GELU in CTranslate2's Activation enum
        "decoder/alibi": (0, "int8"),
        "decoder/alibi_use_positive_positions": (0, "int8"),
        "decoder/scale_alibi": (0, "int8"),
        "decoder/alignment_heads": (1, "int16"),
        "decoder/alignment_layer": (-1, "int16"),
        "decoder/pre_norm": (1, "int8"),
        "decoder/scale_embeddings": (0, "int8"),
        "decoder/start_from_zero_embedding": (0, "int8"),
    }
    for name, (value, dtype) in scalars.items():
        out[name] = Variable(np.array(value, dtype=dtype), dtype)
    return out, {"decoder/projection/weight": "decoder/embeddings/weight"}, report


def _string(s: str) -> bytes:
    raw = s.encode("utf-8") + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_ct2_bytes(
    variables: dict[str, Variable],
    aliases: dict[str, str] | None = None,
    spec: str = SPEC,
    version: int = VERSION,
    revision: int = REVISION,
) -> bytes:
    """A model.bin (binary version 6): variables in name order, then the aliases."""
    aliases = aliases or {}
    parts = [struct.pack("<I", version), _string(spec), struct.pack("<I", revision)]
    parts.append(struct.pack("<I", len(variables)))
    for name in sorted(variables):
        v = variables[name]
        data = v.data if v.data.flags.c_contiguous else np.ascontiguousarray(v.data)
        parts += [_string(name), struct.pack("<B", data.ndim)]
        parts += [struct.pack("<I", d) for d in data.shape]
        raw = data.astype(data.dtype.newbyteorder("<"), copy=False).tobytes()
        if v.dtype not in _CODES:
            raise ValueError(f"{name}: CTranslate2 has no dtype {v.dtype!r}")
        parts += [struct.pack("<B", _CODES[v.dtype]), struct.pack("<I", len(raw)), raw]
    parts.append(struct.pack("<I", len(aliases)))
    for alias, target in sorted(aliases.items()):
        parts += [_string(alias), _string(target)]
    return b"".join(parts)


def ct2_config(asr: WhisperASR) -> dict:
    """CTranslate2's config.json for Whisper: alignment heads, language ids, suppressed ids."""
    gc = asr.model.generation_config
    heads = gc.alignment_heads or []
    lang_to_id = gc.lang_to_id or {}
    return {
        "alignment_heads": [list(map(int, h)) for h in heads],
        "lang_ids": [int(i) for _, i in sorted(lang_to_id.items(), key=lambda kv: kv[1])],
        "suppress_ids": [int(t) for t in (gc.suppress_tokens or [])],
        "suppress_ids_begin": [int(t) for t in (gc.begin_suppress_tokens or [])],
    }


def export_ct2(asr: WhisperASR, folder: str | Path, quantization: str = "int8") -> ExportReport:
    """Write `asr` as a faster-whisper folder; returns what carried over exactly and the
    error any re-quantization or float cast added."""
    variables, aliases, report = whisper_variables(asr, quantization)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.bin").write_bytes(write_ct2_bytes(variables, aliases))
    (folder / "config.json").write_text(json.dumps(ct2_config(asr), indent=2))
    vocab = asr.tokenizer.get_vocab()
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    first = asr.token_ids["timestamp_begin"]  # timestamps: <|0.00|> ... <|30.00|>
    tokens = tokens[:first] + [
        f"<|{(i - first) * 0.02:.2f}|>" for i in range(first, asr.config.vocab_size)
    ]
    (folder / "vocabulary.json").write_text(json.dumps(tokens, ensure_ascii=False))
    asr.tokenizer.backend_tokenizer.save(str(folder / "tokenizer.json"))
    asr.feature_extractor.to_json_file(str(folder / "preprocessor_config.json"))
    return report


__all__ = [
    "QUANTIZATIONS",
    "ExportReport",
    "Variable",
    "ct2_config",
    "export_ct2",
    "int8_rows",
    "whisper_variables",
    "write_ct2_bytes",
]
