import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import frugal
from frugal.data.datasets import join_utterances
from frugal.sparsify import SparsifyConfig, frame_scores, sparse_encode, sparse_encoder
from frugal.sparsify.search import PointStore, SearchResult, paired_bootstrap, run_search
from frugal.sparsify.whisper import audio_frames
from frugal.tasks.asr import DecodeOptions, Transcriber, evaluate
from frugal.tasks.asr import states as enc_states
from frugal.tasks.asr.guard import LoopGuard
from frugal.tasks.asr.longform import LongFormOptions
from frugal.tasks.asr.quantize import quantize_whisper
from tests.tolerance import (
    NETWORK_MAX_U,
    U32,
    U64,
    assert_fp32_network_close,
    assert_fp32_pair_close,
)

SR = 16000


@pytest.fixture(scope="module")
def feats(tiny_en, builtin):
    return Transcriber(tiny_en).features([builtin[i].load() for i in (0, 1, 160)])


@pytest.fixture(scope="module")
def mixed(tiny_en, builtin):
    """A 3 s, a 25 s and an 8 s window: features and their lengths in samples."""
    audio = [
        builtin[0].load(),
        join_utterances(builtin[:8], 20.0, 30.0)[0].load(),
        builtin[1].load(),
    ]
    return Transcriber(tiny_en).features(audio), [len(a) for a in audio]


def test_audio_frames_follow_the_clip_length(tiny_en, builtin):
    tr = Transcriber(tiny_en)
    rng = np.random.default_rng(0)
    samples = [52907, 446836, 66320, 30 * SR]
    noise = [(0.1 * rng.standard_normal(m)).astype(np.float32) for m in samples]
    # an encoder frame is 320 samples; the STFT's centred window adds at most two mel columns
    for n, m in zip(audio_frames(tr.features(noise)), samples, strict=True):
        assert min(1500, m / 320 - 1) <= n <= m / 320 + 2
    assert audio_frames(tr.features([np.zeros(SR, np.float32)])) == [0]
    # digital silence after the speech counts as padding: it is below the extractor's floor
    speech = builtin[0].load()
    padded = np.concatenate([speech, np.zeros(SR, np.float32)])
    assert audio_frames(tr.features([padded])) == audio_frames(tr.features([speech]))


def test_frames_rule_keeps_a_share_of_the_whole_window(tiny_en, feats):
    # 1500 encoder frames: dropping 10% keeps 1350, half keeps 750, 77% keeps 345
    for s, n in ((0.1, 1350), (0.5, 750), (0.77, 345)):
        cfg = SparsifyConfig(1, s, rule="frames")
        out, kept = sparse_encode(tiny_en, feats, cfg, return_kept=True)
        assert out.shape == (3, n, 384) and kept.shape == (3, n)
        assert (kept.diff(dim=1) > 0).all()


def test_audio_rule_counts_audio_and_padding_separately(tiny_en, mixed):
    feats, _ = mixed
    audio = audio_frames(feats)
    for s, p in ((0.0, 128), (0.3, 400), (0.6, 0)):
        cfg = SparsifyConfig(0, s, padding_frames=p)
        out, kept = sparse_encode(tiny_en, feats, cfg, return_kept=True)
        for row, n in zip(kept, audio, strict=True):
            row = row[row >= 0]
            assert (row.diff() > 0).all()
            assert (row < n).sum() == np.ceil((1 - s) * n - 1e-9)
            assert (row >= n).sum() == min(p, 1500 - n)
        # the shorter rows end in exact zero frames, which the decoder masks
        lengths = (kept >= 0).sum(1).tolist()
        assert enc_states.lengths(out) == lengths and max(lengths) == out.shape[1]
        assert (out[kept < 0] == 0).all()


def test_sparsity_zero_is_dense_exactly(tiny_en, feats):
    with torch.inference_mode():
        dense = tiny_en.model.model.encoder(feats).last_hidden_state
    assert torch.equal(sparse_encode(tiny_en, feats, SparsifyConfig(2, 0.0, rule="frames")), dense)
    assert torch.equal(
        sparse_encode(tiny_en, feats, SparsifyConfig(2, 0.0, padding_frames=1500)), dense
    )


