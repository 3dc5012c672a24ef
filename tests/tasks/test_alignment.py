"""Word timestamps: DTW and the median filter against plain references, word splitting, and
word times on a recording whose sentences are separated by known pauses."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import median_filter as scipy_median

from frugal.tasks.asr import DecodeOptions, Transcriber
from frugal.tasks.asr.alignment import Word, dtw, median_filter, merge_punctuation, split_words
from frugal.tasks.asr.longform import LongFormOptions


def dtw_reference(cost):
    """Cell by cell, in the order of the textbook recursion (same tie rule)."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0
    trace = np.zeros((n + 1, m + 1), int)
    for j in range(1, m + 1):
        for i in range(1, n + 1):
            c0, c1, c2 = acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]
            if c0 < c1 and c0 < c2:
                c, t = c0, 0
            elif c1 < c0 and c1 < c2:
                c, t = c1, 1
            else:
                c, t = c2, 2
            acc[i, j] = cost[i - 1, j - 1] + c
            trace[i, j] = t
    trace[0, :], trace[:, 0] = 2, 1
    i, j, path = n, m, []
    while i > 0 or j > 0:
        path.append((i - 1, j - 1))
        i, j = {0: (i - 1, j - 1), 1: (i - 1, j), 2: (i, j - 1)}[int(trace[i, j])]
    return np.array(path[::-1]).T


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 9),
    st.integers(1, 30),
    st.integers(0, 2**31 - 1),
    st.booleans(),
)
def test_dtw_equals_the_cell_by_cell_recursion(n, m, seed, ties):
    rng = np.random.default_rng(seed)
    cost = rng.integers(0, 3, (n, m)).astype(float) if ties else rng.standard_normal((n, m))
    rows, cols = dtw(cost)
    ref_rows, ref_cols = dtw_reference(cost)
    assert np.array_equal(rows, ref_rows) and np.array_equal(cols, ref_cols)
    assert rows[0] == 0 and cols[0] == 0 and rows[-1] == n - 1 and cols[-1] == m - 1
    assert (np.diff(rows) >= 0).all() and (np.diff(cols) >= 0).all()


def test_median_filter_matches_scipy_with_reflection():
    x = torch.randn(3, 4, 50)
    ours = median_filter(x, 7).numpy()
    ref = scipy_median(x.numpy(), size=(1, 1, 7), mode="mirror")
    assert np.array_equal(ours, ref)


def test_split_words_on_spaces_and_punctuation():
    vocab = {1: " Hello", 2: ",", 3: " wor", 4: "ld", 5: ".", 9: "<eot>"}

    def decode(toks):
        return "".join(vocab[t] for t in toks)

    words, toks = split_words([1, 2, 3, 4, 5, 9], decode, eot=9, language="en")
    assert words == [" Hello", ",", " world", ".", "<eot>"]
    assert toks == [[1], [2], [3, 4], [5], [9]]
    merged = merge_punctuation(
        [
            Word(w, k, k + 1, 1.0, t)
            for k, (w, t) in enumerate(zip(words[:-1], toks[:-1], strict=False))
        ]
    )
    assert [(w.word, w.start, w.end, w.tokens) for w in merged] == [
        (" Hello,", 0, 1, [1, 2]),
        (" world.", 2, 3, [3, 4, 5]),
    ]


def test_word_times_follow_the_pauses(tiny_en, builtin):
    """Three sentences after 3 s, 6 s and 4 s of silence: every word lies inside its own
    sentence's stretch of audio (with 0.5 s of slack), in order."""
    sr, parts, spans, t = 16000, [], [], 0.0
    for i, gap in zip((1, 4, 9), (3, 6, 4), strict=True):
        a = builtin[i].load()
        parts += [np.zeros(gap * sr, np.float32), a]
        spans.append((t + gap, t + gap + len(a) / sr))
        t += gap + len(a) / sr
    audio = np.concatenate(parts)
    lf = LongFormOptions(word_timestamps=True)
    res = Transcriber(tiny_en, DecodeOptions(timestamps=True, long_form=lf)).transcribe([audio])[0]
    words = [w for g in res.segments for w in g.words]
    assert len(words) >= 25
    starts = [w.start for w in words]
    assert starts == sorted(starts) and all(w.end >= w.start for w in words)
    assert all(0 <= w.probability <= 1 for w in words)
    for w in words:
        assert any(a - 0.5 <= w.start and w.end <= b + 0.5 for a, b in spans), (w, spans)
    text = "".join(w.word for w in words).strip()
    assert text == " ".join(g.text for g in res.segments)


@pytest.mark.parametrize("mode", ["batched"])
def test_word_timestamps_in_batched_mode(tiny_en, builtin, mode):
    audio = np.concatenate([builtin[2].load(), np.zeros(16000 * 2, np.float32), builtin[3].load()])
    lf = LongFormOptions(mode=mode, word_timestamps=True)
    res = Transcriber(tiny_en, DecodeOptions(timestamps=True, long_form=lf)).transcribe([audio])[0]
    assert all(g.words for g in res.segments)
    assert max(w.end for g in res.segments for w in g.words) <= len(audio) / 16000 + 0.02
