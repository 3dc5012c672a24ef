"""Long-form transcription: frugal sequential / batched / chunks beside faster-whisper, fp32 and
int8.

Three strata built from the built-in set: (i) recordings of several minutes (consecutive
utterances joined with 0.4 s pauses), (ii) 20–30 s clips (the same joined to 20–30 s),
(iii) speech-free audio (digital silence, white and brown noise, mains hum). Every system runs
on every item in the same process, interleaved (the order rotates per item), same model, same
threads. Prints per stratum WER (%) with a 95% bootstrap interval over items, words emitted
against reference words, wall time and the real-time factor, and the WER difference to
faster-whisper paired by item.

frugal "int8" is RTN int8 per-channel weights quantized in memory, run as a `frugal quantize
-f int8_pc --vocab-format int8_pc` folder runs (encoder Linears on the int8 kernel, decoder
fp32 values on the int8 grid, vocabulary screened in int8); faster-whisper's int8 runs
CTranslate2's int8 kernels. frugal "chunks" decodes each VAD chunk once without timestamps,
as faster-whisper's batched pipeline does by default (its anchor); frugal "batched" adds
timestamps, seeking and temperature fallback inside each chunk.

    python benchmarks/longform.py --threads 2 [--quick] [--out docs/results/longform/bench.json]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch

import frugal
from frugal.data.datasets import join_utterances
from frugal.models.registry import CHECKPOINTS
from frugal.provenance import versions
from frugal.tasks.asr import DecodeOptions, Transcriber
from frugal.tasks.asr.longform import LongFormOptions
from frugal.tasks.asr.metrics import paired_bootstrap, word_errors

sys.path.insert(0, str(Path(__file__).parent))
from fw_worker import fw_process
from tables import write_result

SR = 16000
PAUSE_S = 0.4


def joined(utts, min_s: float, max_s: float | None) -> list[tuple[np.ndarray, str]]:
    """Consecutive utterances joined with pauses into pieces of at least `min_s` seconds (and
    at most `max_s`, when given); a short remainder is dropped."""
    return [(u.audio_array, u.text) for u in join_utterances(utts, min_s, max_s, PAUSE_S)]


def speech_free(seconds: float, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    brown = np.cumsum(rng.standard_normal(n)).astype(np.float32)
    brown -= np.linspace(brown[0], brown[-1], n, dtype=np.float32)  # no drift
    brown *= 0.03 / (np.abs(brown).max() + 1e-9)
    t = np.arange(n) / SR
    return [
        ("digital silence", np.zeros(n, np.float32)),
        ("digital silence 75 s", np.zeros(int(75 * SR), np.float32)),
        ("white noise -40 dBFS", (0.01 * rng.standard_normal(n)).astype(np.float32)),
        ("brown noise", brown),
        ("50 Hz hum", (0.03 * np.sin(2 * np.pi * 50 * t)).astype(np.float32)),
    ]


def frugal_system(asr, mode: str, batch_size: int, vad_filter: bool = False):
    lf = LongFormOptions(mode=mode, vad_filter=vad_filter)
    tr = Transcriber(asr, DecodeOptions(batch_size=batch_size, timestamps=True, long_form=lf))
    return lambda audio: tr.transcribe([audio])[0].text


def faster_whisper_systems(folder: Path, compute_type: str, threads: int, batch_size: int):
    """faster-whisper sequential and batched, each in a worker process of its own under its
    default settings (see fw_worker.py); each returns (text, its own wall ms)."""
    return tuple(
        fw_process(folder, compute_type, threads, False, mode=mode, batch_size=batch_size)
        for mode in ("sequential", "batched")
    )


def run_stratum(systems: dict, items: list[tuple[np.ndarray, str]]) -> dict:
    names = list(systems)
    rows = {n: {"errors": [], "words": [], "emitted": [], "seconds": []} for n in names}
    for k, (audio, ref) in enumerate(items):
        order = names[k % len(names) :] + names[: k % len(names)]
        for n in order:
            t = time.perf_counter()
            hyp = systems[n](audio)
            seconds = time.perf_counter() - t
            if isinstance(hyp, tuple):  # an anchor in its own process timed itself
                hyp, seconds = hyp[0], hyp[1] / 1e3
            rows[n]["seconds"].append(seconds)
            s, d, i, words = word_errors(ref, hyp) if ref else (0, 0, 0, 0)
            rows[n]["errors"].append(s + d + i)
            rows[n]["words"].append(words)
            rows[n]["emitted"].append(len(hyp.split()))
        print(f"  item {k + 1}/{len(items)} done", flush=True)
    return rows


def summarize(rows: dict, audio_s: float, anchors: dict[str, str]) -> list[dict]:
    out = []
    for n, r in rows.items():
        e, w = np.array(r["errors"]), np.array(r["words"])
        rec = {
            "system": n,
            "items": len(e),
            "ref_words": int(w.sum()),
            "emitted_words": int(sum(r["emitted"])),
            "seconds": float(sum(r["seconds"])),
            "rtf": float(sum(r["seconds"]) / audio_s),
        }
        if w.sum():
            rec["wer_pct"] = float(100 * e.sum() / w.sum())
            _, lo, hi = paired_bootstrap(e, np.zeros_like(e), w)
            rec["wer_ci"] = [lo, hi]
            anchor = anchors.get(n)
            if anchor is not None and anchor in rows:
                base = np.array(rows[anchor]["errors"])
                d, lo, hi = paired_bootstrap(e, base, w)
                rec["vs"] = anchor
                rec["wer_delta_pt"], rec["delta_ci"] = d, [lo, hi]
                rec["time_ratio"] = float(sum(r["seconds"]) / sum(rows[anchor]["seconds"]))
        out.append(rec)
    return out


def table(title: str, recs: list[dict], audio_s: float) -> str:
    lines = [
        f"### {title} ({recs[0]['items']} items, {audio_s / 60:.1f} min of audio)",
        "",
        "| system | WER % [95% CI] | words emitted / ref | time s | RTF | Δ WER pt vs [95% CI] "
        "| time vs |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in recs:
        wer = (
            f"{r['wer_pct']:.2f} [{r['wer_ci'][0]:.1f}, {r['wer_ci'][1]:.1f}]"
            if "wer_pct" in r
            else "—"
        )
        vs = (
            f"{r['wer_delta_pt']:+.2f} [{r['delta_ci'][0]:+.2f}, {r['delta_ci'][1]:+.2f}] "
            f"({r['vs']})"
            if "vs" in r
            else ""
        )
        ratio = f"{r['time_ratio']:.2f}x" if "vs" in r else ""
        lines.append(
            f"| {r['system']} | {wer} | {r['emitted_words']} / {r['ref_words']} | "
            f"{r['seconds']:.1f} | {r['rtf']:.3f} | {vs} | {ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--recording-s", type=float, default=240.0, help="length of each recording")
    ap.add_argument("--quick", action="store_true", help="a fifth of the data, for a smoke run")
    ap.add_argument("--no-int8", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    asr = frugal.load(args.model)
    utts = list(frugal.datasets.builtin_speech())
    if args.quick:
        utts = utts[: len(utts) // 5]
    recordings = joined(utts, args.recording_s if not args.quick else 60.0, None)
    clips = joined(utts, 20.0, 30.0)
    silent = speech_free(30.0)
    folder = (
        CHECKPOINTS[args.model].runtime_folder() if args.model in CHECKPOINTS else Path(args.model)
    )

    systems = {
        "frugal sequential fp32": frugal_system(asr, "sequential", args.batch_size),
        "frugal batched fp32": frugal_system(asr, "batched", args.batch_size),
        "frugal chunks fp32": frugal_system(asr, "chunks", args.batch_size),
        "frugal sequential fp32 + VAD filter": frugal_system(
            asr, "sequential", args.batch_size, vad_filter=True
        ),
        "frugal fixed windows, no timestamps (before)": frugal_system(
            asr, "windows", args.batch_size
        ),
    }
    anchors = {
        "frugal sequential fp32": "fw sequential fp32",
        "frugal batched fp32": "fw batched fp32",
        "frugal chunks fp32": "fw batched fp32",
        "frugal sequential fp32 + VAD filter": "fw sequential fp32",
    }
    fw_seq, fw_bat = faster_whisper_systems(folder, "float32", args.threads, args.batch_size)
    systems |= {"fw sequential fp32": fw_seq, "fw batched fp32": fw_bat}
    if not args.no_int8:
        from frugal.models.whisper import use_native_kernels
        from frugal.tasks.asr.quantize import quantize_whisper

        # what `WhisperModel(..., compute_type="int8")` and a `frugal quantize -f int8_pc
        # --vocab-format int8_pc` folder run: encoder on the int8 kernel, decoder fp32 values
        # on the int8 grid, vocabulary screened in int8
        q = copy.deepcopy(asr)
        use_native_kernels(q.model, quantize_whisper(q, "int8_pc", vocab_format="int8_pc"))
        for mode, anchor in (("sequential", "sequential"), ("batched", "batched"),
                             ("chunks", "batched")):  # fmt: skip
            systems[f"frugal {mode} int8"] = frugal_system(q, mode, args.batch_size)
            anchors[f"frugal {mode} int8"] = f"fw {anchor} int8"
        fw_seq8, fw_bat8 = faster_whisper_systems(folder, "int8", args.threads, args.batch_size)
        systems |= {"fw sequential int8": fw_seq8, "fw batched int8": fw_bat8}

    warm = clips[0][0]
    for f in systems.values():  # load lazily built parts (VAD, caches) outside the timing
        f(warm)

    strata = {
        "recordings": recordings,
        "20-30 s clips": clips,
        "speech-free": [(a, "") for _, a in silent],
    }
    result: dict = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "versions": versions(),
        "strata": {},
    }
    report = []
    for name, items in strata.items():
        print(f"{name}: {len(items)} items", flush=True)
        rows = run_stratum(systems, items)
        audio_s = sum(len(a) for a, _ in items) / SR
        recs = summarize(rows, audio_s, anchors)
        result["strata"][name] = {"audio_s": audio_s, "systems": recs, "rows": rows}
        if name == "speech-free":
            result["strata"][name]["items"] = [n for n, _ in silent]
        report.append(table(name, recs, audio_s))
    text = "\n\n".join(report)
    print(text)
    write_result(args.out, result, text)
    return result


if __name__ == "__main__":
    main()
