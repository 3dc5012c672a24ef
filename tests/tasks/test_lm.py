"""The causal-LM task: loading, token streams, calibration windows, sliding-window NLL."""

import math

import pytest
import torch
import torch.nn.functional as F

from frugal.quantize import IGNORE, mean_nll
from frugal.tasks.lm import (
    calibration_windows,
    load_causal_lm,
    perplexity,
    read_tokens,
    sliding_windows,
)
from tests.lm_helpers import TEXT, save_tiny_lm, tiny_lm


def test_sliding_windows_score_every_token_once():
    tokens = torch.arange(100)
    for context, stride in [(32, 16), (32, 32), (50, 7), (200, 10)]:
        batches = sliding_windows(tokens, context, stride)
        scored = []
        for b in batches:
            ids, target = b.inputs["input_ids"][0], b.target[0]
            assert len(ids) <= context
            keep = target != IGNORE
            assert torch.equal(ids[1:][keep[:-1]], target[:-1][keep[:-1]])
            scored += [int(t) for t in target if t != IGNORE]
        assert scored == list(range(1, 100))


def test_windows_after_a_text_prefix_score_every_token_once_after_it():
    """Gemma-style <bos> before every window: the first token is scored too (after the prefix
    alone), each target is the token after its input, the model sees prefix + context."""
    tokens = torch.arange(10, 110)
    for prefix in ([2], [7, 8]):
        for context, stride in [(32, 16), (32, 32), (50, 7)]:
            scored = []
            for b in sliding_windows(tokens, context, stride, prefix):
                ids, target = b.inputs["input_ids"][0], b.target[0]
                assert ids[: len(prefix)].tolist() == prefix and len(ids) <= context + len(prefix)
                keep = target != IGNORE
                nxt = torch.cat([ids[1:], target[-1:]])
                assert torch.equal(nxt[keep], target[keep])
                scored += [int(t) for t in target[keep]]
            assert scored == list(range(10, 110))
        (batch,) = calibration_windows(tokens, 2, 16, seed=1, prefix=prefix)
        assert batch.inputs["input_ids"].shape == (2, 16 + len(prefix))
        assert (batch.inputs["input_ids"][:, : len(prefix)] == torch.tensor(prefix)).all()
        text = batch.inputs["input_ids"][:, len(prefix) :]
        assert torch.equal(batch.target[:, len(prefix) - 1 : -1], text)  # first text token too
        assert torch.equal(batch.target[:, len(prefix) :], text + 1)  # the consecutive ids
        assert (batch.target[:, : len(prefix) - 1] == IGNORE).all()


def test_sliding_nll_equals_one_pass_when_context_covers_the_text():
    lm = tiny_lm()
    tokens = read_tokens_from_text(lm, TEXT[:300])
    nll, ppl = perplexity(lm.model, sliding_windows(tokens, 256, 64))
    with torch.no_grad():
        logits = lm.model(tokens[None, :-1]).logits[0]
    direct = F.cross_entropy(logits, tokens[1:]).item()
    if len(tokens) <= 256:
        assert nll == pytest.approx(direct, rel=1e-5)
    assert ppl == pytest.approx(math.exp(nll))


def read_tokens_from_text(lm, text):
    return torch.tensor(lm.tokenizer(text, add_special_tokens=False)["input_ids"])


def test_load_folder_and_read_files(tmp_path):
    folder = save_tiny_lm(tmp_path / "lm")
    lm = load_causal_lm(folder)
    (tmp_path / "a.txt").write_text(TEXT[:500])
    tokens = read_tokens(lm, [tmp_path / "a.txt"])
    assert len(tokens) == len(TEXT[:500].encode())  # byte-level, no merges
    assert lm.max_positions == 256
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(ValueError, match="empty"):
        read_tokens(lm, [tmp_path / "empty.txt"])
    with pytest.raises(FileNotFoundError):
        read_tokens(lm, [tmp_path / "missing.txt"])
    with pytest.raises(FileNotFoundError):
        load_causal_lm(tmp_path / "nope")


def test_calibration_windows_are_seeded_and_sized():
    tokens = torch.arange(1000)
    a = calibration_windows(tokens, 10, 64, seed=3, batch_size=4)
    b = calibration_windows(tokens, 10, 64, seed=3, batch_size=4)
    assert [x.examples for x in a] == [4, 4, 2]
    assert all(torch.equal(x.target, y.target) for x, y in zip(a, b, strict=True))
    assert all(torch.equal(x.inputs["input_ids"][:, 1:], x.target[:, :-1]) for x in a)
    with pytest.raises(ValueError, match="fewer"):
        calibration_windows(torch.arange(10), 1, 64)


def test_mean_nll_counts_only_targets():
    lm = tiny_lm()
    tokens = torch.arange(50) % 256
    full = sliding_windows(tokens, 64, 64)
    assert sum(b.tokens for b in full) == 49
    assert mean_nll(lm.model, full) > 0


def test_cli_quantize_then_perplexity(tmp_path):
    import json

    from safetensors import safe_open
    from typer.testing import CliRunner

    from frugal.cli import app

    folder = save_tiny_lm(tmp_path / "lm")
    (tmp_path / "t.txt").write_text(TEXT)
    runner = CliRunner()
    res = runner.invoke(app, ["lm", "perplexity", "-m", str(folder), "-t", str(tmp_path / "t.txt"),
                              "--context", "128", "--stride", "64"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "perplexity" in res.stdout
    res = runner.invoke(app, ["lm", "quantize", "-m", str(folder), "-t", str(tmp_path / "t.txt"),
                              "-f", "mxint4", "--budget", "8", "--length", "64",
                              "-o", str(tmp_path / "q")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "8 windows of 64 tokens" in res.stdout
    meta = json.loads((tmp_path / "q" / "frugal_quant.json").read_text())
    assert meta["quantization"]["method"] == "gptq"
    assert len(meta["quantization"]["modules"]) == 2 * 7  # q k v o gate up down per block
    with safe_open(str(next((tmp_path / "q").glob("*.safetensors"))), "pt") as f:
        assert json.loads(f.metadata()["frugal_quantization"])["method"] == "gptq"
    # a quantized model saved and reloaded gives identical outputs
    from frugal.quantize import make_recipe, quantize
    from frugal.tasks.lm import block_pattern

    lm = tiny_lm()
    rec = quantize(lm.model, make_recipe("rtn", "nf4", block_pattern(lm.model)))
    again = load_causal_lm(lm.save(tmp_path / "r", rec))
    ids = torch.arange(40)[None]
    with torch.no_grad():
        assert torch.equal(lm.model(ids).logits, again.model(ids).logits)
    res = runner.invoke(app, ["lm", "quantize", "-m", str(folder), "-t", str(tmp_path / "t.txt"),
                              "-f", "mxint9", "-o", str(tmp_path / "x")])  # fmt: skip
    assert res.exit_code == 2 and "mxint9" in res.output
