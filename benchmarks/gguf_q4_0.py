"""GPTQ into Q4_0 against RTN into Q4_0 (llama.cpp's own quantizer) at identical file size.

For each LLM: the block Linears quantized to GGUF Q4_0 by RTN (bit-identical to llama.cpp's
reference quantizer) and by frugal's GPTQ (calibration: windows of `pydoc`); both written with
`frugal export --to gguf` (other matrices F16), read back from the files, and scored on
held-out text (`sentences`, a domain calibration never saw) and on the unseen tail of pydoc.
The reference is the dequantized packaged model (itself stored in GGUF Q4_1 / Q4_K_M). With
`--llama-cpp PYTHON` (a Python with llama-cpp-python), each file is also run in llama.cpp:
perplexity on the same held-out tokens and generation tokens/s.

    python benchmarks/gguf_q4_0.py --models smollm2-135m,gemma3-270m --out docs/results/gguf
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from frugal.models.gguf_export import export_gguf
from frugal.models.gguf_lm import build_causal_lm
from frugal.models.packaged_lm import PACKAGED_LMS
from frugal.provenance import versions
from frugal.quantize import make_recipe, quantize
from frugal.tasks.lm import (
    block_pattern,
    calibration_windows,
    load_causal_lm,
    perplexity,
    read_tokens,
    sliding_windows,
)
from frugal.tasks.lm_zoo import corpus_split

LLAMA_WORKER = r"""
import json, sys, time
import numpy as np
from llama_cpp import Llama
path, tokens = sys.argv[1], json.loads(sys.argv[2])
ctx = int(sys.argv[3])
llm = Llama(model_path=path, n_ctx=ctx + 8, logits_all=True, n_threads=2, verbose=False)
nll, n = 0.0, 0
for start in range(0, len(tokens) - 1, ctx):
    window = tokens[start : start + ctx + 1]
    if len(window) < 2:
        break
    llm.reset()
    llm.eval(window[:-1])
    logits = np.asarray(llm.scores[: len(window) - 1], dtype=np.float64)
    logits -= logits.max(1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    nll -= logp[np.arange(len(window) - 1), window[1:]].sum()
    n += len(window) - 1
llm.reset()
t = time.perf_counter()
out = llm.create_completion("def fibonacci(n):", max_tokens=64, temperature=0.0)
gen = out["usage"]["completion_tokens"]
print(json.dumps({"nll": nll / n, "tokens": n, "gen_tokens": gen,
                  "gen_tok_s": gen / (time.perf_counter() - t)}))
"""


def evaluate(model, held, tail, context: int) -> dict:
    return {
        "sentences_nll": perplexity(model, sliding_windows(held, context, context))[0],
        "pydoc_tail_nll": perplexity(model, sliding_windows(tail, context, context))[0],
    }


def run_model(name: str, out: Path, args) -> dict:
    lm = load_causal_lm(name, log=print)
    tokens = read_tokens(lm, ["pydoc"])
    train, tail = corpus_split(tokens)
    tail = tail[: args.tail_tokens]
    held = read_tokens(lm, ["sentences"])
    row = {"model": name, "reference": evaluate(lm.model, held, tail, args.context)}
    ref_state = {k: v.clone() for k, v in lm.model.state_dict().items()}
    source = PACKAGED_LMS[name].gguf_path()
    for method in ("rtn", "gptq"):
        lm.model.load_state_dict(ref_state)
        batches = calibration_windows(train, args.budget, args.context, seed=0)
        t = time.perf_counter()
        record = quantize(
            lm.model, make_recipe(method, "q4_0", block_pattern(lm.model)),
            batches if method == "gptq" else [],
        )  # fmt: skip
        seconds = time.perf_counter() - t
        path = out / f"{name}.{method}.q4_0.gguf"
        report = export_gguf(lm.model, path, record, source, rest="f16", name=f"{name}-{method}")
        back, _ = build_causal_lm(path)  # what the file holds is what is scored
        for key, w in lm.model.state_dict().items():
            if key in back.state_dict() and key.split(".")[-2] in ("q_proj", "down_proj"):
                assert torch.equal(back.state_dict()[key], w), key  # exact, spot-checked
        row[method] = {
            **evaluate(back, held, tail, args.context),
            "seconds": seconds,
            "file_bytes": report["file_bytes"],
            "tensors": report["tensors"],
        }
        if args.llama_cpp:
            ids = held.tolist()
            res = subprocess.run(
                [args.llama_cpp, "-c", LLAMA_WORKER, str(path), json.dumps(ids), str(args.context)],
                capture_output=True, text=True, timeout=1800,
            )  # fmt: skip
            row[method]["llama_cpp"] = (
                json.loads(res.stdout.strip().splitlines()[-1])
                if res.returncode == 0
                else {"error": res.stderr.strip().splitlines()[-1:]}
            )
        del back
        print(json.dumps(row[method], default=str))
    return row


def markdown(rows: list[dict]) -> str:
    lines = [
        "| model | reference NLL sentences / pydoc tail | RTN Q4_0 ΔNLL | GPTQ Q4_0 ΔNLL | "
        "file MiB (both) | GPTQ s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        ref = r["reference"]

        def delta(m, r=r, ref=ref):
            return (
                f"{r[m]['sentences_nll'] - ref['sentences_nll']:+.3f} / "
                f"{r[m]['pydoc_tail_nll'] - ref['pydoc_tail_nll']:+.3f}"
            )

        same = r["rtn"]["file_bytes"] == r["gptq"]["file_bytes"]
        size = f"{r['rtn']['file_bytes'] / 2**20:.1f}" + ("" if same else " (differ!)")
        lines.append(
            f"| {r['model']} | {ref['sentences_nll']:.3f} / {ref['pydoc_tail_nll']:.3f} | "
            f"{delta('rtn')} | {delta('gptq')} | {size} | {r['gptq']['seconds']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="smollm2-135m")
    ap.add_argument("--out", type=Path, default=Path("results/gguf"))
    ap.add_argument("--budget", type=int, default=128, help="GPTQ calibration windows")
    ap.add_argument("--context", type=int, default=128, help="tokens per window")
    ap.add_argument("--tail-tokens", type=int, default=8192, help="pydoc tail tokens scored")
    ap.add_argument("--llama-cpp", help="a Python interpreter with llama-cpp-python")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "gguf_q4_0.jsonl"
    done = {}
    if store.exists():
        done = {json.loads(x)["model"]: json.loads(x) for x in store.read_text().splitlines()}
    for name in args.models.split(","):
        if name in done:
            continue  # resumable: one line per finished model
        row = run_model(name, args.out, args)
        row["versions"] = versions()
        with open(store, "a") as f:
            f.write(json.dumps(row, default=str) + "\n")
        done[name] = row
    table = markdown(list(done.values()))
    (args.out / "gguf_q4_0.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    sys.exit(main())
