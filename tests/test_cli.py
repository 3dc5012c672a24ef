import json

from typer.testing import CliRunner

from frugal.cli import app

runner = CliRunner()


def test_models_lists_packaged_checkpoints():
    res = runner.invoke(app, ["models"])
    assert res.exit_code == 0
    assert "tiny.en" in res.stdout and "base" in res.stdout and ".[base]" in res.stdout


def test_transcribe_reports_bad_files_and_continues(builtin, tmp_path):
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"nope" * 100)
    good = str(builtin[1].audio_path)
    res = runner.invoke(app, ["transcribe", good, str(bad), "--format", "json"])
    assert res.exit_code == 1
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 1 and "kettle" in rows[0]["text"].lower()
    assert "bad.mp3" in res.stderr


def test_transcribe_srt(builtin):
    res = runner.invoke(app, ["transcribe", str(builtin[0].audio_path), "-f", "srt"])
    assert res.exit_code == 0
    assert res.stdout.startswith("1\n00:00:00,000 --> 00:00:0") and "salt" in res.stdout.lower()


def test_eval_writes_results(tmp_path):
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["eval", "--limit", "2", "--warmup", "0", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "WER %" in res.stdout
    saved = json.loads(out.read_text())
    assert saved["summary"]["utterances"] == 2 and saved["model"] == "tiny.en"


def test_bad_arguments_are_one_line_errors(tmp_path):
    res = runner.invoke(app, ["eval", "--model", "nope", "--limit", "1"])
    assert res.exit_code == 2 and "unknown model 'nope'" in res.stderr
    res = runner.invoke(app, ["eval", "--data", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "data not found" in res.stderr
    res = runner.invoke(app, ["transcribe", "x.wav", "--format", "xml"])
    assert res.exit_code == 2 and "unknown format" in res.stderr
