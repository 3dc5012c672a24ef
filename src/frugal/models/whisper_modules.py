"""Whisper in plain torch: encoder, decoder and output projection, with transformers' parameter
names (`model.encoder.layers.0.self_attn.q_proj.weight` ...) so that state dicts, quantization
rules and frugal's own decoding paths read either model the same way.

The run-time path (load, encode, the lean decoder) needs only torch: transformers is imported
by `to_transformers` alone, for its generate() as a reference decoder and for export.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

LAYER_NORM_EPS = 1e-5  # Whisper's (OpenAI and transformers)


@dataclass
class WhisperDims:
    """Shapes of one Whisper, under the keys of a transformers config.json (which it reads
    and writes, so a folder stays loadable by transformers)."""

    vocab_size: int = 51865
    num_mel_bins: int = 80
    d_model: int = 384
    encoder_layers: int = 4
    decoder_layers: int = 4
    encoder_attention_heads: int = 6
    decoder_attention_heads: int = 6
    encoder_ffn_dim: int = 1536
    decoder_ffn_dim: int = 1536
    max_source_positions: int = 1500
    max_target_positions: int = 448
    pad_token_id: int = 50256
    bos_token_id: int = 50256
    eos_token_id: int = 50256
    decoder_start_token_id: int = 50257
    scale_embedding: bool = False
    activation_function: str = "gelu"
    tie_word_embeddings: bool = True

    def __post_init__(self) -> None:
        if self.activation_function != "gelu":
            raise ValueError(f"unsupported activation {self.activation_function!r} (gelu)")
        if self.scale_embedding:
            raise ValueError("scale_embedding=True is not a Whisper checkpoint frugal knows")
        for heads, name in (
            (self.encoder_attention_heads, "encoder"),
            (self.decoder_attention_heads, "decoder"),
        ):
            if self.d_model % heads:
                raise ValueError(f"d_model {self.d_model} is not a multiple of {name} heads")

    @classmethod
    def from_dict(cls, d: dict) -> WhisperDims:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> WhisperDims:
        """Read a transformers folder's config.json."""
        path = Path(folder) / "config.json"
        data = json.loads(path.read_text())
        if data.get("model_type", "whisper") != "whisper":
            raise ValueError(f"{path}: model_type {data['model_type']!r} is not whisper")
        return cls.from_dict(data)

    def to_dict(self) -> dict:
        """config.json as transformers writes it for WhisperForConditionalGeneration."""
        return {
            "architectures": ["WhisperForConditionalGeneration"],
            "model_type": "whisper",
            "torch_dtype": "float32",
            **asdict(self),
        }

    def save_pretrained(self, folder: str | Path) -> None:
        Path(folder, "config.json").write_text(json.dumps(self.to_dict(), indent=2) + "\n")


@dataclass
class WhisperGeneration:
    """Decoding settings of a checkpoint (transformers' generation_config.json keys): special
    ids, suppressed tokens, alignment heads, languages."""

    decoder_start_token_id: int = 50257
    bos_token_id: int = 50256
    eos_token_id: int = 50256
    pad_token_id: int = 50256
    max_length: int = 448
    suppress_tokens: list[int] = field(default_factory=list)
    begin_suppress_tokens: list[int] = field(default_factory=list)
    alignment_heads: list[list[int]] = field(default_factory=list)
    no_timestamps_token_id: int | None = None
    prev_sot_token_id: int | None = None
    max_initial_timestamp_index: int = 50
    is_multilingual: bool = False
    lang_to_id: dict[str, int] = field(default_factory=dict)
    task_to_id: dict[str, int] = field(default_factory=dict)
    return_timestamps: bool = False

    @classmethod
    def from_dict(cls, d: dict) -> WhisperGeneration:
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known and v is not None}
        if isinstance(d.get("eos_token_id"), list):
            d["eos_token_id"] = d["eos_token_id"][0]
        return cls(**d)

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> WhisperGeneration:
        return cls.from_dict(json.loads((Path(folder) / "generation_config.json").read_text()))

    def to_dict(self) -> dict:
        return asdict(self)

    def save_pretrained(self, folder: str | Path) -> None:
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        Path(folder, "generation_config.json").write_text(text)


