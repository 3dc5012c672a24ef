"""Real savings: frugal's quantized Whispers (packed files, int8 kernels) beside
faster-whisper fp32 / int8, on short clips and on 20-30 s clips, interleaved.

Systems (same threads, the order rotating per item; faster-whisper in worker processes of
its own, see fw_worker.py): frugal fp32; int8 per
channel, RTN and GPTQ (encoder on the int8 kernel, vocabulary screened in int8, decoder
Linears in fp32 from their int8 values); int4 g128, RTN and GPTQ (simulated: fp32 values on
the grid; this CPU has no fast int4 kernel in torch 2.13); some with encoder sparsification;
faster-whisper float32 and int8 (CTranslate2's kernels) on the same checkpoint. Quantized
models are written with `save_quantized` and loaded back with `frugal.load`, so what runs is
what a user gets from the files. GPTQ calibrates on --calib utterances; both strata are
built from the other (held-out) utterances: short = single utterances, long = consecutive
held-out utterances joined with 0.4 s pauses into 20-30 s clips.

Per stratum: WER % with a 95% bootstrap interval, ΔWER vs frugal fp32 (paired), median and
p90 latency per item (ms, audio already at 16 kHz), latency ratio to faster-whisper int8.
Per model: file size against the fp16 checkpoint, and peak RSS (a fresh process per system
that loads it and transcribes three clips).

    python benchmarks/savings.py --model tiny.en --threads 2 [--limit N] \
        [--out docs/results/savings/tiny.json]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import frugal
from frugal.models.registry import CHECKPOINTS
from frugal.provenance import versions
from frugal.tasks.asr import DecodeOptions, Transcriber
from frugal.tasks.asr.calibration import split_calibration
from frugal.tasks.asr.metrics import word_errors
from frugal.tasks.asr.quantize import quantize_whisper, save_quantized

sys.path.insert(0, str(Path(__file__).parent))
from fw_worker import fw_process
from longform import joined
from tables import table_head, wer_cells, wer_stats, write_result

# (name, weight format, method, vocabulary format)
VARIANTS = [
    ("int8 RTN", "int8_pc", "rtn", "int8_pc"),
    ("int8 GPTQ", "int8_pc", "gptq", "int8_pc"),
    ("int4 RTN", "int4_g128", "rtn", "nf4_b32"),
    ("int4 GPTQ", "int4_g128", "gptq", "nf4_b32"),
]
SPARSE_OF = ("fp32", "int8 RTN", "int4 GPTQ")


def frugal_run(asr, encoder=None):
    tr = Transcriber(asr, DecodeOptions(batch_size=1), encoder=encoder)
    return lambda audio: tr.transcribe([audio])[0].text


def run_stratum(systems: dict, items: list[tuple[np.ndarray, str]]) -> dict:
    names = list(systems)
    rows = {n: {"errors": [], "words": [], "ms": [], "hyps": []} for n in names}
    for k, (audio, ref) in enumerate(items):
        for n in names[k % len(names) :] + names[: k % len(names)]:
            t = time.perf_counter()
            hyp = systems[n](audio)
            ms = 1e3 * (time.perf_counter() - t)
            if isinstance(hyp, tuple):  # a worker process: its own wall time
                hyp, ms = hyp
            rows[n]["ms"].append(ms)
            s, d, i, words = word_errors(ref, hyp)
            rows[n]["errors"].append(s + d + i)
            rows[n]["words"].append(words)
            rows[n]["hyps"].append(hyp)
        if (k + 1) % 10 == 0:
            print(f"  {k + 1}/{len(items)}", flush=True)
    return rows


def summarize(rows: dict) -> list[dict]:
    base = rows["frugal fp32"]["errors"]
    fw8 = float(np.median(rows["faster-whisper int8"]["ms"]))
    fw32 = rows["faster-whisper float32"]["hyps"]
    fw8_total = sum(rows["faster-whisper int8"]["ms"])
    out = []
    for n, r in rows.items():
        med = float(np.median(r["ms"]))
        out.append(
            {
                "system": n,
                **wer_stats(r["errors"], r["words"], base),
                "median_ms": med,
                "p90_ms": float(np.percentile(r["ms"], 90)),
                "x_fw_int8": med / fw8,
                "total_x_fw_int8": sum(r["ms"]) / fw8_total,
                "same_text_as_fw_fp32": sum(
                    a.strip() == b.strip() for a, b in zip(r["hyps"], fw32, strict=True)
                ),
            }
        )
    return out


def table(title: str, recs: list[dict], n_items: int, audio_min: float) -> str:
    more = ["median ms", "p90 ms", "median vs fw int8", "total time vs fw int8"]
    lines = table_head(title, n_items, audio_min, "frugal fp32", [*more, "same text as fw fp32"])
    for r in recs:
        lines.append(
            f"| {r['system']} | {wer_cells(r)} "
            f"| {r['median_ms']:.0f} | {r['p90_ms']:.0f} | {r['x_fw_int8']:.2f}x "
            f"| {r['total_x_fw_int8']:.2f}x "
            f"| {r['same_text_as_fw_fp32']}/{r['items']} |"
        )
    return "\n".join(lines)


RSS_CHILD = """
import sys, numpy as np, torch
torch.set_num_threads({threads})
kind, path, model = sys.argv[1], sys.argv[2], sys.argv[3]
audio = [np.load(p) for p in sys.argv[4:]]
if kind == "fw":
    from faster_whisper import WhisperModel
    m = WhisperModel(path, device="cpu", compute_type=model, cpu_threads={threads})
    for a in audio:
        list(m.transcribe(a, beam_size=1, condition_on_previous_text=False)[0])
