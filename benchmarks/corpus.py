"""Corpus throughput: hours of audio per hour of wall time for `frugal transcribe --out` and
faster-whisper over the same mixed corpus, cold processes, on this machine's cores.

The corpus: built-in utterances as they are (short clips, opus) and multi-minute recordings
joined from *other* built-in utterances (wav), so every length is present and no audio is
counted twice. Each system runs as a fresh process tree (model loading and process start
counted), under its defaults except the decoding mode, which is the same on both sides: greedy,
no conditioning on previous text, clips of at most 30 s in one window without timestamps,
longer recordings long-form with timestamps (faster-whisper's `transcribe`), or VAD chunks
(faster-whisper's `BatchedInferencePipeline`, frugal's `--long-form chunks`).
Core splits: one process with every thread, and one process per core with one thread each
(faster-whisper's files are split longest-first across its processes, as frugal's are).

Reports per system: wall s, audio h per wall h, ratio to faster-whisper int8 sequential, WER
(%) pooled over files with a 95% bootstrap interval and the paired difference to that anchor,
and the peak RSS summed over the process tree (sampled every 0.1 s). Then the kill/resume
check: frugal killed (SIGKILL) after a few files, rerun; files redone must be at most the ones
in flight, and the transcripts equal an uninterrupted run's.

    uv run python benchmarks/corpus.py                 # ~25 min on 2 cores (AMD EPYC Zen 3)
    uv run python benchmarks/corpus.py --quick         # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def build_corpus(root: Path, clips: int, recordings: int, recording_s: float) -> dict[str, str]:
    """Write the corpus under `root`; returns {relative path without suffix: reference}."""
    import soundfile as sf

    from frugal.data.datasets import builtin_speech, join_utterances

    data = builtin_speech()
    refs = {}
    for u in list(data)[:clips]:
        dst = root / "clips" / u.audio_path.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(u.audio_path, dst)
        refs[f"clips/{u.audio_path.stem}"] = u.text
    rest = list(data)[clips:]
    joined = join_utterances(rest, recording_s, recording_s + 60)
    for i, u in enumerate(list(joined)[:recordings]):
        dst = root / "recordings" / f"rec{i}.wav"
        dst.parent.mkdir(parents=True, exist_ok=True)
        sf.write(dst, u.load(), 16000)
        refs[f"recordings/rec{i}"] = u.text
    return refs


def audio_seconds(root: Path) -> float:
    from frugal.corpus.run import probe_seconds

    return sum(probe_seconds(p) or 0.0 for p in root.rglob("*") if p.is_file())


def run_tree(cmd: list[str], env: dict | None = None) -> tuple[float, float, int]:
    """(wall s, peak RSS MiB summed over the process and its descendants, exit code)."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [ps, *ps.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.stderr.write(proc.stderr.read().decode()[-3000:])
    return wall, peak / 2**20, proc.returncode


def frugal_cmd(corpus: Path, out: Path, model: str, workers: int, threads: int, mode: str):
    return [
        sys.executable,
        "-m",
        "frugal.cli",
        "transcribe",
        str(corpus),
        "--out",
        str(out),
        "-f",
        "txt",
        "--model",
        model,
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--long-form",
        mode,
    ]


def frugal_texts(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out).with_suffix("")): p.read_text().strip() for p in out.rglob("*.txt")
    }


# --- faster-whisper: one process per share of the files ---------------------------------


def fw_worker(folder: str, compute: str, threads: int, mode: str, files: list[str], out: str):
    """Transcribe `files` with faster-whisper in this process; texts to `out` (JSON)."""
    sys.path.insert(0, str(HERE))
    from fw_worker import fw_run

    from frugal.data import load_audio

    run = fw_run(Path(folder), compute, threads, False, mode=mode)
    texts = {f: run(load_audio(f)) for f in files}
    Path(out).write_text(json.dumps(texts))