def _near_cut(scores64: torch.Tensor, audio: int, cfg: SparsifyConfig, u: float):
    """Frames of one window whose float64 score lies within twice the network allowance
    (tests/tolerance.py, unit roundoff u) of the score that decides their pool's cut (audio,
    padding): a correct run in precision u may keep or drop exactly these differently."""
    keep_a, keep_p = cfg.kept(len(scores64), audio)
    delta = 2 * NETWORK_MAX_U * u * float(scores64.abs().max())
    near = set()
    for offset, pool, k in ((0, scores64[:audio], keep_a), (audio, scores64[audio:], keep_p)):
        if 0 < k < len(pool):
            cut = (pool.topk(k + 1).values[k - 1 :].sum() / 2).item()
            near |= {offset + int(j) for j in torch.nonzero((pool - cut).abs() <= delta)}
    return near


def test_batched_unequal_lengths_equal_one_by_one(tiny_en, mixed):
    """Rows of one batch keep different frame counts (padded and masked); each equals its
    window encoded alone. In float64 exactly the same frames are kept and the outputs agree to
    float64's allowance; in float32 (1500 scores a few 1e-5 apart) the kept frames differ from
    float64's at most among near-ties of the cut, and where they agree the outputs are within
    fp32's network allowance of the float64 ones."""
    feats, _ = mixed
    cfg = SparsifyConfig(1, 0.3)
    asr64 = frugal.load("tiny.en")
    asr64.model.double()
    feats64 = feats.double()
    scores64 = frame_scores(asr64, feats64, cfg)
    audio = audio_frames(feats)
    batched64, kept_b64 = sparse_encode(asr64, feats64, cfg, return_kept=True)
    batched, kept_b = sparse_encode(tiny_en, feats, cfg, return_kept=True)
    same = 0
    for i in range(3):
        assert not _near_cut(scores64[i], audio[i], cfg, U64), i  # float64 has no near-tie
        ref, kept64 = sparse_encode(asr64, feats64[i : i + 1], cfg, return_kept=True)
        n = kept64.shape[1]
        assert torch.equal(kept_b64[i, :n], kept64[0])
        assert_fp32_network_close(batched64[i, :n], ref[0], f"float64 row {i}", u=U64)
        near = _near_cut(scores64[i], audio[i], cfg, U32)
        want = set(kept64[0].tolist())
        alone, kept = sparse_encode(tiny_en, feats[i : i + 1], cfg, return_kept=True)
        for got, out in ((kept[0], alone[0]), (kept_b[i, :n], batched[i, :n])):
            assert set(got.tolist()) ^ want <= near, (i, sorted(set(got.tolist()) ^ want))
            if torch.equal(got, kept64[0]):
                same += 1
                assert_fp32_network_close(out, ref[0], f"float32 row {i}")
    assert same >= 1  # the outputs were compared at least once


def test_attention_score_equals_eager_probabilities(tiny_en, feats):
    model = tiny_en.model.to_transformers()  # transformers' eager attention: the reference
    model.set_attn_implementation("eager")
    with torch.inference_mode():
        att = model.model.encoder(feats[:2], output_attentions=True).attentions
    for k, stride in ((1, 8), (2, 1)):
        ref = att[k][:, :, ::stride].mean(dim=(1, 2))
        ours = frame_scores(tiny_en, feats[:2], SparsifyConfig(k, 0.5, query_stride=stride))
        assert_fp32_pair_close(ours, ref, f"layer {k}, stride {stride}")
    cum = frame_scores(tiny_en, feats[:2], SparsifyConfig(2, 0.5, "attention_cumulative", 1))
    assert_fp32_pair_close(cum, sum(att[i].mean(dim=(1, 2)) for i in range(3)), "cumulative")


