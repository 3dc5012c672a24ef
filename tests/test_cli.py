import itertools
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from frugal.cli import app
from frugal.tasks.asr.metrics import word_errors
from frugal.tasks.asr.subtitles import parse_subtitles

runner = CliRunner()


def test_models_lists_packaged_checkpoints():
    res = runner.invoke(app, ["models"])
    assert res.exit_code == 0
    assert "tiny.en" in res.stdout and "base" in res.stdout and ".[base]" in res.stdout
    for name in ("smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"):
        assert name in res.stdout
    assert "Gemma 3" in res.stdout and "Q4_K_M" in res.stdout and "1.54B" in res.stdout


@pytest.mark.parametrize("args", [["--help"], ["models"], ["--version"], ["formats"]])
def test_listing_commands_never_load_torch(args):
    """What a user runs to look around answers without importing torch or transformers
    (1.6 s and 4.5 s of start-up on this machine kind)."""
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from frugal.cli import app\n"
        "res = CliRunner().invoke(app, sys.argv[1:])\n"
        "assert res.exit_code == 0, res.output\n"
        "print([m for m in ('torch', 'transformers', 'numpy') if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_transcription_runs_without_transformers(builtin, tmp_path):
    """Whisper's run-time path (load, transcribe with timestamps, evaluate, quantize, transcribe
    with the quantized copy from its packed file) works with transformers made unimportable;
    a plain transcription loads numba only for the few-row int8 kernel's probe (a fused format
    kernel would load it too)."""
    wav, q = str(builtin[1].audio_path), str(tmp_path / "q")
    code = (
        "import sys\n"
        "sys.modules['transformers'] = None  # import transformers -> ImportError\n"
        "from typer.testing import CliRunner\n"
        "from frugal.cli import app\n"
        "r = CliRunner()\n"
        f"res = r.invoke(app, ['transcribe', {wav!r}, '--format', 'json'])\n"
        "assert res.exit_code == 0, res.output\n"
        "from frugal.nn import native\n"
        "probed = native.few_rows_timings.cache_info().currsize == 1\n"
        "assert 'numba' not in sys.modules or probed\n"
        "res = r.invoke(app, ['eval', '--limit', '2'])\n"
        "assert res.exit_code == 0, res.output\n"
        f"res = r.invoke(app, ['quantize', '-m', 'tiny.en', '-f', 'int8_pc', '-o', {q!r}])\n"
        "assert res.exit_code == 0, res.output\n"
        f"res = r.invoke(app, ['transcribe', {wav!r}, '--model', {q!r}])\n"
        "assert res.exit_code == 0, res.output\n"
        "print(res.output.strip().splitlines()[-1])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "kettle" in out.stdout.lower()


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
    res = runner.invoke(app, ["transcribe", "x.wav", "--long-form", "parallel"])
    assert res.exit_code == 2 and "unknown long-form mode" in res.stderr


@pytest.fixture(scope="module")
def long_wav(builtin, tmp_path_factory):
    """40 s: utterances 42.. joined with 0.4 s pauses, and its reference text."""
    pause = np.zeros(6400, np.float32)
    utts = [builtin[i] for i in range(42, 51)]
    audio = np.concatenate([x for u in utts for x in (u.load(), pause)])
    path = tmp_path_factory.mktemp("long") / "talk.wav"
    sf.write(path, audio, 16000)
    return path, " ".join(u.text for u in utts), len(audio) / 16000


@pytest.mark.parametrize("mode", ["sequential", "batched"])
def test_transcribe_long_file_as_subtitles(long_wav, mode):
    path, reference, duration = long_wav
    assert duration > 35
    res = runner.invoke(app, ["transcribe", str(path), "-f", "srt", "--long-form", mode])
    assert res.exit_code == 0, res.output
    cues = parse_subtitles(res.stdout)
    assert len(cues) >= 5 and cues[-1].end > 30 and cues[-1].end <= duration
    assert all(a.end <= b.start + 0.02 for a, b in itertools.pairwise(cues))
    s, d, i, n = word_errors(reference, " ".join(c.text for c in cues))
    assert (s + d + i) / n < 0.35  # windows without timestamps lost half the words here
    vtt = runner.invoke(app, ["transcribe", str(path), "-f", "vtt", "--long-form", mode])
    assert vtt.stdout.startswith("WEBVTT") and len(parse_subtitles(vtt.stdout)) == len(cues)


def test_transcribe_json_carries_segments(long_wav):
    path, _, duration = long_wav
    res = runner.invoke(app, ["transcribe", str(path), "-f", "json"])
    row = json.loads(res.stdout)
    assert row["decoding"] == "sequential" and row["windows"] >= 2
    segs = row["segments"]
    assert segs and all(0 <= g["start"] <= g["end"] <= duration for g in segs)
    assert " ".join(g["text"] for g in segs) == row["text"]


def test_eval_uses_long_form_for_long_utterances(long_wav, builtin, tmp_path):
    path, reference, _ = long_wav
    manifest = tmp_path / "m.jsonl"
    rows = [{"audio": str(path), "text": reference}]
    rows.append({"audio": str(builtin[0].audio_path), "text": builtin[0].text})
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["eval", "--data", str(manifest), "--warmup", "0", "--out", str(out)])
    assert res.exit_code == 0, res.output
    saved = json.loads(out.read_text())
    assert [r["decoding"] for r in saved["rows"]] == ["sequential", "short"]
    assert saved["summary"]["long_form_utterances"] == 1
    assert saved["options"]["long_form"]["mode"] == "sequential"
    assert saved["rows"][0]["word_errors"] / saved["rows"][0]["reference_words"] < 0.35


def test_eval_where_every_row_fails_prints_an_empty_table(tmp_path):
    manifest = tmp_path / "bad.jsonl"
    (tmp_path / "bad.wav").write_bytes(b"garbage")
    manifest.write_text(
        '{"audio": "missing.wav", "text": "a"}\n{"audio": "bad.wav", "text": "b"}\n'
    )
    res = runner.invoke(app, ["eval", "--data", str(manifest), "--warmup", "0"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit | None)  # no crash
    assert "missing.wav" in res.stderr and "bad.wav" in res.stderr
    assert "WER %" in res.stdout and "—" in res.stdout


def test_sparsify_option_on_transcribe_and_eval(builtin, tmp_path):
    """--sparsify reaches the encoder: a mild setting keeps the words, the eval record holds
    the guard's counts, and bad settings are one-line errors before any work."""
    wav = str(builtin[0].audio_path)
    res = runner.invoke(app, ["transcribe", wav, "--sparsify", "layer=1,sparsity=0.1"])
    assert res.exit_code == 0, res.output
    assert sum(word_errors(builtin[0].text, res.stdout)[:3]) <= 1
    out = tmp_path / "r.json"
    spec = "layer=1,sparsity=0.3,guard=on"
    args = ["eval", "--limit", "2", "--warmup", "0", "--sparsify", spec, "--out", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "loop guard:" in res.stdout and json.loads(out.read_text())["summary"]["windows"] == 2
    res = runner.invoke(app, ["transcribe", wav, "--sparsify", "layer=1,speed=2"])
    assert res.exit_code == 2 and "unknown sparsify setting 'speed'" in res.stderr
    res = runner.invoke(app, ["eval", "--limit", "1", "--sparsify", "layer=9,sparsity=0.5"])
    assert res.exit_code == 2 and "encoder layers" in res.stderr
