"""Word-level timestamps: cross-attention of Whisper's alignment heads, aligned to the audio
frames by dynamic time warping (the method of OpenAI's reference implementation).

The window's text tokens are run through the decoder once (teacher-forced); the scaled
query·key scores of the alignment heads over the window's audio frames are softmaxed,
standardized per frame across tokens, median-filtered along time and averaged over heads. DTW on
the negated matrix gives a monotonic token → frame path; a word starts at the frame where its
first token's row of the path begins and ends where the next word begins.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

TOKENS_PER_SECOND = 50  # encoder positions per second (20 ms each)
NO_SPACE_LANGUAGES = {"zh", "ja", "th", "lo", "my", "yue"}
PREPEND = "\"'“¿([{-"
APPEND = "\"'.。,，!！?？:：”)]}、"


@dataclass
class Word:
    """A word with start/end in seconds and the mean probability of its tokens."""

    word: str
    start: float
    end: float
    probability: float
    tokens: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def median_filter(x: torch.Tensor, width: int) -> torch.Tensor:
    """Median over a sliding window of odd `width` along the last axis (reflect padding)."""
    if width <= 1 or x.shape[-1] < width // 2 + 1:
        return x
    pad = width // 2
    flat = x.reshape(-1, 1, x.shape[-1])
    padded = torch.nn.functional.pad(flat, (pad, pad), mode="reflect")
    return padded.unfold(-1, width, 1).median(dim=-1).values.reshape(x.shape)


def dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost monotonic path through `cost` (N tokens × M frames) from (0, 0) to
    (N-1, M-1) with steps right, down or diagonal; returns the path's (rows, columns).
    Cells on one anti-diagonal depend only on the two before it, so each is one vector step."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    trace = np.zeros((n + 1, m + 1), dtype=np.int8)
    for k in range(2, n + m + 1):
        i = np.arange(max(1, k - m), min(n, k - 1) + 1)
        j = k - i
        c0, c1, c2 = acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]
        step = np.where((c0 < c1) & (c0 < c2), 0, np.where((c1 < c0) & (c1 < c2), 1, 2))
        acc[i, j] = cost[i - 1, j - 1] + np.choose(step, [c0, c1, c2])
        trace[i, j] = step
    trace[0, :], trace[:, 0] = 2, 1
    i, j, path = n, m, []
    while i > 0 or j > 0:
        path.append((i - 1, j - 1))
        t = trace[i, j]
        if t == 0:
            i, j = i - 1, j - 1
        elif t == 1:
            i -= 1
        else:
            j -= 1
    rows, cols = np.array(path[::-1]).T
    return rows, cols


def split_words(
    tokens: list[int], decode: Callable[[list[int]], str], eot: int, language: str | None
) -> tuple[list[str], list[list[int]]]:
    """Tokens grouped into words: pieces that decode to whole characters, joined until one
    starts with a space or is punctuation (per character for languages written without
    spaces). Special tokens (≥ eot) are words of their own."""
    pieces, piece_tokens, current = [], [], []
    for t in tokens:
        current.append(t)
        text = decode(current)
        if "\ufffd" not in text or t >= eot:
            pieces.append(text)
            piece_tokens.append(current)
            current = []
    if language in NO_SPACE_LANGUAGES:
        return pieces, piece_tokens
    words: list[str] = []
    word_tokens: list[list[int]] = []
    for piece, toks in zip(pieces, piece_tokens, strict=True):
        starts_word = (
            toks[0] >= eot
            or piece.startswith(" ")
            or piece.strip() in string.punctuation
            or not words
        )
        if starts_word:
            words.append(piece)
            word_tokens.append(list(toks))
        else:
            words[-1] += piece
            word_tokens[-1].extend(toks)
    return words, word_tokens


def merge_punctuation(words: list[Word]) -> list[Word]:
    """Attach opening punctuation (after a space) to the next word and closing punctuation
    (right after a word) to the previous one."""
    out: list[Word] = []
    carry: Word | None = None
    for w in words:
        if carry is not None:
            w = Word(
                carry.word + w.word.lstrip(),
                carry.start,
                w.end,
                w.probability,
                carry.tokens + w.tokens,
            )
            carry = None
        stripped = w.word.strip()
        spaced = w.word.startswith(" ")
        if spaced and stripped and all(c in PREPEND for c in stripped) and w is not words[-1]:
            carry = w
        elif out and not spaced and stripped and all(c in APPEND for c in stripped):
            prev = out[-1]
            out[-1] = Word(
                prev.word + stripped, prev.start, prev.end, prev.probability, prev.tokens + w.tokens
            )
        else:
            out.append(w)
    if carry is not None:
        out.append(carry)
    return out


def align_words(
    qk: torch.Tensor,
    token_probs: np.ndarray,
    text_tokens: list[int],
    n_frames: int,
    decode: Callable[[list[int]], str],
    eot: int,
    language: str | None = None,
    medfilt_width: int = 7,
) -> list[Word]:
    """Words of `text_tokens` with times in seconds from the window start.

    `qk`: scaled query·key scores of the alignment heads (heads, len(text_tokens) + 1, frames),
    row r from the position that predicts text token r (the last row predicts end-of-text);
    `token_probs`: each text token's probability; `n_frames`: encoder positions that hold audio."""
    if not text_tokens or n_frames < 2:
        return []
    weights = qk[:, :, :n_frames].float().softmax(dim=-1)
    std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
    weights = median_filter((weights - mean) / std.clamp_min(1e-10), medfilt_width)
    matrix = weights.mean(dim=0).double().numpy()
    rows, cols = dtw(-matrix)
    words, word_tokens = split_words([*text_tokens, eot], decode, eot, language)
    if len(word_tokens) <= 1:
        return []
    bounds = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    jumps = np.pad(np.diff(rows), (1, 0), constant_values=1).astype(bool)
    jump_times = cols[jumps] / TOKENS_PER_SECOND
    starts, ends = jump_times[bounds[:-1]], jump_times[bounds[1:]]
    out = [
        Word(word, float(s), float(e), float(np.mean(token_probs[a:b])), toks)
        for word, toks, s, e, a, b in zip(
            words[:-1], word_tokens[:-1], starts, ends, bounds[:-1], bounds[1:], strict=True
        )
    ]
    return merge_punctuation(out)