def fw_system(corpus: Path, folder: Path, compute: str, workers: int, threads: int, mode: str):
    """(wall s, peak RSS MiB, {rel: text}) of faster-whisper over the corpus in `workers`
    processes of `threads` threads, files split longest first."""
    from frugal.corpus import discover
    from frugal.corpus.run import probe_seconds

    files, _ = discover([corpus])
    files.sort(key=lambda f: -(probe_seconds(f.path) or 0))
    shares: list[list] = [[] for _ in range(workers)]
    load = [0.0] * workers
    for f in files:  # longest first onto the least loaded process
        k = int(np.argmin(load))
        shares[k].append(f)
        load[k] += probe_seconds(f.path) or 0
    tmp = Path(tempfile.mkdtemp(prefix="fwcorpus_"))
    script = (
        f"import sys, json; sys.path.insert(0, {str(HERE)!r}); from corpus import fw_worker; "
        "fw_worker(*json.loads(sys.argv[1]))"
    )
    launcher = [
        sys.executable,
        "-c",
        "import subprocess, sys, json; "
        f"ps = [subprocess.Popen([sys.executable, '-c', {script!r}, a]) "
        "for a in json.loads(sys.argv[1])]; sys.exit(max(p.wait() for p in ps))",
    ]
    args = [
        json.dumps(
            [
                str(folder),
                compute,
                threads,
                mode,
                [str(f.path) for f in share],
                str(tmp / f"{k}.json"),
            ]
        )
        for k, share in enumerate(shares)
        if share
    ]
    wall, rss, rc = run_tree([*launcher, json.dumps(args)])
    if rc:
        raise RuntimeError("faster-whisper workers failed")
    by_path = {}
    for part in tmp.glob("*.json"):
        by_path.update(json.loads(part.read_text()))
    rel = {str(f.path): str(f.rel) for f in files}
    return wall, rss, {rel[p]: t.strip() for p, t in by_path.items()}


# --- scoring ------------------------------------------------------------------------------