def test_transcripts_batched_equal_one_by_one(tiny_en, builtin):
    """The decoder masks the padding frames of the shorter rows: a batch of windows that keep
    different frame counts decodes to the same tokens as each window alone."""
    audio = [
        builtin[0].load(),
        join_utterances(builtin[:8], 20.0, 30.0)[0].load(),
        builtin[1].load(),
    ]
    enc = sparse_encoder(SparsifyConfig(0, 0.1))
    batched = Transcriber(tiny_en, DecodeOptions(batch_size=3), encoder=enc).transcribe(audio)
    alone = Transcriber(tiny_en, DecodeOptions(batch_size=1), encoder=enc).transcribe(audio)
    assert [t.tokens for t in batched] == [t.tokens for t in alone]
    assert "kettle" in batched[2].text.lower()


def test_loop_guard_signals():
    guard = LoopGuard()
    assert guard.loops("and then " * 30) and not guard.loops("The kettle boiled over.")
    assert guard.fires("The kettle boiled over.", -1.5)
    assert not guard.fires("The kettle boiled over.", -0.2)
    assert not LoopGuard(None, None).fires("and then " * 30, -9.0)


def _always_guarded(cfg):
    enc = sparse_encoder(cfg)
    enc.guard = LoopGuard(compression_ratio=None, logprob=1.0)  # every window fires
    return enc


def test_a_guard_that_fires_gives_the_dense_transcript(tiny_en, builtin):
    """Short windows and long-form windows (sequential and VAD-batched): every window the
    guard sends back is decoded exactly as the dense model decodes it, and is counted."""
    cfg = SparsifyConfig(0, 0.9)  # drops 90% of the speech
    short = [builtin[i].load() for i in (1, 2, 3)]
    long = [join_utterances(builtin[10:40], 34.0)[0].load()]  # two windows
    for mode, audio in (("short", short), ("sequential", long), ("batched", long)):
        opts = DecodeOptions(batch_size=4)
        if mode != "short":
            opts = DecodeOptions(
                batch_size=4, timestamps=True, long_form=LongFormOptions(mode=mode)
            )
        dense = Transcriber(tiny_en, opts).transcribe(audio)
        guarded = Transcriber(tiny_en, opts, encoder=_always_guarded(cfg)).transcribe(audio)
        assert [t.tokens for t in guarded] == [t.tokens for t in dense], mode
        assert [t.guarded for t in guarded] == [t.windows - t.skipped for t in dense], mode
        assert all(t.guarded == 0 for t in dense)


def test_guard_catches_a_looping_setting_and_is_counted(tiny_en, builtin):
    # a 20-30 s clip: the guard fires on it (bare, 90% of the speech dropped, it loops)
    data = join_utterances(builtin[:40], 20.0, 30.0).take(1)
    cfg = SparsifyConfig(0, 0.9, guard=False)
    bare = evaluate(tiny_en, data, warmup=0, progress=False, nll=False, encoder=sparse_encoder(cfg))
    cfg = SparsifyConfig(0, 0.9)
    kept = evaluate(tiny_en, data, warmup=0, progress=False, nll=False, encoder=sparse_encoder(cfg))
    dense = evaluate(tiny_en, data, warmup=0, progress=False, nll=False)
    assert bare.summary()["guarded_windows"] == 0 < kept.summary()["guarded_windows"]
    assert kept.wer < bare.wer and kept.wer <= dense.wer + 5.0
    assert kept.extra["encoder"]["guard"] is True


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
    quantize_whisper(asr, "mxint8")
    res = Transcriber(asr, encoder=sparse_encoder(SparsifyConfig(1, 0.2))).transcribe(
        [builtin[1].load()]
    )
    assert "kettle" in res[0].text.lower()


