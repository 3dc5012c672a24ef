"""Early attentive sparsification of Whisper's encoder.

After encoder layer k (0-based: layers 0..k run on all T = 1500 frames), every frame is scored
by the self-attention it receives in layer k — softmax probabilities averaged over heads and
over a strided subset of query positions, computed from that layer's own q and k, while the
layer's output itself comes from the usual fused attention. The top ceil((1 - s)·T) frames are
kept in temporal order (positions were added before layer 0), layers k+1.. and the final
layer norm run on them only, and the decoder cross-attends to the shorter sequence.
No fine-tuning. Other frame scores are provided as baselines.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

SCORES = ("attention", "attention_cumulative", "key_norm", "stride", "random")


@dataclass(frozen=True)
class SparsifyConfig:
    """`layer`: 0-based encoder layer after which frames are dropped; `sparsity`: fraction of
    frames dropped (0 ≤ s < 1); `score`: attention | attention_cumulative (attention received
    summed over layers 0..k) | key_norm | stride (evenly spaced) | random; `query_stride`:
    every n-th query position enters the attention score (1 = all)."""

    layer: int
    sparsity: float
    score: str = "attention"
    query_stride: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), not {self.sparsity}")
        if self.layer < 0:
            raise ValueError(f"layer must be >= 0, not {self.layer}")
        if self.score not in SCORES:
            raise ValueError(f"unknown frame score {self.score!r}; one of {', '.join(SCORES)}")
        if self.query_stride < 1:
            raise ValueError("query_stride must be >= 1")

    def kept(self, frames: int) -> int:
        """Frames kept out of `frames`."""
        return max(1, math.ceil((1.0 - self.sparsity) * frames - 1e-9))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def parse(cls, text: str) -> SparsifyConfig:
        """From "layer=1,sparsity=0.6[,score=attention]" or a JSON file path/string."""
        import json

        text = text.strip()
        if text.startswith("{") or text.endswith(".json"):
            data = json.loads(Path(text).read_text() if text.endswith(".json") else text)
            if isinstance(data, dict) and isinstance(data.get("config"), dict):
                data = data["config"]  # a search's best.json holds the setting under "config"
            if not isinstance(data, dict):
                raise ValueError(f"a sparsify setting is a JSON object, not {text!r}")
            unknown = sorted(set(data) - set(cls.__dataclass_fields__))
            if unknown:
                raise ValueError(f"unknown sparsify settings {unknown} in {text!r}")
            return cls(**data)
        fields = {}
        for part in filter(None, text.split(",")):
            key, _, value = part.partition("=")
            key = key.strip()
            if key not in cls.__dataclass_fields__:
                raise ValueError(f"unknown sparsify setting {key!r} in {text!r}")
            typ = cls.__dataclass_fields__[key].type
            fields[key] = (
                value.strip() if typ == "str" else (float(value) if typ == "float" else int(value))
            )
        return cls(**fields)


def _layer_with_scores(layer, x: torch.Tensor, stride: int, want: str | None):
    """One WhisperEncoderLayer forward (same ops as transformers'), plus the per-frame score
    `want` ("attention" received, or "key_norm") from this layer's q and k; (B, T) or None."""
    attn = layer.self_attn
    b, t, d = x.shape
    h = layer.self_attn_layer_norm(x)
    shape = (b, t, attn.num_heads, attn.head_dim)
    q = attn.q_proj(h).view(shape).transpose(1, 2)
    k = attn.k_proj(h).view(shape).transpose(1, 2)
    v = attn.v_proj(h).view(shape).transpose(1, 2)
    a = F.scaled_dot_product_attention(q, k, v, scale=attn.scaling)
    x = x + attn.out_proj(a.transpose(1, 2).reshape(b, t, d))
    x = x + layer.fc2(layer.activation_fn(layer.fc1(layer.final_layer_norm(x))))
    score = None
    if want == "attention":
        probs = torch.softmax((q[:, :, ::stride] @ k.transpose(-1, -2)) * attn.scaling, dim=-1)
        score = probs.mean(dim=(1, 2))
    elif want == "key_norm":
        score = k.transpose(1, 2).reshape(b, t, d).norm(dim=-1)
    return x, score


def _scores(cfg: SparsifyConfig, layers, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run layers 0..k; return their output and the frame scores (B, T)."""
    b, t, _ = x.shape
    total = None
    for i in range(cfg.layer + 1):
        layer = layers[i]
        if cfg.score == "attention_cumulative":
            x, s = _layer_with_scores(layer, x, cfg.query_stride, "attention")
            total = s if total is None else total + s
        elif i == cfg.layer and cfg.score in ("attention", "key_norm"):
            x, total = _layer_with_scores(layer, x, cfg.query_stride, cfg.score)
        else:
            x = layer(x, None)
    if cfg.score == "stride":
        keep = cfg.kept(t)
        total = torch.zeros(b, t, device=x.device)
        total[:, torch.linspace(0, t - 1, keep, device=x.device).round().long()] = 1.0
    elif cfg.score == "random":
        g = torch.Generator(device="cpu").manual_seed(cfg.seed)
        total = torch.rand(b, t, generator=g).to(x.device)
    return x, total


@torch.inference_mode()
def frame_scores(asr, features: torch.Tensor, cfg: SparsifyConfig) -> torch.Tensor:
    """The (B, 1500) frame scores `cfg` ranks frames by (for inspection and tests)."""
    check_config(asr, cfg)
    return _scores(cfg, asr.model.model.encoder.layers, _embed(asr, features))[1]


def _embed(asr, features: torch.Tensor) -> torch.Tensor:
    """Conv stem + sinusoidal positions, as transformers' encoder does before layer 0."""
    enc = asr.model.model.encoder
    x = F.gelu(enc.conv1(features))
    x = F.gelu(enc.conv2(x)).permute(0, 2, 1)
    return x + enc.embed_positions.weight[: x.shape[1]]


def keep_indices(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """Indices of the `keep` highest-scoring frames of each row, in temporal order."""
    return scores.topk(keep, dim=-1).indices.sort(dim=-1).values


def check_config(asr, cfg: SparsifyConfig) -> None:
    """A clear error when `cfg.layer` does not exist in this model."""
    n = len(asr.model.model.encoder.layers)
    if cfg.layer >= n:
        raise ValueError(
            f"layer {cfg.layer} does not exist: {asr.name} has {n} encoder layers (0..{n - 1})"
        )


@torch.inference_mode()
def sparse_encode(
    asr, features: torch.Tensor, cfg: SparsifyConfig, return_kept: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Whisper encoder with frames dropped after layer `cfg.layer`: (B, kept, d_model)."""
    check_config(asr, cfg)
    enc = asr.model.model.encoder
    x = _embed(asr, features)
    t = x.shape[1]
    keep = cfg.kept(t)
    if keep >= t:  # nothing dropped: the dense layers exactly
        for layer in enc.layers:
            x = layer(x, None)
        kept = torch.arange(t).expand(x.shape[0], t)
    else:
        x, scores = _scores(cfg, enc.layers, x)
        kept = keep_indices(scores, keep)
        x = x.gather(1, kept[..., None].expand(-1, -1, x.shape[-1]))
        for layer in enc.layers[cfg.layer + 1 :]:
            x = layer(x, None)
    x = enc.layer_norm(x)
    return (x, kept) if return_kept else x


def sparse_encoder(cfg: SparsifyConfig):
    """An EncoderFn for frugal.tasks.asr.Transcriber / evaluate."""

    def encode(asr, features):
        return sparse_encode(asr, features, cfg)

    encode.config = cfg  # type: ignore[attr-defined]
    return encode