def sinusoids(length: int, channels: int) -> torch.Tensor:
    """Whisper's fixed encoder positions: sin of the first half, cos of the second, periods
    geometric from 1 to 10000 frames."""
    half = channels // 2
    inv = torch.exp(-math.log(10000) / (half - 1) * torch.arange(half, dtype=torch.float64))
    t = torch.arange(length, dtype=torch.float64)[:, None] * inv[None]
    return torch.cat([t.sin(), t.cos()], dim=1).float()


def _embedding(rows: int, dim: int) -> nn.Embedding:
    """nn.Embedding, initialised N(0, 1) unless built on the meta device (where torch's
    initialiser would import its compiler, ~1.5 s, for nothing: weights are assigned later)
    or inside `_uninitialised`."""
    e = nn.Embedding(rows, dim, _weight=torch.empty(rows, dim))
    if not e.weight.is_meta:
        e.reset_parameters()
    return e


class Attention(nn.Module):
    """Multi-head attention with Whisper's projections (no key bias)."""

    def __init__(self, d_model: int, heads: int):
        super().__init__()
        self.embed_dim, self.num_heads = d_model, heads
        self.head_dim = d_model // heads
        self.scaling = self.head_dim**-0.5
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        source: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        causal: bool = False,
        want_probs: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from `x` (B, S, d) over `source` (B, T, d; `x` itself when None). `mask`
        (B, 1, 1, T) is True where a key is attended. With `want_probs`, also the attention
        probabilities (B, heads, S, T)."""
        kv = x if source is None else source
        q, k, v = (
            self._heads(self.q_proj(x)),
            self._heads(self.k_proj(kv)),
            self._heads(self.v_proj(kv)),
        )
        probs = None
        if want_probs:
            scores = (q @ k.transpose(-1, -2)) * self.scaling
            if causal:
                s, t = scores.shape[-2:]
                scores = scores.masked_fill(
                    torch.ones(s, t, dtype=torch.bool, device=x.device).triu(1), float("-inf")
                )
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            probs = scores.softmax(-1)
            a = probs @ v
        else:
            a = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=causal and x.shape[1] > 1, scale=self.scaling
            )
        b, s, _ = x.shape  # heads may have been sliced away: num_heads · head_dim wide
        return self.out_proj(a.transpose(1, 2).reshape(b, s, -1)), probs


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, ffn: int):
        super().__init__()
        self.self_attn = Attention(d_model, heads)
        self.self_attn_layer_norm = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.fc1 = nn.Linear(d_model, ffn)
        self.fc2 = nn.Linear(ffn, d_model)
        self.final_layer_norm = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.activation_fn = F.gelu

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, want_probs: bool = False):
        """(B, T, d) → (B, T, d); with `want_probs`, (output, attention probabilities)."""
        a, probs = self.self_attn(self.self_attn_layer_norm(x), mask=mask, want_probs=want_probs)
        x = x + a
        x = x + self.fc2(self.activation_fn(self.fc1(self.final_layer_norm(x))))
        return (x, probs) if want_probs else x


@dataclass
class EncoderOutput:
    """Encoder states (B, T, d) and, when asked for, each layer's attention probabilities."""

    last_hidden_state: torch.Tensor
    attentions: tuple[torch.Tensor, ...] | None = None


