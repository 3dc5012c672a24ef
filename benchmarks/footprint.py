"""Footprint of a one-shot run: what a user waits for and the memory it takes, frugal beside
faster-whisper, each in a fresh process.

Rows:
- `frugal --help`, `frugal models`, `frugal formats`: start-up of the commands a user runs to
  look around (target for `frugal models`: <= 0.3 s);
- one 20-30 s clip (consecutive built-in utterances joined with 0.4 s pauses, written as a
  16 kHz wav) transcribed by a cold process: `frugal transcribe CLIP` (fp32 and an int8
  folder from `frugal quantize -f int8_pc --vocab-format int8_pc`) against a faster-whisper
  script (float32 and int8) on the same checkpoint.

Same decoding mode on both sides: frugal's `transcribe` defaults (greedy, timestamps,
temperature fallback, no conditioning on previous text, no VAD); faster-whisper under its
default settings except `beam_size=1, condition_on_previous_text=False`, which match
frugal's defaults (faster-whisper's own are beam 5, conditioned). Each command runs
`--repeats` times, commands interleaved; the table gives the median wall time (s, process
start to exit, interpreter start included) and the largest peak RSS (MiB, from the child's
own rusage), with ratios to faster-whisper int8.

    python benchmarks/footprint.py --model tiny.en --threads 2 [--repeats 5] \
        [--out docs/results/footprint/tiny.json]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from tables import write_result

FW_SCRIPT = """
import sys
from faster_whisper import WhisperModel
folder, compute_type, threads, clip = sys.argv[1:5]
model = WhisperModel(folder, device="cpu", compute_type=compute_type, cpu_threads=int(threads))
segments, _ = model.transcribe(clip, beam_size=1, condition_on_previous_text=False)
print(" ".join(s.text.strip() for s in segments))
"""


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall s, peak RSS MiB, stdout) of one fresh process: it runs under a small wrapper
    that waits for it and reports its rusage (RUSAGE_CHILDREN of a one-child process)."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True)\n"
        "sys.stdout.buffer.write(p.stdout)\n"
        "sys.stderr.buffer.write(p.stderr)\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(f'\\n@@RSS {rss}')\n"
        "sys.exit(p.returncode)\n"
    )
    t0 = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd], capture_output=True, env=env, check=False
    )
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... failed: {p.stderr.decode()[-800:]}")
    text, _, rss = p.stdout.decode().rpartition("@@RSS ")
    return wall, int(rss) / 1024, text.strip()


def child_wall(cmd: list[str], env: dict[str, str]) -> float:
    """Wall time of the command alone (no wrapper interpreter around it)."""
    t = time.perf_counter()
    subprocess.run(cmd, capture_output=True, env=env, check=True)
    return time.perf_counter() - t


def make_clip(folder: Path) -> tuple[Path, float]:
    import soundfile as sf

    from frugal.data.datasets import builtin_speech, join_utterances

    utt = join_utterances(builtin_speech()[:60], 20.0, 29.0)[0]
    audio = utt.load()
    path = folder / "clip.wav"
    sf.write(path, audio, 16000)
    return path, len(audio) / 16000


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--work", type=Path, default=None, help="folder for the clip and int8 model")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    from frugal.models.registry import CHECKPOINTS
    from frugal.provenance import versions

    work = args.work or Path(tempfile.mkdtemp(prefix="frugal_footprint_"))
    work.mkdir(parents=True, exist_ok=True)
    clip, clip_s = make_clip(work)
    frugal = [sys.executable, "-m", "frugal.cli"]
    int8 = work / f"{args.model}-int8"
    if not (int8 / "frugal_quant.json").is_file():
        subprocess.run(
            [*frugal, "quantize", "-m", args.model, "-f", "int8_pc", "--vocab-format", "int8_pc",
             "-o", str(int8)],
            check=True, capture_output=True,
        )  # fmt: skip
    fw_folder = str(CHECKPOINTS[args.model].runtime_folder())
    env = dict(os.environ)
    threads = ["--threads", str(args.threads)]
    commands = {
        "frugal --help": [*frugal, "--help"],
        "frugal models": [*frugal, "models"],
        "frugal formats": [*frugal, "formats"],
        "frugal transcribe fp32": [*frugal, "transcribe", str(clip), "-m", args.model, *threads],
        "frugal transcribe int8": [*frugal, "transcribe", str(clip), "-m", str(int8), *threads],
    }
    for ct in ("float32", "int8"):
        commands[f"faster-whisper {ct}"] = [
            sys.executable, "-c", FW_SCRIPT, fw_folder, ct, str(args.threads), str(clip),
        ]  # fmt: skip
    for cmd in commands.values():  # warm the page cache and any on-disk caches
        subprocess.run(cmd, capture_output=True, env=env, check=True)
    walls: dict[str, list[float]] = {n: [] for n in commands}
    rss: dict[str, float] = {n: 0.0 for n in commands}
    texts: dict[str, str] = {}
    names = list(commands)
    for r in range(args.repeats):
        for n in names[r % len(names) :] + names[: r % len(names)]:
            walls[n].append(child_wall(commands[n], env))
            _, peak, text = run_measured(commands[n], env)
            rss[n] = max(rss[n], peak)
            texts[n] = text
        print(f"round {r + 1}/{args.repeats} done", flush=True)

    anchor = "faster-whisper int8"
    rows = []
    for n in names:
        med = float(np.median(walls[n]))
        rows.append(
            {
                "command": n,
                "wall_s_median": med,
                "wall_s_all": walls[n],
                "peak_rss_mib": rss[n],
                "time_vs_fw_int8": med / float(np.median(walls[anchor])),
                "rss_vs_fw_int8": rss[n] / rss[anchor],
            }
        )
    lines = [
        f"Whisper {args.model}, one {clip_s:.1f} s clip, {args.threads} threads, "
        f"{args.repeats} cold runs each (median wall, largest peak RSS)",
        "",
        "| command | wall s | × fw int8 | peak RSS MiB | × fw int8 |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['command']} | {row['wall_s_median']:.2f} | {row['time_vs_fw_int8']:.2f} "
            f"| {row['peak_rss_mib']:.0f} | {row['rss_vs_fw_int8']:.2f} |"
        )
    text = "\n".join(lines)
    print("\n" + text)
    payload = {
        "model": args.model,
        "threads": args.threads,
        "clip_s": clip_s,
        "rows": rows,
        "transcripts": {n: t for n, t in texts.items() if "transcribe" in n or "faster" in n},
        "report": text,
        "versions": versions(),
    }
    write_result(args.out, payload, text)
    return payload


if __name__ == "__main__":
    main()
