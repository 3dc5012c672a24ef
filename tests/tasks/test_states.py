import torch

from frugal.tasks.asr import states


def test_zero_frames_mark_padding_and_round_trip():
    a, b = torch.randn(5, 4), torch.randn(3, 4)
    batch = states.stack([a, b])
    assert batch.shape == (2, 5, 4)
    assert states.lengths(batch) == [5, 3]
    assert torch.equal(states.trim(batch[1]), b) and torch.equal(states.trim(batch[0]), a)
    mask = states.frame_mask(batch)
    assert mask.tolist() == [[True] * 5, [True] * 3 + [False] * 2]
    # rows already padded are trimmed before stacking again, to the longest real row
    again = states.stack([batch[1], b[:2]])
    assert again.shape == (2, 3, 4) and states.lengths(again) == [3, 2]


def test_dense_batches_have_no_mask():
    dense = torch.randn(2, 6, 4)
    assert states.frame_mask(dense) is None
    assert states.lengths(dense) == [6, 6]
    assert torch.equal(states.stack(list(dense)), dense)
