import json

import numpy as np
import pytest
import torch

import frugal
from frugal.quantize import quantize_rtn
from frugal.sparsify import SparsifyConfig, frame_scores, sparse_encode, sparse_encoder
from frugal.sparsify.search import SearchStore, paired_bootstrap, run_search
from frugal.tasks.asr import DecodeOptions, Transcriber


@pytest.fixture(scope="module")
def feats(tiny_en, builtin):
    return Transcriber(tiny_en).features([builtin[i].load() for i in (0, 1, 160)])


def test_kept_frames_are_ordered_and_counted(tiny_en, feats):
    for s in (0.1, 0.5, 0.77):
        out, kept = sparse_encode(tiny_en, feats, SparsifyConfig(1, s), return_kept=True)
        n = int(np.ceil((1 - s) * 1500 - 1e-9))
        assert out.shape == (3, n, 384) and kept.shape == (3, n)
        assert (kept.diff(dim=1) > 0).all()


def test_sparsity_zero_is_dense_exactly(tiny_en, feats):
    with torch.inference_mode():
        dense = tiny_en.model.model.encoder(feats).last_hidden_state
    assert torch.equal(sparse_encode(tiny_en, feats, SparsifyConfig(2, 0.0)), dense)


def test_attention_score_equals_eager_probabilities(tiny_en, feats):
    model = tiny_en.model
    model.set_attn_implementation("eager")
    try:
        with torch.inference_mode():
            att = model.model.encoder(feats[:2], output_attentions=True).attentions
    finally:
        model.set_attn_implementation("sdpa")
    for k, stride in ((1, 8), (2, 1)):
        ref = att[k][:, :, ::stride].mean(dim=(1, 2))
        ours = frame_scores(tiny_en, feats[:2], SparsifyConfig(k, 0.5, query_stride=stride))
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-7)
    cum = frame_scores(tiny_en, feats[:2], SparsifyConfig(2, 0.5, "attention_cumulative", 1))
    torch.testing.assert_close(
        cum, sum(att[i].mean(dim=(1, 2)) for i in range(3)), rtol=1e-4, atol=1e-7
    )


def test_batched_equals_one_by_one(tiny_en, feats):
    cfg = SparsifyConfig(1, 0.6)
    batched = sparse_encode(tiny_en, feats, cfg)
    for i in range(3):
        torch.testing.assert_close(
            sparse_encode(tiny_en, feats[i : i + 1], cfg)[0], batched[i], rtol=1e-5, atol=1e-5
        )


@pytest.mark.parametrize(
    "score", ["attention", "attention_cumulative", "key_norm", "stride", "random"]
)
def test_every_score_decodes_with_lean_and_generate(tiny_en, builtin, score):
    audio = [builtin[1].load(), builtin[2].load()]
    enc = sparse_encoder(SparsifyConfig(1, 0.5, score))
    lean = Transcriber(tiny_en, DecodeOptions(batch_size=2), encoder=enc).transcribe(audio)
    gen = Transcriber(tiny_en, DecodeOptions(method="generate", batch_size=2), encoder=enc)
    assert [t.tokens for t in lean] == [t.tokens for t in gen.transcribe(audio)]
    if score == "attention":
        assert "kettle" in lean[0].text.lower()


def test_composes_with_quantized_weights(builtin):
    asr = frugal.load("tiny.en")
    quantize_rtn(asr, "mxint8")
    res = Transcriber(asr, encoder=sparse_encoder(SparsifyConfig(1, 0.6))).transcribe(
        [builtin[1].load()]
    )
    assert "kettle" in res[0].text.lower()


def test_config_parsing_and_errors(tiny_en, tmp_path):
    assert SparsifyConfig.parse("layer=1,sparsity=0.6") == SparsifyConfig(1, 0.6)
    assert (
        SparsifyConfig.parse('{"layer": 2, "sparsity": 0.5, "score": "random"}').score == "random"
    )
    (tmp_path / "c.json").write_text(json.dumps(SparsifyConfig(0, 0.3).to_dict()))
    assert SparsifyConfig.parse(str(tmp_path / "c.json")) == SparsifyConfig(0, 0.3)
    for bad in ("layer=1,sparsity=1.0", "layer=1,sparsity=0.5,score=magic", "depth=1"):
        with pytest.raises(ValueError):
            SparsifyConfig.parse(bad)
    with pytest.raises(ValueError, match="has 4 encoder layers"):
        sparse_encode(tiny_en, torch.zeros(1, 80, 3000), SparsifyConfig(4, 0.5))


def test_paired_bootstrap():
    e = np.array([1, 0, 2, 0])
    w = np.array([5, 5, 5, 5])
    assert paired_bootstrap(e, e, w) == (0.0, 0.0, 0.0)
    delta, lo, hi = paired_bootstrap(e + 1, e, w)
    assert delta == pytest.approx(20.0) and lo == pytest.approx(20.0) and hi == pytest.approx(20.0)


def test_search_stores_each_point_and_resumes(tiny_en, builtin, tmp_path):
    data = builtin.take(2)
    seen = []
    kwargs = dict(
        layers=[1], sparsities=[0.5, 0.8], baselines=["stride"], warmup=0, progress=seen.append
    )
    first = run_search(tiny_en, data, tmp_path, **kwargs)
    lines = (tmp_path / "search.jsonl").read_text().splitlines()
    assert len(lines) == 1 + len(seen) and len(seen) >= 4  # header + dense + 2 grid + baseline
    assert (tmp_path / "search.png").stat().st_size > 5000
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["config"] == (first.best.config if first.best else None)
    # a kill mid-write: keep the header and two points, then half a line
    (tmp_path / "search.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])
    seen.clear()
    run_search(tiny_en, data, tmp_path, **kwargs)
    assert len(seen) == len(lines) - 3  # only the lost points are measured again
    store = SearchStore.open(tmp_path / "search.jsonl", json.loads(lines[0])["header"])
    keys = [p.key() for p in store.points]
    assert len(keys) == len(set(keys)) == len(lines) - 1
    with pytest.raises(ValueError, match="belongs to another search"):
        run_search(tiny_en, builtin.take(3), tmp_path, **kwargs)


def test_cli_sparsify_accepts_every_documented_form(tmp_path):
    """A string, a JSON string, a JSON file and a search's best.json (setting under
    "config"); bad values are one-line errors."""
    from pathlib import Path

    from typer.testing import CliRunner

    from frugal.cli import app

    best = Path(__file__).parents[2] / "docs" / "results" / "sparsify_tiny_best.json"
    plain = tmp_path / "s.json"
    plain.write_text('{"layer": 1, "sparsity": 0.5}')
    (tmp_path / "list.json").write_text("[1, 2]")
    runner = CliRunner()
    for spec in ("layer=1,sparsity=0.5", '{"layer": 1, "sparsity": 0.5}', str(plain), str(best)):
        res = runner.invoke(app, ["eval", "--limit", "1", "--warmup", "0", "--sparsify", spec])
        assert res.exit_code == 0, (spec, res.output)
    for spec, msg in (
        ("layer=1,sparsity=1.5", "sparsity must be in"),
        ("layer=1,speed=2", "unknown sparsify setting"),
        ('{"layer": 1, "sparsity": 0.5, "x": 1}', "unknown sparsify settings"),
        (str(tmp_path / "list.json"), "JSON object"),
        (str(tmp_path / "missing.json"), "missing.json"),
    ):
        res = runner.invoke(app, ["eval", "--limit", "1", "--sparsify", spec])
        assert res.exit_code == 2 and msg in res.output, (spec, res.output)