def score(texts: dict[str, str], refs: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Per file (errors, reference words), in the order of `refs`."""
    from frugal.tasks.asr.metrics import word_errors

    errs, words = [], []
    for k, ref in refs.items():
        s, d, i, n = word_errors(ref, texts.get(k, ""))
        errs.append(s + d + i)
        words.append(n)
    return np.array(errs, float), np.array(words, float)


def kill_resume(corpus: Path, model: str, workers: int, threads: int, reference: dict) -> dict:
    """frugal killed after 3 finished files, then rerun: files redone, texts equal."""
    out = Path(tempfile.mkdtemp(prefix="corpus_kill_"))
    cmd = frugal_cmd(corpus, out, model, workers, threads, "sequential")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = out / "results.sqlite"
    done = 0
    while proc.poll() is None and done < 3:
        time.sleep(0.05)
        try:
            con = sqlite3.connect(db)
            done = con.execute("SELECT count(*) FROM files WHERE status='done'").fetchone()[0]
            con.close()
        except sqlite3.Error:
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    con = sqlite3.connect(db)
    before = con.execute("SELECT count(*) FROM files WHERE status='done'").fetchone()[0]
    con.close()
    res = subprocess.run(cmd, capture_output=True, text=True)
    line = [x for x in res.stderr.splitlines() if "transcribed" in x][-1]
    redone = int(line.split(" transcribed")[0].split()[-1])
    total = len(reference)
    texts = frugal_texts(out)
    return {
        "files": total,
        "done_before_kill": before,
        "transcribed_on_resume": redone,
        "redone_beyond_unfinished": redone - (total - before),
        "texts_equal_uninterrupted": texts == reference,
        "tmp_files_left": len(list(out.rglob(".*.tmp"))),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--clips", type=int, default=60)
    ap.add_argument("--recordings", type=int, default=2)
    ap.add_argument("--recording-s", type=float, default=150.0)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE.parent / "docs/results/corpus")
    args = ap.parse_args(argv)
    if args.quick:
        args.clips, args.recordings, args.recording_s = 12, 1, 60.0
    from frugal.models.registry import CHECKPOINTS

    cores = len(os.sched_getaffinity(0))
    work = Path(tempfile.mkdtemp(prefix="corpus_bench_"))
    corpus = work / "corpus"
    refs = build_corpus(corpus, args.clips, args.recordings, args.recording_s)
    audio_s = audio_seconds(corpus)
    print(f"corpus: {len(refs)} files, {audio_s / 60:.1f} min of audio; {cores} cores", flush=True)
    folder = CHECKPOINTS[args.model].runtime_folder()
    int8 = work / "int8"
    subprocess.run(
        [sys.executable, "-m", "frugal.cli", "quantize", "-m", args.model, "-f", "int8_pc",
         "--vocab-format", "int8_pc", "-o", str(int8)],
        check=True, capture_output=True,
    )  # fmt: skip
    splits = [(1, cores), (cores, 1)] if cores > 1 else [(1, 1)]
    rows, texts = [], {}
    for workers, threads in splits:
        for system, compute, mode in (
            ("faster-whisper", "int8", "sequential"),
            ("faster-whisper", "int8", "batched"),
            ("frugal", "fp32", "sequential"),
            ("frugal", "int8", "sequential"),
            ("frugal", "int8", "chunks"),
        ):
            name = f"{system} {compute} {mode} {workers}x{threads}"
            print(f"running {name}", flush=True)
            if system == "faster-whisper":
                wall, rss, got = fw_system(corpus, folder, compute, workers, threads, mode)
            else:
                out = work / name.replace(" ", "_")
                model = args.model if compute == "fp32" else str(int8)
                wall, rss, rc = run_tree(frugal_cmd(corpus, out, model, workers, threads, mode))
                if rc:
                    raise RuntimeError(f"{name} failed")
                got = frugal_texts(out)
            texts[name] = got
            e, w = score(got, refs)
            rows.append(
                {"system": name, "wall_s": wall, "audio_h_per_h": audio_s / wall,
                 "peak_rss_mib": rss, "wer_pct": 100 * e.sum() / w.sum()}
            )  # fmt: skip
            print(f"  {wall:.1f} s, {audio_s / wall:.1f} h/h, {rss:.0f} MiB, "
                  f"WER {rows[-1]['wer_pct']:.2f}%", flush=True)  # fmt: skip
    from frugal.tasks.asr.metrics import paired_bootstrap

    anchor = f"faster-whisper int8 sequential {splits[0][0]}x{splits[0][1]}"
    best_fw = min((r for r in rows if r["system"].startswith("faster")), key=lambda r: r["wall_s"])
    e0, w = score(texts[anchor], refs)
    for r in rows:
        e, _ = score(texts[r["system"]], refs)
        _, lo, hi = paired_bootstrap(e, np.zeros_like(e), w)
        r["wer_ci"] = [lo, hi]
        r["wer_delta_pt"], *ci = paired_bootstrap(e, e0, w)
        r["delta_ci"] = ci
        r["vs_anchor"] = anchor
        r["speed_vs_best_fw"] = best_fw["wall_s"] / r["wall_s"]
    # the kill/resume check on the fastest sequential frugal setting, against its own texts
    seq = [r for r in rows if r["system"].startswith("frugal") and "sequential" in r["system"]]
    pick = min(seq, key=lambda r: r["wall_s"])["system"]
    w_, t_ = pick.split()[-1].split("x")
    model_for_kill = str(int8) if " int8 " in pick else args.model
    resume = kill_resume(corpus, model_for_kill, int(w_), int(t_), texts[pick])
    resume["setting"] = pick
    result = {
        "corpus": {"files": len(refs), "audio_min": audio_s / 60, "clips": args.clips,
                   "recordings": args.recordings, "recording_s": args.recording_s},
        "cores": cores, "rows": rows, "kill_resume": resume,
    }  # fmt: skip
    from frugal.provenance import versions

    result["versions"] = versions()
    lines = [
        f"Corpus: {len(refs)} files, {audio_s / 60:.1f} min of audio ({args.clips} built-in "
        f"clips, {args.recordings} recordings of ≥ {args.recording_s:.0f} s); {cores} cores; "
        f"model {args.model}.",
        "",
        "| system (workers x threads) | wall s | audio h / h | × best faster-whisper | "
        "peak RSS MiB (tree) | WER % [95% CI] | Δ WER pt vs fw int8 seq [95% CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['system']} | {r['wall_s']:.1f} | {r['audio_h_per_h']:.1f} | "
            f"{r['speed_vs_best_fw']:.2f} | {r['peak_rss_mib']:.0f} | {r['wer_pct']:.2f} "
            f"[{r['wer_ci'][0]:.1f}, {r['wer_ci'][1]:.1f}] | {r['wer_delta_pt']:+.2f} "
            f"[{r['delta_ci'][0]:+.2f}, {r['delta_ci'][1]:+.2f}] |"
        )
    lines += ["", f"kill -9 / resume: {json.dumps(resume)}"]
    print("\n".join(lines))
    if not args.quick:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "corpus.json").write_text(json.dumps(result, indent=1) + "\n")
        (args.out / "corpus.md").write_text("\n".join(lines) + "\n")
    return result


if __name__ == "__main__":
    main()
