"""A corpus run: outputs mirroring the inputs, the results table, failures recorded, resume
(also after kill -9), settings bound to the output folder, and Ray giving the same text."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from frugal.cli import app
from frugal.corpus import CorpusSettings, discover, run_corpus
from frugal.search.executors import LocalExecutor
from frugal.sqlite_file import ConfigMismatchError
from frugal.tasks.asr import DecodeOptions


def _corpus(root: Path, builtin, n: int = 3) -> Path:
    """n built-in utterances in a nested tree, and a file that is not audio."""
    for i in range(n):
        dst = root / ("talks" if i % 2 else "talks/day2") / f"u{i}.opus"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(builtin[i].audio_path, dst)
    (root / "talks" / "broken.wav").write_bytes(b"RIFF not really audio")
    return root / "talks"


def _settings(**kw) -> CorpusSettings:
    return CorpusSettings(decode=DecodeOptions(timestamps=True).to_dict(), **kw)


def _rows(out: Path) -> list[dict]:
    con = sqlite3.connect(out / "results.sqlite")
    con.row_factory = sqlite3.Row
    return [dict(r) for r in con.execute("SELECT * FROM files ORDER BY rel")]


def test_outputs_table_failures_and_resume(tmp_path, builtin):
    src = _corpus(tmp_path / "in", builtin)
    files, problems = discover([src])
    assert problems == [] and len(files) == 4
    out = tmp_path / "out"
    settings = _settings(formats=("txt", "json", "srt"))
    with LocalExecutor() as ex:
        run = run_corpus(files, settings, out, ex)
    assert (run.done, run.failed, run.skipped) == (3, 1, 0)
    assert "not a readable audio file" in run.errors[0][1]
    rows = {r["rel"]: r for r in _rows(out)}
    assert rows["broken"]["status"] == "failed" and rows["broken"]["outputs"] == "[]"
    for i, rel in enumerate(["day2/u0", "u1", "day2/u2"]):
        r = rows[rel]
        assert r["status"] == "done" and r["duration_s"] > 0 and r["rtf"] > 0
        assert json.loads(r["outputs"]) == [f"{rel}.txt", f"{rel}.json", f"{rel}.srt"]
        text = (out / f"{rel}.txt").read_text().strip()
        assert text == json.loads((out / f"{rel}.json").read_text())["text"].strip()
        assert "-->" in (out / f"{rel}.srt").read_text()
        words = set(builtin[i].text.lower().replace(",", "").split())
        assert len(words & set(text.lower().replace(",", "").split())) >= len(words) // 2
    assert not list(out.rglob(".*.tmp"))
    # a rerun skips what is done and tries the failed file again
    with LocalExecutor() as ex:
        again = run_corpus(files, settings, out, ex)
    assert (again.done, again.failed, again.skipped) == (0, 1, 3)
    # a changed file is done again; other settings into the same folder are refused
    (src / "u1.opus").write_bytes((src / "u1.opus").read_bytes())
    os.utime(src / "u1.opus", ns=(time.time_ns(), time.time_ns() + 10**9))
    files, _ = discover([src])
    with LocalExecutor() as ex:
        assert run_corpus(files, settings, out, ex).done == 1
        with pytest.raises(ConfigMismatchError, match="use another --out"):
            run_corpus(files, _settings(formats=("txt",)), out, ex)


def test_cli_corpus_and_its_errors(tmp_path, builtin):
    src = _corpus(tmp_path / "in", builtin, n=2)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["transcribe", str(src), "--out", str(out), "-f", "txt,vtt"])
    assert res.exit_code == 1, res.output  # the broken file
    assert "2 transcribed, 0 already done, 1 failed" in res.output
    assert (out / "day2" / "u0.vtt").read_text().startswith("WEBVTT")
    res = CliRunner().invoke(app, ["transcribe", str(src), "--out", str(out), "-f", "txt,vtt"])
    assert "0 transcribed, 2 already done, 1 failed" in res.output
    res = CliRunner().invoke(app, ["transcribe", str(src)])
    assert res.exit_code == 2 and "transcribe a corpus with --out DIR" in res.output
    res = CliRunner().invoke(app, ["transcribe", str(src), "--out", str(out), "-f", "docx"])
    assert res.exit_code == 2 and "choose from" in res.output
    res = CliRunner().invoke(app, ["transcribe", str(tmp_path / "none"), "--out", str(out)])
    assert res.exit_code == 2 and "not found" in res.output
    for workers in ("1", "2"):  # in this process, and reported back from worker processes
        args = ["transcribe", str(src), "--out", str(tmp_path / workers), "-m", "no-such"]
        res = CliRunner().invoke(app, [*args, "--workers", workers])
        assert res.exit_code == 2 and "no-such" in res.output and "transcribed" not in res.output


def test_a_killed_run_resumes_without_losing_finished_files(tmp_path, builtin):
    """kill -9 mid-run: the rows committed stay, no output is half-written, and the rerun
    transcribes only the files that were not finished."""
    src = _corpus(tmp_path / "in", builtin, n=6)
    (src / "broken.wav").unlink()
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "frugal.cli", "transcribe", str(src), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = out / "results.sqlite"
    deadline = time.time() + 240
    done = 0
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                con = sqlite3.connect(db)
                done = con.execute("SELECT count(*) FROM files WHERE status='done'").fetchone()[0]
                con.close()
            except sqlite3.OperationalError:
                done = 0
        if done >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    # its worker processes (and their fork server) are its descendants: they must not outlive
    # it, each holding a model in memory
    left = psutil.Process(proc.pid).children(recursive=True)
    assert len(left) >= 2 or len(os.sched_getaffinity(0)) < 2  # one worker per core
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _, alive = psutil.wait_procs(left, timeout=30)
    assert not alive, [p.cmdline()[:3] for p in alive]
    before = _rows(out)
    assert 2 <= len(before) < 6
    for r in before:  # every recorded file has its whole outputs
        for rel in json.loads(r["outputs"]):
            json.loads((out / rel).read_text()) if rel.endswith(".json") else None
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"{6 - len(before)} transcribed, {len(before)} already done, 0 failed" in res.stderr
    after = {r["rel"]: r for r in _rows(out)}
    assert len(after) == 6 and all(r["status"] == "done" for r in after.values())
    for r in before:  # finished rows were not redone
        assert after[r["rel"]]["finished"] == r["finished"]
    assert not list(out.rglob(".*.tmp"))


def test_workers_and_ray_give_the_same_transcripts(tmp_path, builtin):
    pytest.importorskip("ray")
    src = _corpus(tmp_path / "in", builtin, n=2)
    (src / "broken.wav").unlink()
    texts = {}
    for name, extra in (
        ("one", ["--workers", "1", "--threads", "1"]),
        ("two", ["--workers", "2"]),
        ("ray", ["--workers", "2", "--ray-address", "local"]),
    ):
        out = tmp_path / name
        res = CliRunner().invoke(app, ["transcribe", str(src), "--out", str(out), *extra])
        assert res.exit_code == 0, res.output
        rows = _rows(out)
        texts[name] = {r["rel"]: (out / f"{r['rel']}.txt").read_text() for r in rows}
        if name != "one":
            assert len({r["worker"] for r in rows}) == 2, name
    assert texts["one"] == texts["two"] == texts["ray"]
