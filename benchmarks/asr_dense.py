"""Dense Whisper on CPU: frugal (lean decoder, generate()) beside faster-whisper fp32/int8.

Same audio, same threads, same run; systems are interleaved per utterance (rotating order) so
machine drift hits them alike. Prints WER (%), median/p90 end-to-end latency per utterance
(ms, audio already decoded to 16 kHz, feature extraction included) and ratios.

    python benchmarks/asr_dense.py --model tiny.en --threads 2 [--limit 50] [--out results/x.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import frugal
from frugal.models.registry import CHECKPOINTS
from frugal.provenance import versions
from frugal.tasks.asr import DecodeOptions, Transcriber
from frugal.tasks.asr.metrics import wer


def faster_whisper_system(folder: Path, compute_type: str, threads: int, multilingual: bool):
    from faster_whisper import WhisperModel

    model = WhisperModel(str(folder), device="cpu", compute_type=compute_type, cpu_threads=threads)

    def run(audio: np.ndarray) -> str:
        segments, _ = model.transcribe(
            audio,
            beam_size=1,
            language="en" if multilingual else None,
            without_timestamps=True,
            temperature=0.0,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        return " ".join(s.text.strip() for s in segments)

    return run


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--seed", type=int, default=None, help="with --limit: seeded sample")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--no-generate", action="store_true", help="skip frugal generate()")
    ap.add_argument("--sparsify", default=None, help="also frugal lean + this sparsification")
    ap.add_argument("--out", type=Path, default=None)
    return ap


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    torch.set_num_threads(args.threads)

    asr = frugal.load(args.model)
    data = frugal.datasets.builtin_speech()
    if args.limit:
        data = data.take(args.limit, seed=args.seed)
    audios = [u.load() for u in data]
    refs = [u.text for u in data]

    systems = {}
    for method in ("lean",) if args.no_generate else ("lean", "generate"):
        tr = Transcriber(asr, DecodeOptions(method=method, batch_size=1))
        systems[f"frugal {method}"] = lambda a, tr=tr: tr.transcribe([a])[0].text
    if args.sparsify:
        from frugal.sparsify import SparsifyConfig, sparse_encoder

        cfg = SparsifyConfig.parse(args.sparsify)
        tr = Transcriber(asr, DecodeOptions(batch_size=1), encoder=sparse_encoder(cfg))
        systems["frugal lean sparse"] = lambda a, tr=tr: tr.transcribe([a])[0].text
    if args.model in CHECKPOINTS:
        folder = CHECKPOINTS[args.model].runtime_folder()
    else:
        folder = Path(args.model)
    try:
        for ct in ("float32", "int8"):
            systems[f"faster-whisper {ct}"] = faster_whisper_system(
                folder, ct, args.threads, asr.multilingual
            )
    except ImportError:
        print("faster-whisper is not installed (pip install -e '.[bench]'): anchors absent")

    names = list(systems)
    for name in names:
        for _ in range(args.warmup):
            systems[name](audios[0])
    hyps = {n: [] for n in names}
    times = {n: [] for n in names}
    for i, audio in enumerate(audios):
        order = names[i % len(names) :] + names[: i % len(names)]
        for name in order:
            t = time.perf_counter()
            text = systems[name](audio)
            times[name].append(1e3 * (time.perf_counter() - t))
            hyps[name].append(text)
        if (i + 1) % 25 == 0:
            print(f"  {i + 1}/{len(audios)} utterances", flush=True)

    anchor = "faster-whisper float32" if "faster-whisper float32" in names else names[0]
    med = {n: float(np.median(times[n])) for n in names}
    rows = []
    print(
        f"\nWhisper {args.model}, {len(audios)} utterances of the built-in set, "
        f"{args.threads} threads, torch {torch.__version__}"
    )
    header = (
        f"{'system':24s} {'WER %':>7s} {'median ms':>10s} {'p90 ms':>8s} "
        f"{'x ' + anchor:>28s} {'same text as anchor':>20s}"
    )
    print(header)
    print("-" * len(header))
    for n in names:
        w = wer(refs, hyps[n]).wer
        same = sum(a.strip() == b.strip() for a, b in zip(hyps[n], hyps[anchor], strict=True))
        row = {
            "system": n,
            "wer_pct": w,
            "median_ms": med[n],
            "p90_ms": float(np.percentile(times[n], 90)),
            "ratio_to_anchor": med[n] / med[anchor],
            "same_text_as_anchor": same,
        }
        row["x_frugal_lean"] = med[n] / med["frugal lean"]
        rows.append(row)
        print(
            f"{n:24s} {w:7.2f} {med[n]:10.1f} {row['p90_ms']:8.1f} "
            f"{row['ratio_to_anchor']:28.2f} {same:>14d}/{len(audios)}"
        )
    if "frugal lean sparse" in names:
        d = next(r for r in rows if r["system"] == "frugal lean")
        sp = next(r for r in rows if r["system"] == "frugal lean sparse")
        print(
            f"\nsparsified vs our dense lean: {d['median_ms'] / sp['median_ms']:.2f}x faster, "
            f"WER {sp['wer_pct'] - d['wer_pct']:+.2f} pt"
        )
        for fw in ("faster-whisper int8", "faster-whisper float32"):
            if fw in med:
                print(f"sparsified vs {fw}: latency ratio {sp['median_ms'] / med[fw]:.2f}")
    payload = {
        "model": args.model,
        "threads": args.threads,
        "utterances": len(audios),
        "sparsify": args.sparsify,
        "rows": rows,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload.update(versions=versions(), hypotheses=hyps, times_ms=times)
        args.out.write_text(json.dumps(payload, indent=1))
        print(f"wrote {args.out}")
    return payload


if __name__ == "__main__":
    main()