class Encoder(nn.Module):
    """Conv stem (two GELU convolutions, the second with stride 2), fixed sinusoidal
    positions, pre-norm transformer layers, final layer norm."""

    def __init__(self, dims: WhisperDims):
        super().__init__()
        d = dims.d_model
        self.conv1 = nn.Conv1d(dims.num_mel_bins, d, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(d, d, kernel_size=3, stride=2, padding=1)
        self.embed_positions = _embedding(dims.max_source_positions, d)
        self.embed_positions.weight.requires_grad_(False)
        self.layers = nn.ModuleList(
            EncoderLayer(d, dims.encoder_attention_heads, dims.encoder_ffn_dim)
            for _ in range(dims.encoder_layers)
        )
        self.layer_norm = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        self.frames = 2 * dims.max_source_positions  # mel columns of a 30 s window

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Log-mel features (B, mels, 3000) → layer 0's input (B, 1500, d)."""
        if features.shape[-1] != self.frames:
            raise ValueError(
                f"the encoder takes {self.frames} mel columns (30 s), not {features.shape[-1]}"
            )
        x = F.gelu(self.conv1(features))
        x = F.gelu(self.conv2(x)).permute(0, 2, 1)
        return x + self.embed_positions.weight[: x.shape[1]]

    def forward(
        self, input_features: torch.Tensor, output_attentions: bool = False
    ) -> EncoderOutput:
        x = self.embed(input_features)
        attentions = []
        for layer in self.layers:
            if output_attentions:
                x, probs = layer(x, want_probs=True)
                attentions.append(probs)
            else:
                x = layer(x)
        return EncoderOutput(self.layer_norm(x), tuple(attentions) if output_attentions else None)


class DecoderLayer(EncoderLayer):
    """An encoder layer with cross-attention over the encoder states between its
    self-attention and its feed-forward block."""

    def __init__(self, d_model: int, heads: int, ffn: int):
        super().__init__(d_model, heads, ffn)
        self.encoder_attn = Attention(d_model, heads)
        self.encoder_attn_layer_norm = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, encoder_states: torch.Tensor, encoder_mask: torch.Tensor | None
    ) -> torch.Tensor:
        x = x + self.self_attn(self.self_attn_layer_norm(x), causal=True)[0]
        h = self.encoder_attn_layer_norm(x)
        x = x + self.encoder_attn(h, encoder_states, mask=encoder_mask)[0]
        return x + self.fc2(self.activation_fn(self.fc1(self.final_layer_norm(x))))


