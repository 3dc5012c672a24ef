"""Whisper as a quantization task: teacher-forced batches (log-mel features + reference
tokens) for calibration and for the global loss, a seeded calibration/held-out split, and
batched WER of a model on held-out utterances."""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from frugal.data.audio import SAMPLE_RATE
from frugal.data.datasets import SpeechDataset, Utterance
from frugal.models.whisper import WhisperASR
from frugal.nn.batches import IGNORE, Batch, pad_rows
from frugal.tasks.asr.metrics import WERResult, reference_tokens, wer
from frugal.tasks.asr.transcribe import WINDOW_S, DecodeOptions, Transcriber

# The quantized part of a Whisper: its two stacks of transformer blocks (what GPTQ walks
# block by block) and the glob of every Linear inside them (convolutions, embeddings and
# the tied output projection stay in full precision, the usual weight-quantization recipe).
WHISPER_STACKS = ("model.encoder.layers", "model.decoder.layers")
WHISPER_BLOCKS = "model.*.layers.*"


def split_calibration(
    data: SpeechDataset, budget: int, seed: int = 0
) -> tuple[SpeechDataset, SpeechDataset]:
    """A seeded random `budget` utterances for calibration and the rest, held out."""
    if not 1 <= budget < len(data):
        raise ValueError(
            f"a calibration budget of {budget} needs a data set of more than {budget} "
            f"utterances; {data.name} has {len(data)}"
        )
    order = list(range(len(data)))
    random.Random(seed).shuffle(order)
    pick = [data[i] for i in sorted(order[:budget])]
    rest = [data[i] for i in sorted(order[budget:])]
    return (
        SpeechDataset(f"{data.name}:calib{budget}@{seed}", pick),
        SpeechDataset(f"{data.name}:heldout{budget}@{seed}", rest),
    )


def split_by_voice(
    data: SpeechDataset, heldout: int, budget: int, seed: int = 0, by: str = "voice"
) -> tuple[SpeechDataset, SpeechDataset, SpeechDataset]:
    """(calibration, seen rest, unseen held-out): `heldout` voices — or, with by="engine",
    whole speech engines (the part of `voice` before ":") — are a seeded choice kept out of
    calibration entirely; `budget` utterances of the others calibrate and their remaining
    utterances are held out as "seen voices". Voices come from each utterance's `voice`."""
    if by not in ("voice", "engine"):
        raise ValueError(f"unknown grouping {by!r}; choose voice or engine")
    if any("voice" not in u.meta for u in data):
        raise ValueError(f"{data.name}: some utterances have no 'voice' field")

    def group(u: Utterance) -> str:
        return u.meta["voice"] if by == "voice" else u.meta["voice"].split(":")[0]

    groups = sorted({group(u) for u in data})
    if len(groups) < heldout + 1 or heldout < 1:
        raise ValueError(
            f"a split by {by} holding out {heldout} needs more: {data.name} has "
            f"{len(groups)} {by}(s) (from its utterances' 'voice' field)"
        )
    unseen = set(random.Random(seed).sample(groups, heldout))
    seen = SpeechDataset(data.name, [u for u in data if group(u) not in unseen])
    held = [u for u in data if group(u) in unseen]
    calib, rest = split_calibration(seen, min(budget, len(seen) - 1), seed)
    tag = f"{data.name}:{by}s-{'+'.join(sorted(unseen))}"
    return calib, rest, SpeechDataset(tag, held)


def teacher_batches(
    asr: WhisperASR,
    utterances: Sequence[Utterance],
    batch_size: int = 4,
    language: str | None = "en",
) -> list[Batch]:
    """Batches whose target is each reference's text tokens and end-of-text after the
    decoder prompt (the prompt itself is not scored). Audio must fit one 30 s window."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    utts = list(utterances)
    if not utts:
        raise ValueError("no utterances to build batches from")
    prompt = asr.prompt_ids(language if asr.multilingual else None)
    eot = asr.token_ids["eot"]
    max_len = asr.config.max_target_positions
    dtype = next(asr.model.parameters()).dtype
    batches = []
    for start in range(0, len(utts), batch_size):
        chunk = utts[start : start + batch_size]
        audios = []
        for u in chunk:
            if not u.text:
                raise ValueError(f"utterance {u.id} has no reference transcript")
            a = u.load()
            if len(a) > WINDOW_S * SAMPLE_RATE:
                raise ValueError(f"utterance {u.id} is longer than Whisper's 30 s window")
            audios.append(a)
        feats = asr.feature_extractor(audios).to(dtype)
        rows = [prompt + reference_tokens(asr, u.text) + [eot] for u in chunk]
        if max(len(r) for r in rows) > max_len:
            raise ValueError(f"a reference is longer than the decoder's {max_len} positions")
        ids = pad_rows(rows, eot)
        target = ids[:, 1:].clone()
        target[:, : len(prompt) - 1] = IGNORE
        for i, r in enumerate(rows):
            target[i, len(r) - 1 :] = IGNORE
        batches.append(Batch({"input_features": feats, "decoder_input_ids": ids[:, :-1]}, target))
    return batches


@torch.inference_mode()
def heldout_wer(
    asr: WhisperASR,
    utterances: Sequence[Utterance],
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    encoder=None,
) -> WERResult:
    """Corpus WER (%) of greedy (lean) transcripts of the utterances, decoded in batches;
    `max_new_tokens` caps a broken model's loops, `encoder` replaces the dense encoder."""
    utts = list(utterances)
    opts = DecodeOptions(batch_size=batch_size, max_new_tokens=max_new_tokens)
    tr = Transcriber(asr, opts, encoder=encoder)
    hyps = [t.text for t in tr.transcribe([u.load() for u in utts])]
    return wer([u.text for u in utts], hyps)


__all__ = [
    "WHISPER_BLOCKS",
    "WHISPER_STACKS",
    "heldout_wer",
    "split_by_voice",
    "split_calibration",
    "teacher_batches",
]