else:
    import frugal
    from frugal.tasks.asr import Transcriber
    tr = Transcriber(frugal.load(path))
    for a in audio:
        tr.transcribe([a])
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(int(hwm.split()[1]) / 1024)  # kB -> MiB; VmHWM starts afresh at exec, ru_maxrss does not
"""


def peak_rss(kind: str, path: str, arg: str, clips: list[Path], threads: int) -> float:
    """Peak resident memory (MiB) of a fresh process that loads and runs one system."""
    out = subprocess.run(
        [sys.executable, "-c", RSS_CHILD.format(threads=threads), kind, path, arg]
        + [str(c) for c in clips],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calib", type=int, default=32, help="GPTQ calibration utterances")
    ap.add_argument("--limit", type=int, default=None, help="at most N short items")
    ap.add_argument("--long-limit", type=int, default=None, help="at most N 20-30 s clips")
    ap.add_argument("--variants", default=",".join(v[0] for v in VARIANTS))
    ap.add_argument("--sparsify", default="layer=0,sparsity=0.6,rule=frames")
    ap.add_argument("--work", type=Path, default=None, help="folder for the quantized files")
    ap.add_argument(
        "--strata",
        default="short,long",
        help="comma-separated: short, long (20-30 s), recordings (held-out utterances joined "
        "into recordings of at least --recording-s seconds)",
    )
    ap.add_argument("--recording-s", type=float, default=240.0)
    ap.add_argument(
        "--systems", default=None, help="comma-separated system names to run (default: all)"
    )
    ap.add_argument("--no-rss", action="store_true", help="skip the peak-RSS processes")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="savings_"))
    work.mkdir(parents=True, exist_ok=True)

    data = frugal.datasets.builtin_speech()
    calib, held = split_calibration(data, args.calib, seed=0)
    short = [(u.load(), u.text) for u in held]
    long = joined(list(held), 20.0, 30.0)
    if args.limit:
        short = short[: args.limit]
    if args.long_limit:
        long = long[: args.long_limit]

    ckpt = CHECKPOINTS[args.model]
    fp16_bytes = (
        sum(p.stat().st_size for p in ckpt.model_parts())
        or (ckpt.folder() / "model.bin").stat().st_size
    )
    sizes = {"fp16 checkpoint (model.bin)": fp16_bytes}
    folders: dict[str, Path] = {}
    models = {"fp32": frugal.load(args.model)}
    wanted = set(args.variants.split(","))
    for name, fmt, method, vocab in VARIANTS:
        if name not in wanted:
            continue
        folder = work / f"{args.model}-{name.replace(' ', '-')}"
        if not (folder / "frugal_quant.json").is_file():
            asr = frugal.load(args.model)
            t = time.perf_counter()
            quantize_whisper(asr, fmt, method, list(calib), vocab_format=vocab)
            save_quantized(asr, folder)
            print(f"{name}: quantized in {time.perf_counter() - t:.0f} s -> {folder}", flush=True)
        folders[name] = folder
        models[name] = frugal.load(folder)
        sizes[f"frugal {name} (model.safetensors)"] = (folder / "model.safetensors").stat().st_size

    from frugal.sparsify import SparsifyConfig, sparse_encoder

    encoder = sparse_encoder(SparsifyConfig.parse(args.sparsify)) if args.sparsify else None
    systems = {}
    for name, asr in models.items():
        systems[f"frugal {name}"] = frugal_run(asr)
        if encoder is not None and name in SPARSE_OF:
            systems[f"frugal {name} + sparsify"] = frugal_run(asr, encoder)
    fwf = CHECKPOINTS[args.model].runtime_folder()
    multilingual = models["fp32"].multilingual
    for ct in ("float32", "int8"):
        systems[f"faster-whisper {ct}"] = fw_process(fwf, ct, args.threads, multilingual)
    from frugal.models.ct2_writer import export_ct2

    exports = {"fp32": ("float16", "float32")}  # source model: (file type, compute type)
    if "int8 GPTQ" in models:
        exports["int8 GPTQ"] = ("int8", "int8")
    for src, (file_type, compute) in exports.items():
        out = work / f"{args.model}-{src.replace(' ', '-')}-ct2-{file_type}"
        if not (out / "model.bin").is_file():
            export_ct2(models[src], out, file_type)
        name = f"faster-whisper {compute} on frugal {src} export ({file_type})"
        systems[name] = fw_process(out, compute, args.threads, multilingual)
        sizes[f"frugal {src} export to CT2 {file_type} (model.bin)"] = (
            (out / "model.bin").stat().st_size
        )
    if args.systems:
        keep = [n.strip() for n in args.systems.split(",")]
        unknown = [n for n in keep if n not in systems]
        if unknown:
            raise SystemExit(f"unknown systems {unknown}; known: {list(systems)}")
        systems = {n: systems[n] for n in keep}
    for run in systems.values():  # warm-up
        run(short[0][0])

    report, payload = [], {"model": args.model, "threads": args.threads, "strata": {}}
    strata = {
        "short": ("short clips", short),
        "long": ("20-30 s clips", long),
        "recordings": ("recordings", joined(list(held), args.recording_s, None)),
    }
    for key in args.strata.split(","):
        title, items = strata[key.strip()]
        print(f"{title}: {len(items)} items x {len(systems)} systems", flush=True)
        rows = run_stratum(systems, items)
        recs = summarize(rows)
        minutes = sum(len(a) for a, _ in items) / 16000 / 60
        report.append(table(title, recs, len(items), minutes))
        payload["strata"][title] = {
            "items": len(items),
            "audio_min": minutes,
            "systems": recs,
            "hypotheses": {n: r["hyps"] for n, r in rows.items()},
        }

    clip_paths = []
    for k, (a, _) in enumerate(long[:3]):
        clip_paths.append(work / f"clip{k}.npy")
        np.save(clip_paths[-1], a)
    rss = {}
    if not args.no_rss:
        rss["frugal fp32"] = peak_rss("frugal", args.model, "-", clip_paths, args.threads)
        for ct in ("float32", "int8"):
            rss[f"faster-whisper {ct}"] = peak_rss("fw", str(fwf), ct, clip_paths, args.threads)
        for name, folder in folders.items():
            rss[f"frugal {name}"] = peak_rss("frugal", str(folder), "-", clip_paths, args.threads)

    lines = ["| file | MiB | × fp16 checkpoint |", "|---|---|---|"]
    for k, v in sizes.items():
        lines.append(f"| {k} | {v / 2**20:.1f} | {v / fp16_bytes:.2f} |")
    if rss:  # --no-rss: no table
        lines += ["", "| system | peak RSS MiB |", "|---|---|"]
        lines += [f"| {k} | {v:.0f} |" for k, v in rss.items()]
    report.append("\n".join(lines))
    head = (
        f"Whisper {args.model}, {args.threads} threads, torch {torch.__version__}; GPTQ "
        f"calibrated on {args.calib} built-in utterances, strata from the other "
        f"{len(held)}; sparsify = {args.sparsify}"
    )
    text = head + "\n\n" + "\n\n".join(report)
    print("\n" + text)
    payload.update(sizes_bytes=sizes, peak_rss_mib=rss, report=text, versions=versions())
    write_result(args.out, payload, text)
    return payload


if __name__ == "__main__":
    main()