def test_composes_with_the_native_int8_kernels(builtin, tmp_path):
    """A packed int8 folder runs its encoder Linears on the int8 kernel; sparsification drops
    frames of the same encoder, in a batch of unequal lengths."""
    from frugal.nn.native import Int8Linear
    from frugal.tasks.asr.quantize import save_quantized

    asr = frugal.load("tiny.en")
    quantize_whisper(asr, "int8_pc")
    native = frugal.load(save_quantized(asr, tmp_path / "q8"))
    assert isinstance(native.model.model.encoder.layers[1].fc1, Int8Linear)
    audio = [builtin[1].load(), join_utterances(builtin[:8], 20.0, 30.0)[0].load()]
    enc = sparse_encoder(SparsifyConfig(0, 0.1))
    batched = Transcriber(native, DecodeOptions(batch_size=2), encoder=enc).transcribe(audio)
    alone = Transcriber(native, DecodeOptions(batch_size=1), encoder=enc).transcribe(audio)
    assert [t.tokens for t in batched] == [t.tokens for t in alone]
    assert "kettle" in batched[0].text.lower()


def test_config_parsing_and_errors(tiny_en, tmp_path):
    assert SparsifyConfig.parse("layer=1,sparsity=0.6") == SparsifyConfig(1, 0.6)
    parsed = SparsifyConfig.parse("layer=1,sparsity=0.2,rule=frames,padding_frames=9,guard=off")
    assert parsed == SparsifyConfig(1, 0.2, rule="frames", padding_frames=9, guard=False)
    assert (
        SparsifyConfig.parse('{"layer": 2, "sparsity": 0.5, "score": "random"}').score == "random"
    )
    (tmp_path / "c.json").write_text(json.dumps(SparsifyConfig(0, 0.3).to_dict()))
    assert SparsifyConfig.parse(str(tmp_path / "c.json")) == SparsifyConfig(0, 0.3)
    for bad in (
        "layer=1,sparsity=1.0",
        "layer=1,sparsity=0.5,score=magic",
        "depth=1",
        "layer=1,sparsity=0.2,rule=seconds",
        "layer=1,sparsity=0.2,padding_frames=-2",
        "layer=1,sparsity=0.2,guard=maybe",
    ):
        with pytest.raises(ValueError):
            SparsifyConfig.parse(bad)
    # a search's best.json from before the length-aware rule means the rule it was found with
    first = Path(__file__).parents[2] / "docs/results/sparsify/first_rule/sparsify_tiny_best.json"
    assert SparsifyConfig.parse(str(first)) == SparsifyConfig(0, 0.6, rule="frames", guard=False)
    with pytest.raises(ValueError, match="has 4 encoder layers"):
        sparse_encode(tiny_en, torch.zeros(1, 80, 3000), SparsifyConfig(4, 0.5))


def test_paired_bootstrap():
    e = np.array([1, 0, 2, 0])
    w = np.array([5, 5, 5, 5])
    assert paired_bootstrap(e, e, w) == (0.0, 0.0, 0.0)
    delta, lo, hi = paired_bootstrap(e + 1, e, w)
    assert delta == pytest.approx(20.0) and lo == pytest.approx(20.0) and hi == pytest.approx(20.0)


def test_paired_bootstrap_interval_covers_the_true_difference():
    """Utterances of 5..40 words with errors at 20% (system) and 15% (baseline): the true
    WER difference is 5 points. Over 300 independent test sets of 80 utterances the 95%
    interval must hold it 95% of the time; the binomial spread of 300 draws (sd 1.3 pt)
    puts a correct interval inside [89%, 99%] (4.5 sd), while one that ignored the pairing
    or the word weights would not be centred on 5."""
    rng = np.random.default_rng(1)
    hits, widths = 0, []
    for rep in range(300):
        words = rng.integers(5, 41, size=80)
        errors, base = rng.binomial(words, 0.20), rng.binomial(words, 0.15)
        delta, lo, hi = paired_bootstrap(errors, base, words, n=1000, seed=rep)
        assert lo <= delta <= hi
        hits += lo <= 5.0 <= hi
        widths.append(hi - lo)
    assert 0.89 <= hits / 300 <= 0.99
    # the spread of a difference of two binomial rates over ~1800 words: 2 × 1.96 × 1.25 pt
    assert 3.5 < np.median(widths) < 6.5


