"""Whisper's timestamp rules and the split of a window into segments (pure functions)."""

import math

import torch

from frugal.tasks.asr.timestamps import TimestampRules, split_segments

TB, NOTS, EOT, V = 100, 99, 50, 200  # a toy vocabulary: text < 50, specials, stamps 100..199
RULES = TimestampRules(TB, NOTS, EOT, max_initial_index=5)


def allowed(row: torch.Tensor) -> set[int]:
    return set(torch.nonzero(row == 0)[:, 0].tolist())


def test_first_token_is_an_early_timestamp():
    (row,) = RULES.mask([[]], V)
    assert allowed(row) == set(range(TB, TB + 6))


def test_after_text_anything_but_earlier_timestamps():
    (row,) = RULES.mask([[TB + 3, 7, 8]], V)
    assert allowed(row) == (set(range(TB)) - {NOTS}) | set(range(TB + 4, V))


def test_a_closing_timestamp_is_followed_by_its_pair_or_the_end():
    (row,) = RULES.mask([[TB + 3, 7, TB + 9]], V)
    # same stamp again (opening the next segment), a later one, or end-of-text; no text
    assert allowed(row) == set(range(EOT, TB)) - {NOTS} | set(range(TB + 9, V))


def test_after_a_pair_text_must_follow():
    (row,) = RULES.mask([[TB + 3, 7, TB + 9, TB + 9]], V)
    assert allowed(row) == set(range(TB)) - {NOTS}


def test_rows_are_independent():
    rows = RULES.mask([[], [TB, 5]], V)
    assert allowed(rows[0]) == set(range(TB, TB + 6))
    assert allowed(rows[1]) == (set(range(TB)) - {NOTS}) | set(range(TB + 1, V))


def test_force_masks_text_when_stamps_win_in_sum():
    logits = torch.full((2, V), -math.inf)
    logits[:, 10] = 0.0  # best text token
    logits[0, TB : TB + 4] = -1.0  # 4·e^-1 = 1.47 > e^0: the stamps win together
    logits[1, TB : TB + 2] = -1.0  # 2·e^-1 = 0.74 < 1: text stays
    out = RULES.force(logits)
    assert out[0, :TB].max() == -math.inf and out[0, TB] == -1.0
    assert torch.equal(out[1], logits[1])


def test_split_pairs_with_single_timestamp_ending_consumes_the_window():
    toks = [TB + 0, 1, 2, TB + 50, TB + 50, 3, TB + 120]
    segs, seek = split_segments(toks, TB, 3000)
    assert [(s.start, s.end) for s in segs] == [(0.0, 1.0), (1.0, 2.4)]
    assert segs[1].tokens == [TB + 50, 3, TB + 120]
    assert seek == 3000


def test_split_incomplete_last_segment_seeks_to_last_complete_end():
    toks = [TB + 0, 1, 2, TB + 50, TB + 50, 3, 4]  # the second segment is cut off
    segs, seek = split_segments(toks, TB, 3000)
    assert [(s.start, s.end) for s in segs] == [(0.0, 1.0)]
    assert seek == 100  # 1.0 s = 100 mel frames


def test_split_without_a_pair_is_one_segment_of_the_window():
    segs, seek = split_segments([TB + 10, 1, 2, TB + 80], TB, 1500)
    assert [(s.start, s.end) for s in segs] == [(0.2, 1.6)] and seek == 1500
    segs, seek = split_segments([TB + 10, 1, 2], TB, 1500)  # never closed: to window end
    assert [(s.start, s.end) for s in segs] == [(0.2, 15.0)] and seek == 1500
