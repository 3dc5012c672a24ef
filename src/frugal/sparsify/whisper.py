"""Early attentive sparsification of Whisper's encoder.

After encoder layer k (0-based: layers 0..k run on all T = 1500 frames), every frame is scored
by the self-attention it receives in layer k — softmax probabilities averaged over heads and
over a strided subset of query positions, computed from that layer's own q and k, while the
layer's output itself comes from the usual fused attention. The best-scoring frames are kept
in temporal order (positions were added before layer 0), layers k+1.. and the final layer
norm run on them only, and the decoder cross-attends to the shorter sequence.
No fine-tuning. Other frame scores are provided as baselines.

How many frames are kept (`rule`). Whisper always sees a 30 s window: a clip of n seconds
fills its first ≈ 50·n frames with audio and the rest with padding (the log-mel of silence).
Under the default rule "audio", sparsity s is a fraction of the *audio* frames: a window
keeps ⌈(1 − s)·n_audio⌉ of its audio frames and, separately, min(P, n_padding) of its
padding frames (P = `padding_frames`, 128 = 2.56 s by default), each the best-scoring of its
kind — so s = 0.3 drops 30% of the speech on a 3 s clip and on a 28 s clip alike, and most
of the padding goes on short clips whatever s is. The padding frames are not all dropped:
the decoder reads the end of speech from them (tiny.en on 42 clips of 20-30 s, s = 0, no
speech dropped: WER +2.5 pt keeping 16 padding frames, +0.8 keeping 64, -0.1 keeping 128).
The audio frames are the ones before the window's trailing run of mel columns at the feature
extractor's floor (80 dB under the window's peak). The rule "frames" (the first version, kept
for comparison) keeps ⌈(1 − s)·1500⌉ frames ranked over the whole window, which drops mostly
padding on short clips and over half the speech on long ones at s = 0.6.
Windows of one batch then keep different numbers of frames: the shorter rows are padded and
masked (encoder self-attention and decoder cross-attention), so batched equals one by one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

SCORES = ("attention", "attention_cumulative", "key_norm", "stride", "random")
RULES = ("audio", "frames")


@dataclass(frozen=True)
class SparsifyConfig:
    """`layer`: 0-based encoder layer after which frames are dropped; `sparsity`: fraction of
    frames dropped (0 ≤ s < 1) — of the audio frames under `rule` "audio", of all frames
    under "frames"; `padding_frames`: padding frames kept at most under "audio";
    `score`: attention | attention_cumulative (attention received summed over layers 0..k) |
    key_norm | stride (evenly spaced) | random; `query_stride`: every n-th query position
    enters the attention score (1 = all); `guard`: a window whose sparsified text loops or
    collapses is decoded again dense (see `LoopGuard`)."""

    layer: int
    sparsity: float
    score: str = "attention"
    query_stride: int = 8
    seed: int = 0
    rule: str = "audio"
    padding_frames: int = 128
    guard: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), not {self.sparsity}")
        if self.layer < 0:
            raise ValueError(f"layer must be >= 0, not {self.layer}")
        if self.score not in SCORES:
            raise ValueError(f"unknown frame score {self.score!r}; one of {', '.join(SCORES)}")
        if self.query_stride < 1:
            raise ValueError("query_stride must be >= 1")
        if self.rule not in RULES:
            raise ValueError(f"unknown keep rule {self.rule!r}; one of {', '.join(RULES)}")
        if self.padding_frames < 0:
            raise ValueError(f"padding_frames must be >= 0, not {self.padding_frames}")

    def kept(self, frames: int, audio: int | None = None) -> tuple[int, int]:
        """(audio frames kept, padding frames kept) of a window of `frames` frames whose
        first `audio` hold audio (all of them when None). Under "frames" the whole window is
        one pool, counted as audio."""
        audio = frames if audio is None or self.rule == "frames" else audio

        n_audio = min(audio, math.ceil((1.0 - self.sparsity) * audio - 1e-9))  # >= 1 if audio
        n_pad = min(frames - audio, self.padding_frames)
        return n_audio, max(n_pad, 1 if n_audio == 0 else 0)

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
                if "rule" not in data:  # written before the length-aware rule existed
                    data = {**data, "rule": "frames", "guard": False}
            if not isinstance(data, dict):
                raise ValueError(f"a sparsify setting is a JSON object, not {text!r}")
            unknown = sorted(set(data) - set(cls.__dataclass_fields__))
            if unknown:
                raise ValueError(f"unknown sparsify settings {unknown} in {text!r}")
            return cls(**data)
        fields: dict = {}
        for part in filter(None, text.split(",")):
            key, _, value = part.partition("=")
            key, value = key.strip(), value.strip()
            if key not in cls.__dataclass_fields__:
                raise ValueError(f"unknown sparsify setting {key!r} in {text!r}")
            typ = cls.__dataclass_fields__[key].type
            if typ == "bool":
                if value.lower() not in ("1", "0", "true", "false", "on", "off"):
                    raise ValueError(f"{key} is on or off, not {value!r}")
                fields[key] = value.lower() in ("1", "true", "on")
            else:
                fields[key] = value if typ == "str" else (float if typ == "float" else int)(value)
        return cls(**fields)


def _layer(layer, x: torch.Tensor, mask: torch.Tensor | None = None, stride=1, want=None):
    """One WhisperEncoderLayer forward (same ops as transformers'), with an optional key mask
    (B, 1, 1, T), plus the per-frame score `want` ("attention" received, or "key_norm") from
    this layer's q and k: (B, T), or None."""
    attn = layer.self_attn
    b, t, d = x.shape
    h = layer.self_attn_layer_norm(x)
    shape = (b, t, attn.num_heads, attn.head_dim)
    q = attn.q_proj(h).view(shape).transpose(1, 2)
    k = attn.k_proj(h).view(shape).transpose(1, 2)
    v = attn.v_proj(h).view(shape).transpose(1, 2)
    a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=attn.scaling)
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
    """Run layers 0..k; return their output and the frame scores (B, T); "stride" scores
    are filled in by `select_frames`, which knows the pools."""
    b, t, _ = x.shape
    total = torch.zeros(b, t, device=x.device)
    for i in range(cfg.layer + 1):
        layer = layers[i]
        if cfg.score == "attention_cumulative":
            x, s = _layer(layer, x, None, cfg.query_stride, "attention")
            total = total + s
        elif i == cfg.layer and cfg.score in ("attention", "key_norm"):
            x, total = _layer(layer, x, None, cfg.query_stride, cfg.score)
        else:
            x = layer(x, None)
    if cfg.score == "random":
        g = torch.Generator(device="cpu").manual_seed(cfg.seed)
        total = torch.rand(b, t, generator=g).to(x.device)
    return x, total