def test_search_stores_each_point_and_resumes(tiny_en, builtin, tmp_path):
    # any two strata exercise the store; the second is one 8-12 s clip to keep the test short
    strata = {"short": builtin.take(2), "long": join_utterances(builtin[:10], 8.0, 12.0).take(1)}
    seen = []
    kwargs = dict(
        layers=[1], sparsities=[0.0, 0.4], baselines=["stride"], warmup=0, progress=seen.append,
        confirm=False,  # the re-timing runs in test_cli_sparsify_search_on_both_strata
    )  # fmt: skip
    first = run_search(tiny_en, strata, tmp_path, **kwargs)
    store = PointStore(tmp_path / "search.sqlite")
    rows, header = store.rows(), store.get_meta("config")
    store.close()
    points = len(seen) // 2  # every point is measured on both strata
    assert len(rows) == points and points >= 4  # dense + 2 grid (+ baseline, guarded)
    assert (tmp_path / "search.png").stat().st_size > 5000
    best = json.loads((tmp_path / "best.json").read_text())
    assert set(best["strata"]) == {"short", "long"}
    if first.best is not None:
        assert best["config"] == {**first.best.config, "guard": True}
        assert first.guarded.config["guard"] is True and first.best.config["guard"] is False
        for s in ("short", "long"):  # the budget holds on each stratum
            assert first.compare(first.best, s)["wer_delta_pt"] <= 1.0
    # the JSONL store of earlier versions, cut by a kill: the header, two points, half a line;
    # it is imported once and only the lost points are measured again
    old = tmp_path / "old"
    old.mkdir()
    lines = [json.dumps({"header": header}), *(json.dumps(r) for r in rows)]
    (old / "search.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])
    seen.clear()
    run_search(tiny_en, strata, old, **kwargs)
    assert len(seen) == 2 * (len(rows) - 2)
    store = PointStore(old / "search.sqlite")
    keys = [p.key() for p in store.points]
    assert len(keys) == len(set(keys)) == len(rows)
    assert store.get_meta("imported_from")["rows"] == 2
    store.close()
    with pytest.raises(ValueError, match="sparsification search made with strata="):
        run_search(tiny_en, {"short": builtin.take(3)}, tmp_path, **kwargs)


def test_search_budget_must_hold_on_every_stratum():
    """A setting within budget on short clips but not on long ones is not a winner."""
    from frugal.sparsify.search import Point, SearchResult

    def point(cfg, short_errors, long_errors, ms):
        def stratum(errors):
            words = [10] * len(errors)
            summary = {
                "wer_pct": 100 * sum(errors) / sum(words),
                "e2e_ms_median": ms,
                "encoder_ms_median": ms / 2,
            }
            return {"summary": summary, "errors": errors, "words": words}

        return Point("grid", cfg, {"short": stratum(short_errors), "long": stratum(long_errors)})

    dense = point(None, [1, 1, 1, 1], [1, 1, 1, 1], 100.0)
    good_short_bad_long = point({"layer": 0, "sparsity": 0.5}, [1, 1, 1, 1], [3, 3, 1, 1], 50.0)
    fine = point({"layer": 1, "sparsity": 0.1}, [1, 1, 1, 1], [1, 1, 1, 2], 80.0)
    result = SearchResult(dense, [good_short_bad_long, fine], None, 1.0)
    assert result.compare(good_short_bad_long, "short")["wer_delta_pt"] == 0.0
    assert not result.within_budget(good_short_bad_long)
    assert result.compare(fine, "long")["wer_delta_pt"] == pytest.approx(2.5)
    assert not result.within_budget(fine)
    assert SearchResult(dense, [fine], None, 3.0).within_budget(fine)
    assert result.speedup(fine) == pytest.approx(1.25)


def test_cli_sparsify_accepts_every_documented_form(tmp_path):
    """A string, a JSON string, a JSON file and a search's best.json (setting under
    "config"); bad values are one-line errors."""
    from typer.testing import CliRunner

    from frugal.cli import app

    best = Path(__file__).parents[2] / "docs" / "results" / "sparsify" / "tiny" / "best.json"
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


def test_cli_sparsify_search_on_both_strata(tmp_path, builtin):
    from typer.testing import CliRunner

    from frugal.cli import app

    runner = CliRunner()
    longs = tmp_path / "long.jsonl"  # --long-data: one built-in clip stands in for a long one
    longs.write_text(json.dumps({"audio": str(builtin[5].audio_path), "text": builtin[5].text}))
    args = ["sparsify", "search", "--limit", "2", "--long-data", str(longs), "--layers", "1"]
    args += ["--sparsities", "0", "--baselines", "", "--warmup", "0", "--out", str(tmp_path / "s")]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    best = json.loads((tmp_path / "s" / "best.json").read_text())
    assert set(best["strata"]) == {"short", "long"}
    assert set(best["confirm"]) == {"short", "long"}  # the winner (sparsity 0) re-timed
    assert best["confirm"]["long"]["dense_ms"] > 0
    assert "short" in res.output and "long" in res.output
    bad_args = [(["--strata", "medium"], "--strata takes"), (["--rule", "x"], "keep rule")]
    for bad, msg in [*bad_args, (["--warmup", "-1"], "--warmup takes 0 or more")]:
        res = runner.invoke(app, [*args[:-1], str(tmp_path / "other"), *bad])
        assert res.exit_code == 2 and msg in res.output, res.output


def test_word_timestamps_of_sparsified_windows_keep_real_times(tiny_en, builtin):
    """Alignment needs every frame: a sparsified window is aligned on the dense states, so its
    words get the times the dense model gives them (kept-frame indices would not be times)."""
    audio = join_utterances(builtin[:30], 36.0)[0].load()  # two windows
    opts = DecodeOptions(
        timestamps=True, long_form=LongFormOptions(mode="sequential", word_timestamps=True)
    )
    dense = Transcriber(tiny_en, opts).transcribe([audio])[0]
    sparse = Transcriber(tiny_en, opts, encoder=sparse_encoder(SparsifyConfig(0, 0.05)))
    res = sparse.transcribe([audio])[0]
    words = [w for g in dense.segments for w in g.words]
    ours = [w for g in res.segments for w in g.words]
    assert abs(len(ours) - len(words)) <= 3 and ours[-1].end > 32.0
    by_word = {}
    for w in words:
        by_word.setdefault(w.word, []).append(w.start)
    matched = [min(abs(w.start - t) for t in by_word[w.word]) for w in ours if w.word in by_word]
    assert len(matched) >= 0.9 * len(ours) and np.median(matched) <= 0.1


@pytest.mark.parametrize("model", ["tiny", "base"])
def test_committed_searches_load_and_pick_their_winner_again(model, tmp_path):
    """docs/results/sparsify was written as JSONL by earlier versions: imported into the
    SQLite store, its points pick the same winner with the same ΔWER interval and speed-up."""
    src = Path(__file__).parents[2] / "docs" / "results" / "sparsify" / model
    shutil.copy(src / "search.jsonl", tmp_path / "search.jsonl")
    header = json.loads((src / "search.jsonl").read_text().splitlines()[0])["header"]
    with PointStore.open(tmp_path / "search.sqlite", header) as store:
        points = store.points
    best_json = json.loads((src / "best.json").read_text())
    dense = next(p for p in points if p.kind == "dense")
    budget = header["max_wer_increase"]
    result = SearchResult(dense, [p for p in points if p.kind in ("grid", "refine")], None, budget)
    ok = [p for p in result.points if result.within_budget(p)]
    best = max(ok, key=result.speedup)
    assert {**best.config, "guard": True} == best_json["config"]
    for s in result.strata:
        assert result.compare(best, s) == pytest.approx(best_json["strata"][s]["winner"])
