"""Whisper's timestamp tokens: the decoding rules and the split of a window into segments.

Timestamp tokens `<|0.00|>` … `<|30.00|>` follow `<|notimestamps|>` in the vocabulary, one
every 0.02 s (two mel frames). A timestamped window reads `<|t0|> text <|t1|><|t1|> text <|t2|>`:
segments open and close with timestamps, timestamps never decrease, the first token is a
timestamp no later than 1 s. These are the rules of OpenAI's reference decoder, which
transformers' `WhisperTimeStampLogitsProcessor` and CTranslate2 apply too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SECONDS_PER_TIMESTAMP = 0.02  # one timestamp token step
FRAMES_PER_TIMESTAMP = 2  # mel frames (10 ms each) per timestamp step
FRAMES_PER_SECOND = 100  # mel frames per second
WINDOW_FRAMES = 3000  # Whisper's 30 s window in mel frames


@dataclass(frozen=True)
class TimestampRules:
    """Token ids and options of timestamp decoding.

    `max_initial_index`: the first timestamp is at most this many steps (50 = 1.0 s)."""

    timestamp_begin: int
    no_timestamps: int
    eot: int
    max_initial_index: int | None = 50

    def mask(self, sampled: list[list[int]], vocab: int, device=None) -> torch.Tensor:
        """Additive bias (B, vocab), 0 or -inf, from the tokens sampled so far in each row
        (without the prompt): pairing, monotonicity, the initial-timestamp rules. The rule that
        forces a timestamp when their summed probability wins needs the logits: `force`."""
        tb = self.timestamp_begin
        bias = torch.zeros(len(sampled), vocab, device=device)
        bias[:, self.no_timestamps] = float("-inf")
        for k, seq in enumerate(sampled):
            if not seq:  # the first token is a timestamp, and an early one
                bias[k, :tb] = float("-inf")
                if self.max_initial_index is not None:
                    bias[k, tb + self.max_initial_index + 1 :] = float("-inf")
                continue
            last_ts = seq[-1] >= tb
            penultimate_ts = len(seq) < 2 or seq[-2] >= tb
            if last_ts:
                if penultimate_ts:  # a pair just closed: text (or end) must follow
                    bias[k, tb:] = float("-inf")
                else:  # a segment just ended: its closing pair-mate or end-of-text
                    bias[k, : self.eot] = float("-inf")
            stamps = [t for t in seq if t >= tb]
            if stamps:  # never decrease; a new segment starts after the last one
                last = stamps[-1] if (last_ts and not penultimate_ts) else stamps[-1] + 1
                bias[k, tb:last] = float("-inf")
        return bias

    def force(self, logits: torch.Tensor) -> torch.Tensor:
        """Mask text tokens in rows where the timestamps' summed probability beats every text
        token (logits already masked, (B, vocab)); returns the masked logits."""
        tb = self.timestamp_begin
        stamps = torch.logsumexp(logits[:, tb:].float(), dim=-1)
        text = logits[:, :tb].float().amax(dim=-1)
        out = logits.clone()
        out[:, :tb] = out[:, :tb].masked_fill((stamps > text)[:, None], float("-inf"))
        return out


@dataclass
class RawSegment:
    """A segment of one window: times in seconds from the window start, its tokens."""

    start: float
    end: float
    tokens: list[int]


def split_segments(
    tokens: list[int], timestamp_begin: int, window_frames: int
) -> tuple[list[RawSegment], int]:
    """Segments of a timestamped window and how far to seek (mel frames).

    Consecutive timestamps close one segment and open the next. When the window ends on a
    single timestamp, every segment is complete and the whole window is consumed; otherwise
    the last segment is cut off by the window edge, so decoding resumes at the last complete
    segment's end. A window without a timestamp pair is one segment, from its first timestamp
    to its closing one (to the window's end when none closes it).
    `window_frames`: frames of audio in this window (≤ 3000)."""
    tb = timestamp_begin
    is_ts = [t >= tb for t in tokens]
    single_ending = len(tokens) >= 2 and not is_ts[-2] and is_ts[-1]
    cuts = [i + 1 for i in range(len(tokens) - 1) if is_ts[i] and is_ts[i + 1]]
    if cuts:
        if single_ending:
            cuts.append(len(tokens))
        segments, last = [], 0
        for cut in cuts:
            piece = tokens[last:cut]
            start = (piece[0] - tb) * SECONDS_PER_TIMESTAMP
            end = (piece[-1] - tb) * SECONDS_PER_TIMESTAMP
            segments.append(RawSegment(start, end, piece))
            last = cut
        if single_ending:
            return segments, window_frames
        return segments, (tokens[last - 1] - tb) * FRAMES_PER_TIMESTAMP
    end = window_frames / FRAMES_PER_SECOND
    if tokens and is_ts[-1] and tokens[-1] != tb:  # closed by a timestamp: it ends there
        end = (tokens[-1] - tb) * SECONDS_PER_TIMESTAMP
    start = (tokens[0] - tb) * SECONDS_PER_TIMESTAMP if is_ts and is_ts[0] else 0.0
    return [RawSegment(start, max(start, end), tokens)], window_frames
