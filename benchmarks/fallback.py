"""Temperature fallback: how often Whisper's tests send a window back, which test, and what the
re-decodes buy in WER and cost in time.

frugal sequential long-form (tiny.en, fp32 and the int8 path `compute_type="int8"` runs) on the
built-in recordings and 20-30 s clips of `longform.py`, decoded twice: with the default
fallback (temperatures 0.0 … 1.0; compression ratio 2.4, mean log-probability −1) and with
temperature 0 only (no re-decode). Prints per stratum and precision: windows, re-decodes by
the test that failed (text loops: compression ratio; improbable: log-probability; both), WER
with a 95% bootstrap interval, the paired WER difference (fallback − none) and wall time.

    python benchmarks/fallback.py --threads 2 [--out docs/results/longform/fallback.json]
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
from frugal.provenance import versions
from frugal.tasks.asr import DecodeOptions, Transcriber
from frugal.tasks.asr.longform import LongFormOptions
from frugal.tasks.asr.metrics import paired_bootstrap, word_errors

sys.path.insert(0, str(Path(__file__).parent))
from longform import joined
from tables import write_result


def run(asr, items, temperatures: tuple[float, ...]) -> dict:
    lf = LongFormOptions(mode="sequential", temperatures=temperatures)
    tr = Transcriber(asr, DecodeOptions(timestamps=True, long_form=lf))  # clips too
    out = {"errors": [], "words": [], "seconds": 0.0, "windows": 0, "fallbacks": {}}
    for audio, ref in items:
        t = time.perf_counter()
        res = tr.transcribe([audio])[0]
        out["seconds"] += time.perf_counter() - t
        s, d, i, words = word_errors(ref, res.text)
        out["errors"].append(s + d + i)
        out["words"].append(words)
        out["windows"] += res.windows
        for rule, n in res.fallback_rules.items():
            out["fallbacks"][rule] = out["fallbacks"].get(rule, 0) + n
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from frugal.models.whisper import use_native_kernels
    from frugal.tasks.asr.quantize import quantize_whisper

    dense = frugal.load(args.model)
    int8 = copy.deepcopy(dense)
    use_native_kernels(int8.model, quantize_whisper(int8, "int8_pc", vocab_format="int8_pc"))
    utts = list(frugal.datasets.builtin_speech())
    strata = {"recordings": joined(utts, 240.0, None), "20-30 s clips": joined(utts, 20.0, 30.0)}
    default = LongFormOptions().temperatures
    lines = [
        "| stratum | precision | windows | re-decodes (loops / improbable / both) "
        "| WER % fallback [CI] | WER % none [CI] | Δ pt fallback − none [CI] "
        "| time s fallback / none |",
        "|---|---|---|---|---|---|---|---|",
    ]
    result: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "versions": versions()}
    for name, items in strata.items():
        for precision, asr in (("fp32", dense), ("int8", int8)):
            run(asr, items[:1], default)  # warm-up
            fb, none = run(asr, items, default), run(asr, items, (0.0,))
            w = np.array(fb["words"])
            e_fb, e_none = np.array(fb["errors"]), np.array(none["errors"])
            d, lo, hi = paired_bootstrap(e_fb, e_none, w)
            cis = [paired_bootstrap(e, np.zeros_like(e), w) for e in (e_fb, e_none)]
            rules = fb["fallbacks"]
            lines.append(
                f"| {name} | {precision} | {fb['windows']} | {sum(rules.values())} "
                f"({rules.get('compression', 0)} / {rules.get('logprob', 0)} / "
                f"{rules.get('both', 0)}) | {cis[0][0]:.2f} [{cis[0][1]:.1f}, {cis[0][2]:.1f}] "
                f"| {cis[1][0]:.2f} [{cis[1][1]:.1f}, {cis[1][2]:.1f}] "
                f"| {d:+.2f} [{lo:+.2f}, {hi:+.2f}] | {fb['seconds']:.1f} / {none['seconds']:.1f} |"
            )
            result[f"{name} {precision}"] = {"fallback": fb, "none": none}
            print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    write_result(args.out, result, text)
    return result


if __name__ == "__main__":
    main()
