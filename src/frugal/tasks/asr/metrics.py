"""ASR metrics: WER after Whisper's English normalizer, token NLL under teacher forcing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import jiwer
import numpy as np
import torch
import torch.nn.functional as F

from frugal.models.whisper import WhisperASR
from frugal.tasks.asr import states


@lru_cache(maxsize=1)
def _normalizer():
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize_text(text: str) -> str:
    """Whisper's English normalizer (numbers, British→American spelling, punctuation, case)."""
    return _normalizer()(text)


@dataclass
class WERResult:
    """Corpus word error rate in % with its error counts (after normalization)."""

    wer: float
    substitutions: int
    deletions: int
    insertions: int
    words: int
    per_utterance: list[int]  # word errors per utterance

    def to_dict(self) -> dict:
        return {
            "wer_pct": self.wer,
            "substitutions": self.substitutions,
            "deletions": self.deletions,
            "insertions": self.insertions,
            "reference_words": self.words,
        }


def word_errors(reference: str, hypothesis: str) -> tuple[int, int, int, int]:
    """(substitutions, deletions, insertions, reference words) of one normalized pair."""
    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref.split():
        return 0, 0, len(hyp.split()), 0
    if not hyp.split():
        return 0, len(ref.split()), 0, len(ref.split())
    out = jiwer.process_words(ref, hyp)
    return out.substitutions, out.deletions, out.insertions, len(ref.split())


def wer(references: Sequence[str], hypotheses: Sequence[str]) -> WERResult:
    """Corpus WER (%) = (S + D + I) / reference words, each text normalized first."""
    if len(references) != len(hypotheses):
        raise ValueError("references and hypotheses differ in length")
    counts = np.array([word_errors(r, h) for r, h in zip(references, hypotheses, strict=True)])
    if counts.size == 0:
        raise ValueError("no utterances to score")
    s, d, i, n = counts.sum(0).tolist()
    if n == 0:
        raise ValueError("references hold no words after normalization")
    return WERResult(100.0 * (s + d + i) / n, s, d, i, n, counts[:, :3].sum(1).tolist())


def reference_tokens(asr: WhisperASR, text: str) -> list[int]:
    """Text tokens of a reference transcript (leading space, as Whisper emits them)."""
    return asr.tokenizer.encode(" " + text.strip(), add_special_tokens=False)


@torch.inference_mode()
def token_nll(
    asr: WhisperASR,
    encoder_out: torch.Tensor,
    texts: Sequence[str],
    prompts: Sequence[Sequence[int]],
) -> list[tuple[float, int]]:
    """Summed negative log-likelihood (nats) and token count of each reference (its text
    tokens plus end-of-text) given the prompt, under teacher forcing."""
    eot = asr.token_ids["eot"]
    rows = [list(p) + reference_tokens(asr, t) + [eot] for p, t in zip(prompts, texts, strict=True)]
    max_len = asr.config.max_target_positions
    if max(len(r) for r in rows) > max_len:
        raise ValueError(f"reference longer than the decoder's {max_len} positions")
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), eot, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
    # rows of unequal length (a sparsified batch) attend to their own frames only, as the
    # decoder that transcribes them does
    mask = states.frame_mask(encoder_out)
    out = asr.model(
        encoder_outputs=(encoder_out,), decoder_input_ids=ids[:, :-1], encoder_mask=mask
    )
    logp = F.log_softmax(out.logits.float(), dim=-1)
    picked = logp.gather(-1, ids[:, 1:, None])[..., 0]
    result = []
    for i, (r, p) in enumerate(zip(rows, prompts, strict=True)):
        start, stop = len(p) - 1, len(r) - 1  # predictions of positions len(p)..len(r)-1
        result.append((float(-picked[i, start:stop].sum()), stop - start))
    return result


def paired_bootstrap(
    errors: np.ndarray, base_errors: np.ndarray, words: np.ndarray, n: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """WER difference (percentage points) and its 95% interval, resampling utterances."""
    rng = np.random.default_rng(seed)
    diff = errors - base_errors
    delta = 100.0 * diff.sum() / words.sum()
    idx = rng.integers(0, len(words), size=(n, len(words)))
    boot = 100.0 * diff[idx].sum(1) / words[idx].sum(1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return float(delta), float(lo), float(hi)
