"""Sparsified Whisper vs our dense path and faster-whisper, per length of input, one run.

Strata built from the built-in set: short clips (the utterances as they are), 20-30 s clips
(consecutive utterances joined with 0.4 s pauses) and multi-minute recordings (the same,
joined to --recording-s seconds, decoded long-form: sequential 30 s windows with timestamps).
Systems, interleaved item by item in rotating order (machine drift hits them alike):
frugal dense, frugal sparsified with the loop guard, the same without the guard, optionally
a second setting (--compare, e.g. the first version's rule) and faster-whisper fp32 / int8
on the same checkpoint. Per stratum: WER % [95% bootstrap CI], ΔWER vs dense [paired 95%
CI], median end-to-end and encoder ms, speed-ups over dense, looping outputs (gzip
compression ratio > 2.4 of a 30 s window's worth of text) and the guard's firings.

    python benchmarks/sparsify.py --model tiny.en --search results/sparsify_tiny \
        --compare layer=0,sparsity=0.6,rule=frames --out docs/results/sparsify/tiny

Targets (issue #15): WER within 1 pt of dense on short and on 20-30 s clips; short clips
>= 1.6x end to end over dense; 20-30 s clips: encoder >= 1.6x; no loops left with the guard.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from fw_worker import fw_process
from tables import table_head, wer_cells, wer_stats

import frugal
from frugal.data.datasets import join_utterances
from frugal.models.registry import CHECKPOINTS
from frugal.provenance import versions
from frugal.sparsify import SparsifyConfig, sparse_encoder
from frugal.tasks.asr import DecodeOptions, Transcriber
from frugal.tasks.asr.guard import compression_ratio
from frugal.tasks.asr.metrics import word_errors

LOOP_RATIO = 2.4


def frugal_system(asr, encoder=None):
    tr = Transcriber(asr, DecodeOptions(batch_size=1), encoder=encoder)

    def run(audio: np.ndarray) -> dict:
        t = tr.transcribe([audio])[0]
        return {
            "text": t.text,
            "encoder_ms": t.timings_ms.get("encoder_ms"),
            "guarded": t.guarded,
            "windows": t.windows,
        }

    return run


def fw_system(folder: Path, compute_type: str, threads: int, multilingual: bool):
    run = fw_process(folder, compute_type, threads, multilingual)

    def timed(audio: np.ndarray) -> dict:
        text, ms = run(audio)
        return {"text": text, "encoder_ms": None, "ms": ms}

    return timed


def loops(text: str, seconds: float) -> int:
    """Looping stretches: each ~30 s of the text (by share of its words) judged separately."""
    words = text.split()
    parts = max(1, round(seconds / 30))
    size = -(-len(words) // parts) if words else 1
    chunks = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return sum(compression_ratio(c) > LOOP_RATIO for c in chunks)


def run_stratum(systems: dict, items: list) -> dict:
    names = list(systems)
    rows = {
        n: {
            "errors": [],
            "words": [],
            "ms": [],
            "enc_ms": [],
            "loops": 0,
            "guarded": 0,
            "windows": 0,
            "hyps": [],
        }
        for n in names
    }
    for k, u in enumerate(items):
        audio = u.load()
        for n in names[k % len(names) :] + names[: k % len(names)]:
            t = time.perf_counter()
            out = systems[n](audio)
            r = rows[n]
            r["ms"].append(out.get("ms", 1e3 * (time.perf_counter() - t)))
            if out.get("encoder_ms") is not None:
                r["enc_ms"].append(out["encoder_ms"])
            s, d, i, words = word_errors(u.text, out["text"])
            r["errors"].append(s + d + i)
            r["words"].append(words)
            r["hyps"].append(out["text"])
            r["loops"] += loops(out["text"], len(audio) / 16000)
            r["guarded"] += out.get("guarded", 0)
            r["windows"] += out.get("windows", 0)
        if (k + 1) % 20 == 0:
            print(f"  {k + 1}/{len(items)}", flush=True)
    return rows


def summarize(rows: dict) -> list[dict]:
    dense = rows["frugal dense"]
    dense_ms, dense_enc = float(np.median(dense["ms"])), float(np.median(dense["enc_ms"]))
    out = []
    for n, r in rows.items():
        med = float(np.median(r["ms"]))
        enc = float(np.median(r["enc_ms"])) if r["enc_ms"] else None
        out.append(
            {
                "system": n,
                **wer_stats(r["errors"], r["words"], dense["errors"]),
                "median_ms": med,
                "encoder_ms": enc,
                "speedup": dense_ms / med,
                "encoder_speedup": dense_enc / enc if enc else None,
                "loops": r["loops"],
                "guarded": r["guarded"],
                "windows": r["windows"],
            }
        )
    return out


def table(title: str, recs: list[dict], n_items: int, audio_min: float) -> str:
    more = ["median ms", "x dense", "encoder ms", "encoder x dense", "loops", "guard fired"]
    lines = table_head(title, n_items, audio_min, "dense", more)
    for r in recs:
        enc = "-" if r["encoder_ms"] is None else f"{r['encoder_ms']:.0f}"
        enc_x = "-" if r["encoder_speedup"] is None else f"{r['encoder_speedup']:.2f}x"
        fired = f"{r['guarded']}/{r['windows']}" if "guard on" in r["system"] else "-"
        lines.append(
            f"| {r['system']} | {wer_cells(r)} | {r['median_ms']:.0f} | {r['speedup']:.2f}x "
            f"| {enc} | {enc_x} | {r['loops']} | {fired} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--search", type=Path, default=None, help="folder with best.json")
    ap.add_argument("--sparsify", default=None, help="a setting instead of --search")
    ap.add_argument("--compare", default=None, help="a second setting shown beside (guard on)")
    ap.add_argument("--strata", default="short,long,recordings")
    ap.add_argument("--limit", type=int, default=None, help="at most N short clips")
    ap.add_argument("--recording-s", type=float, default=240.0)
    ap.add_argument("--no-anchor", action="store_true", help="without faster-whisper")
    ap.add_argument("--out", type=Path, default=None, help="writes OUT.md and OUT.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.search is not None:
        spec = json.dumps(json.loads((args.search / "best.json").read_text())["config"])
    elif args.sparsify:
        spec = args.sparsify
    else:
        raise SystemExit("give --search FOLDER (with best.json) or --sparsify SPEC")
    cfg = SparsifyConfig.parse(spec)
    asr = frugal.load(args.model)
    systems = {
        "frugal dense": frugal_system(asr),
        "frugal sparse, guard on": frugal_system(asr, sparse_encoder(cfg)),
        "frugal sparse, guard off": frugal_system(
            asr, sparse_encoder(SparsifyConfig(**{**cfg.to_dict(), "guard": False}))
        ),
    }
    if args.compare:
        other = SparsifyConfig.parse(args.compare)
        systems[f"frugal {args.compare}, guard on"] = frugal_system(asr, sparse_encoder(other))
    if not args.no_anchor:
        folder = CHECKPOINTS[args.model].runtime_folder()
        for ct in ("float32", "int8"):
            systems[f"faster-whisper {ct}"] = fw_system(folder, ct, args.threads, asr.multilingual)
    data = frugal.datasets.builtin_speech()
    strata = {
        "short": (
            "short clips (built-in utterances)",
            data.take(args.limit) if args.limit else data,
        ),
        "long": ("20-30 s clips", join_utterances(data, 20.0, 30.0)),
        "recordings": (
            f"recordings of >= {args.recording_s:g} s (long-form, sequential)",
            join_utterances(data, args.recording_s),
        ),
    }
    first = strata["short"][1][0].load()
    for run in systems.values():
        run(first)  # warm-up
    report = [
        f"Whisper {args.model}, {args.threads} threads, torch {torch.__version__}; "
        f"sparsification {cfg.to_dict()}"
    ]
    payload = {
        "model": args.model,
        "config": cfg.to_dict(),
        "compare": args.compare,
        "threads": args.threads,
        "versions": versions(),
        "strata": {},
    }
    for key in args.strata.split(","):
        title, items = strata[key.strip()]
        print(f"{title}: {len(items)} items", flush=True)
        rows = run_stratum(systems, list(items))
        recs = summarize(rows)
        minutes = sum(len(u.load()) for u in items) / 16000 / 60
        report.append(table(title, recs, len(items), minutes))
        print(report[-1], flush=True)
        payload["strata"][title] = {
            "rows": recs,
            "hyps": {n: r["hyps"] for n, r in rows.items()},
            "ms": {n: r["ms"] for n, r in rows.items()},
        }
    text = "\n\n".join(report) + "\n"
    print("\n" + text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(payload, indent=1))
        print(f"wrote {args.out}.md / .json")


if __name__ == "__main__":
    main()