SENTENCE_END = ".。!！?？"


def word_duration_limits(words: list[Word]) -> tuple[float, float]:
    """(median, max) word duration in s: the median of non-zero durations, at most 0.7 s,
    and twice that."""
    durations = [w.end - w.start for w in words if w.end > w.start]
    median = min(0.7, float(np.median(durations))) if durations else 0.0
    return median, 2 * median


def fit_to_segment(
    words: list[Word], start: float, end: float, median: float, last_speech: float
) -> None:
    """The reference's clean-up of one segment's words (in place): DTW lets a word absorb a
    pause, so a first word long after the last speech (`last_speech`, s) and words at sentence
    ends are cut to twice the median duration, and the first and last words give way to the
    segment's timestamps when those are 0.5 s inside them."""
    if not words:
        return
    limit = 2 * median
    w0 = words[0]
    if w0.end - last_speech > 4 * median and (
        w0.end - w0.start > limit or (len(words) > 1 and words[1].end - w0.start > 2 * limit)
    ):
        if len(words) > 1 and words[1].end - words[1].start > limit:
            w0.end = words[1].start = max(words[1].end / 2, words[1].end - limit)
        w0.start = max(0.0, w0.end - limit)
    if limit > 0:
        for k, w in enumerate(words):
            if w.end - w.start > limit:
                if w.word.strip()[-1:] in SENTENCE_END:
                    w.end = w.start + limit
                elif k > 0 and words[k - 1].word.strip()[-1:] in SENTENCE_END:
                    w.start = w.end - limit
    first, last = words[0], words[-1]
    if start < first.end and start - 0.5 > first.start:
        first.start = max(0.0, min(first.end - median, start))
    if end > last.start and end + 0.5 < last.end:
        last.end = max(last.start + median, end)
