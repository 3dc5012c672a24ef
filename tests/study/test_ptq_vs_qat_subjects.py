"""The PTQ-vs-QAT study's subjects: a causal LM calibrated on one text and held out on
another; Whisper held out by voice; old stores stay readable."""

import json
import shutil
from pathlib import Path

import pytest

from frugal.data.datasets import builtin_speech
from frugal.quantize import QATConfig
from frugal.study import ptq_vs_qat as study
from frugal.tasks.asr.calibration import split_by_voice
from tests.lm_helpers import save_tiny_lm

RESULTS = Path(__file__).parents[2] / "docs" / "results"


def test_split_by_voice_never_shares_a_voice():
    data = builtin_speech()
    calib, seen, held = split_by_voice(data, 4, budget=96, seed=0)
    voices = lambda ds: {u.meta["voice"] for u in ds}  # noqa: E731
    assert len(voices(held)) == 4 and len(voices(calib)) == 8
    assert not voices(held) & (voices(calib) | voices(seen))
    assert len(calib) == 96 and len(calib) + len(seen) + len(held) == len(data)
    assert not {u.id for u in calib} & {u.id for u in seen}
    again = split_by_voice(data, 4, budget=96, seed=0)
    assert [u.id for u in again[2]] == [u.id for u in held]
    assert voices(split_by_voice(data, 4, budget=96, seed=1)[2]) != voices(held)
    with pytest.raises(ValueError, match="needs more"):
        split_by_voice(data, 12, budget=10)
    calib, seen, held = split_by_voice(data, 1, budget=60, by="engine")
    engines = lambda ds: {u.meta["voice"].split(":")[0] for u in ds}  # noqa: E731
    assert len(engines(held)) == 1 and not engines(held) & engines(calib)
    assert len(voices(held)) >= 2 and held.name.startswith("builtin:engines-")


def test_lm_study_scores_both_domains_and_resumes(tmp_path):
    folder = save_tiny_lm(tmp_path / "lm")
    cfg = study.StudyConfig(
        model=str(folder), formats=["int3_g128"], budget=8, context=32, batch_size=4,
        heldout_tokens=2048, qat=QATConfig(steps=2), record_every=1, track_examples=8,
    )  # fmt: skip
    assert cfg.pattern is None  # resolved to the model's blocks
    rows = study.run_study(cfg, tmp_path / "out", log=lambda m: None)
    keys = [(r["format"], r["method"]) for r in rows]
    assert keys == [("fp32", "none"), ("fp16", "qat"), ("int3_g128", "rtn"),
                    ("int3_g128", "gptq"), ("int3_g128", "qat")]  # fmt: skip
    fp = rows[0]
    assert fp["info"]["heldout_text"] == "sentences" and fp["info"]["context"] == 32
    assert fp["info"]["heldout_tokens"] == len(study_text_bytes("sentences"))
    assert {"nll", "nll_in_domain", "track_nll", "local"} <= set(fp) and "wer" not in fp
    gptq, rtn = rows[3], rows[2]
    assert len(gptq["trajectory"]) == 2 and gptq["local"] < rtn["local"]
    table = study.markdown_table(rows)
    assert "ΔNLL in_domain" in table and "| int3_g128 | gptq |" in table
    assert study.run_study(cfg, tmp_path / "out", log=lambda m: None) == rows


def study_text_bytes(name):
    from frugal.data.text import text_corpus

    return text_corpus(name).encode()  # the tiny LM's tokenizer is byte-level


def test_a_store_written_before_the_new_fields_still_resumes(tmp_path):
    cfg = study.StudyConfig(formats=["mxint3"], budget=2, heldout=2)
    old = cfg.row_key()
    for k in ("split", "heldout_voices", "calibration_text", "heldout_text", "context",
              "heldout_tokens"):  # fmt: skip
        old.pop(k)
    row = {"format": "fp32", "method": "none", "nll": 1.0}
    lines = [json.dumps({"config": old}), json.dumps(row)]
    (tmp_path / "results.jsonl").write_text("\n".join(lines) + "\n")
    store = study.StudyStore(tmp_path, cfg)
    assert store.get("fp32", "none") == row and store.rows == [row]
    store.add({**row, "nll": 2.0})
    store.add({"format": "mxint3", "method": "rtn", "nll": 1.5})
    store.close()
    again = study.StudyStore(tmp_path, cfg)  # the import happens once: the new rows stay
    assert [r["nll"] for r in again.rows] == [2.0, 1.5]
    again.close()
    with pytest.raises(
        ValueError, match=r"made with split='random', not 'voice'; use another --out"
    ):
        study.StudyStore(tmp_path, study.StudyConfig(formats=["mxint3"], budget=2, split="voice"))
    with pytest.raises(ValueError, match="unknown split"):
        study.StudyConfig(split="speaker")


@pytest.mark.slow
def test_whisper_study_held_out_by_voice(tmp_path):
    # budget 13 leaves 2 utterances of the calibration voices (one batch) for seen_voices
    cfg = study.StudyConfig(
        formats=["mxint3"], methods=["rtn"], split="voice", heldout_voices=11, budget=13,
        heldout=2, track_examples=1, wer=True,
    )  # fmt: skip
    rows = study.run_study(cfg, tmp_path, log=lambda m: None)
    fp, rtn = rows
    _, seen, held = split_by_voice(builtin_speech(), 11, budget=13)
    assert fp["info"]["heldout"].startswith(held.name) and fp["info"]["heldout_utterances"] == 2
    assert fp["info"]["seen_voices_utterances"] == len(seen) > 0
    assert rtn["nll_seen_voices"] > fp["nll_seen_voices"] and rtn["nll"] > fp["nll"]
    assert "ΔNLL seen_voices" in study.markdown_table(rows)


def test_cli_study_on_an_lm_folder_and_bad_text(tmp_path):
    from typer.testing import CliRunner

    from frugal.cli import app

    folder = save_tiny_lm(tmp_path / "lm")
    args = ["study", "ptq-vs-qat", "--model", str(folder), "--formats", "int4_g128",
            "--methods", "rtn", "--budget", "4", "--context", "32",
            "--out", str(tmp_path / "o")]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "| int4_g128 | rtn |" in res.stdout and "ΔNLL in_domain" in res.stdout
    bad = [*args[:-2], "--heldout-text", "wikitext", "--out", str(tmp_path / "b")]
    res = CliRunner().invoke(app, bad)
    assert res.exit_code == 2 and "wikitext: no such text file" in res.output


@pytest.mark.parametrize(
    "folder", sorted(p.parent.name for p in RESULTS.glob("ptq_vs_qat_*/results.jsonl"))
)
def test_committed_studies_load_through_the_store_and_give_their_summary(folder, tmp_path):
    """docs/results was written as JSONL by earlier versions: imported once into the SQLite
    store, the same rows come back and rebuild the committed summary.md word for word (below
    any erratum added by hand)."""
    src = RESULTS / folder
    head, *rows = [json.loads(line) for line in (src / "results.jsonl").read_text().splitlines()]
    shutil.copy(src / "results.jsonl", tmp_path / "results.jsonl")
    with study.StudyStore(tmp_path, study.StudyConfig(**head["config"])) as store:
        assert store.rows == rows
    summary = study.markdown_table(rows) + "\n\nwinners: " + json.dumps(study.winners(rows))
    assert (src / "summary.md").read_text().strip().endswith(summary.strip())  # after errata
