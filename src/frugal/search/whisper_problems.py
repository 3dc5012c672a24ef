"""Whisper search problems. The joint space: after which encoder layer frames are dropped and
how many (§5), and the weight format of every encoder and decoder block (RTN); objectives an
accuracy on a fixed subset of utterances (WER in %, or the references' token NLL in nats per
token: smooth, and cheap — one teacher-forced pass, no decoding) and the blocks' weight
storage (Mbit). The NLL objective has fidelities: the first n utterances of the subset."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from frugal.search.problems import Problem
from frugal.search.space import Categorical, Config, Integer, Ordinal, SearchSpace

JOINT_FORMATS = ("bf16", "mxint8", "mxfp6", "mxint4", "mxfp4")
JOINT_SPARSITIES = (0.0, 0.2, 0.4, 0.6, 0.8)


def dense_is_canonical(config: Config) -> bool:
    """A dense encoder has no drop layer: one canonical config (layer 1) instead of several."""
    return config["sparsity"] > 0 or config["sparsify_layer"] == 1


@dataclass
class WhisperOnSubset(Problem):
    """A Whisper problem scored on a fixed, seeded subset of utterances. The model and the
    subset are loaded once per process, never pickled: worker processes load their own."""

    model: str = "tiny.en"
    data: str = "builtin"
    utterances: int = 24
    seed: int = 0
    max_tokens: int = 128  # caps decoding of broken configurations (they loop)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_cache")}

    def _asr(self):
        if getattr(self, "_cache_asr", None) is None:
            from frugal.models.whisper import load_whisper

            self._cache_asr = load_whisper(self.model)
        return self._cache_asr

    def _utterances(self):
        if getattr(self, "_cache_utts", None) is None:
            from frugal.data.datasets import load_dataset

            data = load_dataset(self.data, cache=True)
            self._cache_utts = list(data.take(min(self.utterances, len(data)), self.seed))
        return self._cache_utts

    def _wer(self, asr, encoder=None) -> float:
        """WER (%) of `asr` (with `encoder`, default dense) on the subset."""
        from frugal.tasks.asr.calibration import heldout_wer

        return heldout_wer(asr, self._utterances(), 8, self.max_tokens, encoder).wer


@dataclass
class WhisperJoint(WhisperOnSubset):
    """Sparsification (layer, sparsity) × a weight format per encoder/decoder block."""

    formats: tuple[str, ...] = JOINT_FORMATS
    sparsities: tuple[float, ...] = JOINT_SPARSITIES
    accuracy: str = "wer"  # "wer" (%) or "nll" (nats per reference token)
    name: str = "whisper-joint"
    objectives: tuple[str, ...] = field(init=False)
    space: SearchSpace = field(init=False)

    def __post_init__(self) -> None:
        if self.accuracy not in ("wer", "nll"):
            raise ValueError(f"unknown accuracy {self.accuracy!r}; choose wer or nll")
        self.objectives = (self.accuracy, "mbit")
        cfg = self._asr().config
        self.enc_layers, self.dec_layers = cfg.encoder_layers, cfg.decoder_layers
        params = [
            Integer("sparsify_layer", 1, self.enc_layers - 1),
            Ordinal("sparsity", tuple(self.sparsities)),
            *(Categorical(f"enc{i}", tuple(self.formats)) for i in range(self.enc_layers)),
            *(Categorical(f"dec{i}", tuple(self.formats)) for i in range(self.dec_layers)),
        ]
        self.space = SearchSpace(params, [dense_is_canonical])

    @property
    def fidelities(self) -> tuple[int, ...] | None:
        """Utterance counts a measurement may use (NLL only; the last is the full subset)."""
        if self.accuracy != "nll":
            return None
        n = self.utterances
        return tuple(sorted({max(1, n // 4), max(1, n // 2), n}))

    def reference_point(self) -> list[float] | None:
        """WER 100% and 1.1 × the blocks' storage in bf16 (Mbit). NLL has no natural worst
        value (a uniform guess, ln |vocabulary| ≈ 10.9 nats, is 20× what any configuration
        here reaches and would flatten the hypervolume): None, so a search derives its point
        from its first measurements."""
        if self.accuracy == "nll":
            return None
        from frugal.nn.surgery import matching_linears

        model = self._asr().model
        names = [n for stack in ("encoder", "decoder")
                 for n in matching_linears(model, f"model.{stack}.layers.*")]  # fmt: skip
        elements = sum(model.get_submodule(n).weight.numel() for n in names)
        return [100.0, 1.1 * 16 * elements / 1e6]

    def quant_config(self, config: Config):
        from frugal.nn import QuantConfig, QuantRule

        rules = [QuantRule(f"model.encoder.layers.{i}.*", weight=config[f"enc{i}"])
                 for i in range(self.enc_layers)]  # fmt: skip
        rules += [QuantRule(f"model.decoder.layers.{i}.*", weight=config[f"dec{i}"])
                  for i in range(self.dec_layers)]  # fmt: skip
        return QuantConfig(rules)

    def build(self, config: Config):
        """(the quantized ASR, its encoder function or None for dense, storage in Mbit)."""
        import dataclasses

        from frugal.nn import rtn_weights
        from frugal.nn.surgery import weight_bits
        from frugal.sparsify import SparsifyConfig, sparse_encoder

        self.space.check(config)
        asr = self._asr()
        model = copy.deepcopy(asr.model)
        done = rtn_weights(model, self.quant_config(config))
        mbit = weight_bits(done) / 1e6
        encoder = None
        if config["sparsity"] > 0:
            # the rule the stored pools were measured with; the raw setting (no loop guard)
            setting = SparsifyConfig(
                config["sparsify_layer"], config["sparsity"], rule="frames", guard=False
            )
            encoder = sparse_encoder(setting)
        return dataclasses.replace(asr, model=model), encoder, mbit

    def nll_terms(self, config: Config, n: int | None = None) -> tuple[list[list[float]], float]:
        """Per utterance of the first `n`: [summed reference NLL (nats), tokens]; and Mbit."""
        import torch

        from frugal.tasks.asr.metrics import token_nll
        from frugal.tasks.asr.transcribe import dense_encoder

        asr, encoder, mbit = self.build(config)
        encoder = encoder or dense_encoder
        feats, texts = self._features()
        n = len(texts) if n is None else n
        prompt = asr.prompt_ids(None if not asr.multilingual else "en")
        terms = []
        with torch.inference_mode():
            for i in range(0, n, 8):
                enc = encoder(asr, feats[i : min(n, i + 8)])
                chunk = texts[i : min(n, i + 8)]
                terms += [list(t) for t in token_nll(asr, enc, chunk, [prompt] * len(chunk))]
        return terms, mbit

    def _features(self):
        """Log-mel features and references of the subset, computed once."""
        if getattr(self, "_cache_feats", None) is None:
            from frugal.tasks.asr.transcribe import Transcriber

            utts = self._utterances()
            feats = Transcriber(self._asr()).features([u.load() for u in utts])
            self._cache_feats = (feats, [u.text for u in utts])
        return self._cache_feats

    def evaluate(self, config: Config, fidelity: int | None = None) -> list[float]:
        """[accuracy, Mbit]; `fidelity` (NLL only): the first that many utterances."""
        if self.accuracy == "nll":
            if fidelity is not None and fidelity not in self.fidelities:
                raise ValueError(f"fidelity {fidelity} is not one of {list(self.fidelities)}")
            terms, mbit = self.nll_terms(config, fidelity)
            return [sum(t[0] for t in terms) / sum(t[1] for t in terms), mbit]
        if fidelity is not None:
            raise ValueError("the WER objective has no fidelities (use accuracy='nll')")
        asr, encoder, mbit = self.build(config)
        return [self._wer(asr, encoder), mbit]


def _widths(full: int) -> tuple[int, ...]:
    """FFN widths offered: 1/2, 5/8, 3/4, 7/8 and all of the trained width."""
    return tuple(sorted({full // 2, 5 * full // 8, 3 * full // 4, 7 * full // 8, full}))


@dataclass
class WhisperSubnet(WhisperOnSubset):
    """Sub-networks of Whisper (elastic depth, encoder heads, FFN widths) by slicing, no
    retraining; objectives WER (%) on a fixed subset and block parameters (millions)."""

    name: str = "whisper-subnet"
    objectives: tuple[str, ...] = ("wer", "mparams")
    space: SearchSpace = field(init=False)

    def __post_init__(self) -> None:
        c = self._asr().config
        self.space = SearchSpace([
            Integer("enc_depth", max(1, c.encoder_layers // 2), c.encoder_layers),
            Integer("dec_depth", max(1, c.decoder_layers // 2), c.decoder_layers),
            Integer("enc_heads", max(1, c.encoder_attention_heads // 2), c.encoder_attention_heads),
            Ordinal("enc_ffn", _widths(c.encoder_ffn_dim)),
            Ordinal("dec_ffn", _widths(c.decoder_ffn_dim)),
        ])  # fmt: skip

    def reference_point(self) -> list[float]:
        """WER 100% and 1.1 × the full model's block parameters (millions)."""
        from frugal.search.supernet import block_params

        return [100.0, 1.1 * block_params(self._asr().model) / 1e6]

    def evaluate(self, config: Config) -> list[float]:
        import dataclasses

        from frugal.search.supernet import SubnetConfig, block_params, slice_whisper

        self.space.check(config)
        asr = self._asr()
        model = slice_whisper(asr.model, SubnetConfig(**config))
        return [self._wer(dataclasses.replace(asr, model=model)), block_params(model) / 1e6]


__all__ = [
    "JOINT_FORMATS",
    "JOINT_SPARSITIES",
    "WhisperJoint",
    "WhisperOnSubset",
    "WhisperSubnet",
]
