"""Silero VAD: speech spans and ≤30 s chunks of a recording made from built-in utterances."""

import itertools

import numpy as np
import pytest
import torch

from frugal.data.vad import VadOptions, speech_chunks, speech_spans
from tests.tolerance import NETWORK_MAX_U, assert_fp32_network_close

SR = 16000


@pytest.fixture(scope="module")
def talk(builtin):
    """Six utterances, each after a stretch of silence: 2, 5, 1, 8, 3, 4 s."""
    parts, starts, t = [], [], 0.0
    for i, gap in zip(range(6), (2, 5, 1, 8, 3, 4), strict=True):
        a = builtin[i * 7].load()
        parts += [np.zeros(gap * SR, np.float32), a]
        starts.append((t + gap, t + gap + len(a) / SR))
        t += gap + len(a) / SR
    return np.concatenate(parts), starts


def test_spans_cover_each_utterance(talk):
    audio, utts = talk
    spans = [(a / SR, b / SR) for a, b in speech_spans(audio)]
    for start, end in utts:  # every utterance overlaps a span
        assert any(a < end and b > start for a, b in spans), (start, end, spans)
    silence = [(0.0, 2.0)] + [(utts[k][1], utts[k + 1][0]) for k in range(5)]
    for gap_start, gap_end in silence:  # long pauses are not speech (padding aside)
        if gap_end - gap_start >= 3:
            mid = (gap_start + gap_end) / 2
            assert not any(a < mid < b for a, b in spans), (mid, spans)


def test_chunks_are_at_most_the_limit_and_cover_all_speech(talk):
    audio, _ = talk
    for limit in (30.0, 10.0):
        chunks = speech_chunks(audio, VadOptions(max_chunk_s=limit))
        assert all(0 < b - a <= limit * SR for a, b in chunks)
        assert all(b1 <= a2 for (_, b1), (a2, _) in itertools.pairwise(chunks))
        for a, b in speech_spans(audio, VadOptions(max_chunk_s=limit)):
            assert any(ca <= a and b <= cb for ca, cb in chunks)
    assert len(speech_chunks(audio, VadOptions(max_chunk_s=10.0))) > len(speech_chunks(audio))


def test_no_speech_no_chunk_and_threads_restored():
    threads = torch.get_num_threads()
    rng = np.random.default_rng(0)
    for audio in (np.zeros(SR * 10, np.float32), 0.01 * rng.standard_normal(SR * 10), np.zeros(3)):
        assert speech_chunks(audio.astype(np.float32)) == []
    assert torch.get_num_threads() == threads  # silero's import sets one thread; undone


def test_options_validate():
    with pytest.raises(ValueError, match="max chunk"):
        VadOptions(max_chunk_s=45)
    with pytest.raises(ValueError, match="threshold"):
        VadOptions(threshold=1.5)


def test_frame_batched_network_equals_the_packaged_model(talk):
    """Our all-frames-at-once Silero and the package's TorchScript model called frame by frame
    (its own use) both stay within fp32's network allowance (tests/tolerance.py) of a float64
    run of ours: the same function, up to float32 rounding."""
    import copy

    from silero_vad import load_silero_vad

    from frugal.data.vad import FRAME, silero_net, speech_probabilities

    audio, _ = talk
    ours = speech_probabilities(audio)
    exact = copy.deepcopy(silero_net()).double()(torch.from_numpy(audio).double()).numpy()
    threads = torch.get_num_threads()
    jit = load_silero_vad()
    x = torch.nn.functional.pad(torch.from_numpy(audio), (0, -len(audio) % FRAME))
    with torch.no_grad():
        ref = np.array([jit(f, SR).item() for f in x.view(-1, FRAME)])
    torch.set_num_threads(threads)  # loading the package's model set one thread
    assert ours.shape == ref.shape
    assert_fp32_network_close(ours, exact, "ours")
    assert_fp32_network_close(ref, exact, "TorchScript")


def test_blocks_of_frames_carry_the_lstm_state(talk):
    import copy

    from frugal.data.vad import silero_net

    x = torch.from_numpy(talk[0])
    net64 = copy.deepcopy(silero_net()).double()  # silero_net() is shared: never cast it
    whole, pieces = net64(x.double(), block=10**6), net64(x.double(), block=7)
    assert whole.shape == pieces.shape
    # in float64 the split changes only rounding: the network allowance scaled to float64's
    # unit roundoff (2^-53) is ~1e-12; a state lost at a block edge moves probabilities by >1e-3
    assert (whole - pieces).abs().max() <= NETWORK_MAX_U * 2.0**-53 * whole.abs().max()
    assert_fp32_network_close(silero_net()(x, block=7), whole, "fp32 in blocks of 7")