class Decoder(nn.Module):
    """Token embeddings, learned positions, pre-norm layers with cross-attention, final norm.
    A teacher-forced pass over whole sequences (training, scoring); decoding token by token
    goes through `frugal.tasks.asr.lean_decoder`, which reads these weights."""

    def __init__(self, dims: WhisperDims):
        super().__init__()
        d = dims.d_model
        self.embed_tokens = _embedding(dims.vocab_size, d)
        self.embed_positions = _embedding(dims.max_target_positions, d)
        self.layers = nn.ModuleList(
            DecoderLayer(d, dims.decoder_attention_heads, dims.decoder_ffn_dim)
            for _ in range(dims.decoder_layers)
        )
        self.layer_norm = nn.LayerNorm(d, eps=LAYER_NORM_EPS)

    def forward(
        self,
        input_ids: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Tokens (B, S) over encoder states (B, T, d) → final hidden states (B, S, d)."""
        s = input_ids.shape[1]
        if s > self.embed_positions.num_embeddings:
            raise ValueError(
                f"{s} tokens exceed the decoder's {self.embed_positions.num_embeddings}"
            )
        x = self.embed_tokens(input_ids) + self.embed_positions.weight[:s]
        for layer in self.layers:
            x = layer(x, encoder_hidden_states, encoder_mask)
        return self.layer_norm(x)


@contextmanager
def _uninitialised() -> Iterator[None]:
    """Modules built inside get parameters of uninitialised memory (no pages touched, no
    time spent): for a model whose every weight is assigned next. Cheaper than the meta
    device, whose first use imports ~0.7 s of torch."""
    classes = (nn.Linear, nn.Conv1d, nn.LayerNorm, nn.Embedding)
    saved = {cls: cls.reset_parameters for cls in classes}
    for cls in classes:
        cls.reset_parameters = lambda self: None
    try:
        yield
    finally:
        for cls, fn in saved.items():
            cls.reset_parameters = fn


class WhisperBody(nn.Module):
    def __init__(self, dims: WhisperDims):
        super().__init__()
        self.encoder = Encoder(dims)
        self.decoder = Decoder(dims)


@dataclass
class Seq2SeqOutput:
    logits: torch.Tensor
    encoder_last_hidden_state: torch.Tensor


class WhisperNet(nn.Module):
    """Encoder–decoder Whisper with the output projection tied to the token embeddings.
    `model(input_features=..., decoder_input_ids=...)` (or `encoder_outputs=` instead of
    features) returns `.logits` (B, S, vocab), as transformers' class does."""

    def __init__(self, dims: WhisperDims, generation: WhisperGeneration | None = None):
        super().__init__()
        self.config = dims
        self.generation_config = generation or WhisperGeneration(
            max_length=dims.max_target_positions
        )
        self.model = WhisperBody(dims)
        self.proj_out = nn.Linear(dims.d_model, dims.vocab_size, bias=False)
        self.tie_weights()

    def tie_weights(self) -> None:
        self.proj_out.weight = self.model.decoder.embed_tokens.weight

    def forward(
        self,
        input_features: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        encoder_outputs=None,
        use_cache: bool | None = None,
        encoder_mask: torch.Tensor | None = None,
    ) -> Seq2SeqOutput:
        """`encoder_mask` (B, T) bool, True for the encoder frames the decoder attends to
        (rows of unequal length in one batch); None attends to every frame."""
        if encoder_outputs is None:
            if input_features is None:
                raise ValueError("give input_features or encoder_outputs")
            enc = self.model.encoder(input_features).last_hidden_state
        else:
            enc = getattr(encoder_outputs, "last_hidden_state", None)
            enc = encoder_outputs[0] if enc is None else enc
        mask = None if encoder_mask is None else encoder_mask[:, None, None]
        h = self.model.decoder(decoder_input_ids, enc, mask)
        return Seq2SeqOutput(self.proj_out(h), enc)

    @classmethod
    def from_state_dict(
        cls, dims: WhisperDims, state: dict[str, torch.Tensor], generation: WhisperGeneration | None
    ) -> WhisperNet:
        """Built without initialising and given `state`'s tensors (no copy; a missing or extra
        tensor, or an output projection other than the token embeddings, is an error).
        Encoder positions missing from `state` are Whisper's sinusoids."""
        state = dict(state)
        embed = state["model.decoder.embed_tokens.weight"]
        proj = state.setdefault("proj_out.weight", embed)
        if proj is not embed and not torch.equal(proj, embed):
            raise ValueError("proj_out.weight differs from the token embeddings: Whisper ties them")
        state.setdefault(
            "model.encoder.embed_positions.weight",
            sinusoids(dims.max_source_positions, dims.d_model),
        )
        with _uninitialised():
            net = cls(dims, generation)
        net.load_state_dict(state, strict=True, assign=True)
        net.tie_weights()
        net.model.encoder.embed_positions.weight.requires_grad_(False)
        return net.eval()

    def to_transformers(self):
        """transformers' WhisperForConditionalGeneration sharing these modules and weights
        (quantized modules included), for its generate() as a reference decoder."""
        from frugal.models.optional import require

        hf_lib = require("transformers", "a transformers copy of Whisper")
        GenerationConfig = hf_lib.GenerationConfig
        WhisperConfig = hf_lib.WhisperConfig
        WhisperForConditionalGeneration = hf_lib.WhisperForConditionalGeneration
        with torch.device("meta"):
            hf = WhisperForConditionalGeneration(WhisperConfig(**self.config.to_dict()))
        for name, module in self.named_modules():
            if next(module.children(), None) is not None or name == "":
                continue
            if isinstance(module, nn.Embedding):  # transformers' positions are a subclass
                hf.get_submodule(name).weight = module.weight
            else:
                hf.set_submodule(name, module)
        hf.generation_config = GenerationConfig(**self.generation_config.to_dict())
        return hf.eval()
