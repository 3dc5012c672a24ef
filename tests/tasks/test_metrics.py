import pytest

from frugal.tasks.asr.metrics import normalize_text, wer, word_errors


def test_normalizer_hand_worked():
    assert (
        normalize_text("Mr. Smith's colour TV, isn't it?") == "mister smith is color tv is not it"
    )
    assert normalize_text("It costs twenty five dollars.") == "it costs $25"
    assert normalize_text("Hello,   WORLD!!") == "hello world"


def test_word_errors_hand_worked():
    ref = "The cat sat on the mat."
    assert word_errors(ref, "the cat sit on the mat today") == (1, 0, 1, 6)  # sat->sit, +today
    assert word_errors(ref, "the cat on the mat") == (0, 1, 0, 6)  # -sat
    # spelling and punctuation differences are not errors after normalization
    colour = "The colour of the car, isn't it?"
    assert word_errors(colour, "the color of the car is not it") == (0, 0, 0, 8)
    assert word_errors("hello there", "") == (0, 2, 0, 2)


def test_corpus_wer_pools_words():
    res = wer(["a b c d", "e f"], ["a b c d", "x"])
    # second utterance: 1 substitution + 1 deletion over 6 reference words total
    assert res.words == 6 and res.wer == pytest.approx(100 * 2 / 6)
    assert res.per_utterance == [0, 2]


def test_wer_rejects_mismatched_or_empty():
    with pytest.raises(ValueError):
        wer(["a"], [])
    with pytest.raises(ValueError, match="no words"):
        wer(["  ", ""], ["x", "y"])