def audio_frames(features: torch.Tensor) -> list[int]:
    """Encoder frames holding audio in each window of log-mel `features` (B, mels, 3000):
    those before the trailing run of mel columns that sit at the window's floor value (the
    extractor clamps to 80 dB under the peak; padding is exactly there). Two mel columns
    make one encoder frame."""
    floor = features.amin(dim=(1, 2), keepdim=True)
    live = (features > floor).any(dim=1)  # (B, columns)
    cols = features.shape[-1]
    last = torch.where(live, torch.arange(cols, device=features.device), -1).amax(dim=1)
    return [math.ceil((int(c) + 1) / 2) for c in last]


def _pick(scores: torch.Tensor, n: int, stride: bool) -> torch.Tensor:
    """Positions of the `n` best of a 1-D pool (evenly spaced ones for "stride")."""
    if n <= 0:
        return scores.new_zeros(0, dtype=torch.long)
    if stride:
        return torch.linspace(0, len(scores) - 1, n, device=scores.device).round().long()
    return scores.topk(n).indices


def select_frames(scores: torch.Tensor, audio: list[int], cfg: SparsifyConfig) -> list:
    """Kept frame indices of each row, in temporal order: the best ⌈(1−s)·n_audio⌉ audio
    frames and the best min(P, n_padding) padding frames (one pool under rule "frames")."""
    t = scores.shape[1]
    out = []
    for row, n in zip(scores, audio, strict=True):
        if cfg.rule == "frames":
            n = t
        keep_a, keep_p = cfg.kept(t, n)
        stride = cfg.score == "stride"
        kept = torch.cat([_pick(row[:n], keep_a, stride), n + _pick(row[n:], keep_p, stride)])
        out.append(kept.sort().values)
    return out


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
    """Whisper encoder with frames dropped after layer `cfg.layer`: (B, kept, d_model), rows
    that keep fewer frames than the longest padded with zero frames (`tasks.asr.states`).
    With `return_kept`, also the kept frame indices (B, kept), -1 where padded."""
    check_config(asr, cfg)
    enc = asr.model.model.encoder
    x = _embed(asr, features)
    b, t, d = x.shape
    audio = audio_frames(features)
    if all(sum(cfg.kept(t, n)) >= t for n in audio):  # nothing dropped: the dense layers
        for layer in enc.layers:
            x = layer(x, None)
        kept = torch.arange(t, device=x.device).expand(b, t)
        x = enc.layer_norm(x)
        return (x, kept) if return_kept else x
    x, scores = _scores(cfg, enc.layers, x)
    rows = select_frames(scores, audio, cfg)
    n = max(len(r) for r in rows)
    kept = torch.full((b, n), -1, dtype=torch.long, device=x.device)
    for i, r in enumerate(rows):
        kept[i, : len(r)] = r
    x = x.gather(1, kept.clamp(min=0)[..., None].expand(-1, -1, d))
    valid = kept >= 0
    mask = None if bool(valid.all()) else valid[:, None, None, :]
    for layer in enc.layers[cfg.layer + 1 :]:
        x = layer(x, None) if mask is None else _layer(layer, x, mask)[0]
    x = enc.layer_norm(x)
    if mask is not None:
        x = x.masked_fill(~valid[..., None], 0.0)  # the padding marker the decoder masks
    return (x, kept) if return_kept else x


def sparse_encoder(cfg: SparsifyConfig):
    """An EncoderFn for frugal.tasks.asr.Transcriber / evaluate; carries `config` and, when
    `cfg.guard`, the `guard` that re-decodes looping windows dense."""
    from frugal.tasks.asr.guard import LoopGuard

    def encode(asr, features):
        return sparse_encode(asr, features, cfg)

    encode.config = cfg  # type: ignore[attr-defined]
    encode.guard = LoopGuard() if cfg.guard else None  # type: ignore[attr-defined]
    return encode
