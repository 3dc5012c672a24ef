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

import numpy as np
import torch

from frugal.models.gguf_export import export_gguf
from frugal.models.gguf_lm import build_causal_lm
from frugal.models.packaged_lm import PACKAGED_LMS
from frugal.nn.batches import batch_nll
from frugal.provenance import versions
from frugal.quantize import make_recipe, quantize
from frugal.tasks.asr.metrics import paired_bootstrap
from frugal.tasks.lm import (
    block_pattern,
    calibration_windows,
    load_causal_lm,
    read_tokens,
    sliding_windows,
)
from frugal.tasks.lm_zoo import corpus_split

LLAMA_WORKER = r"""
import json, sys, time
import numpy as np
from llama_cpp import Llama
path, windows_file, ctx = sys.argv[1], sys.argv[2], int(sys.argv[3])
windows = json.load(open(windows_file))  # [[input ids], [target ids, -100 = not scored]]
llm = Llama(model_path=path, n_ctx=ctx + 8, logits_all=True, n_threads=2, verbose=False)
nll, n, t = 0.0, 0, time.perf_counter()
for ids, targets in windows:
    llm.reset()
    llm.eval(ids)
    logits = np.asarray(llm.scores[: len(ids)], dtype=np.float64)
    logits -= logits.max(1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    for i, tgt in enumerate(targets):
        if tgt >= 0:
            nll -= logp[i, tgt]
            n += 1
scored_s = time.perf_counter() - t
llm.reset()
t = time.perf_counter()
out = llm.create_completion("def fibonacci(n):", max_tokens=64, temperature=0.0)
gen = out["usage"]["completion_tokens"]
print(json.dumps({"sentences_nll": nll / n, "tokens": n, "prompt_tok_s": n / scored_s,
                  "gen_tokens": gen, "gen_tok_s": gen / (time.perf_counter() - t)}))
"""


def run_llama_cpp(args, path: Path, held: torch.Tensor, prefix) -> dict:
    """The file in llama.cpp (a process of its own): NLL of the same held-out windows, and
    generation speed."""
    windows = [
        [b.inputs["input_ids"][0].tolist(), b.target[0].tolist()]
        for b in sliding_windows(held, args.context, args.context, prefix)
    ]
    spec = path.with_suffix(".windows.json")
    spec.write_text(json.dumps(windows))
    try:
        res = subprocess.run(
            [args.llama_cpp, "-c", LLAMA_WORKER, str(path), str(spec), str(args.context)],
            capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
    finally:
        spec.unlink(missing_ok=True)
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


@torch.no_grad()
def tokens_per_second(model, held: torch.Tensor, context: int, prefix) -> dict:
    """transformers on the same machine: held-out windows scored per second, and greedy
    generation of 64 tokens (KV cache) per second."""
    batches = sliding_windows(held, context, context, prefix)
    t = time.perf_counter()
    for b in batches:
        model(**b.inputs)
    scored = sum(int((b.target >= 0).sum()) for b in batches) / (time.perf_counter() - t)
    ids = torch.cat([torch.tensor(list(prefix), dtype=torch.long), held[:8]])[None]
    t = time.perf_counter()
    out = model.generate(ids, max_new_tokens=64, min_new_tokens=64, do_sample=False)
    gen = (out.shape[1] - ids.shape[1]) / (time.perf_counter() - t)
    return {"prompt_tok_s": scored, "gen_tok_s": gen}


@torch.no_grad()
def evaluate(model, held, tail, context: int, prefix) -> dict:
    """NLL per token (nats) on both texts, and each window's summed NLL and token count (for
    paired intervals between two models scored on the same windows)."""
    row = {}
    for text, tokens in (("sentences", held), ("pydoc_tail", tail)):
        batches = sliding_windows(tokens, context, context, prefix)
        sums = [float(batch_nll(model, b)) for b in batches]
        row[f"{text}_nll"] = sum(sums) / sum(b.tokens for b in batches)
        row[f"{text}_windows"] = [
            [round(x, 5), b.tokens] for x, b in zip(sums, batches, strict=True)
        ]
    return row


def paired_delta(a: dict, b: dict, text: str) -> tuple[float, float, float]:
    """NLL of `a` minus NLL of `b` per token (nats) on `text`, with a 95% interval from
    resampling windows (paired_bootstrap works in percentage points: divided back)."""
    wa, wb = np.array(a[f"{text}_windows"]), np.array(b[f"{text}_windows"])
    assert np.array_equal(wa[:, 1], wb[:, 1]), "scored on different windows"
    d, lo, hi = paired_bootstrap(wa[:, 0], wb[:, 0], wa[:, 1])
    return d / 100, lo / 100, hi / 100


def run_model(name: str, out: Path, args) -> dict:
    lm = load_causal_lm(name, log=print)
    tokens = read_tokens(lm, ["pydoc"])
    train, tail = corpus_split(tokens)
    tail = tail[: args.tail_tokens]
    held = read_tokens(lm, ["sentences"])
    pre = lm.text_prefix  # Gemma's <bos> starts every window, as llama.cpp's perplexity does
    row = {"model": name, "text_prefix": pre}
    row["reference"] = evaluate(lm.model, held, tail, args.context, pre)
    source = PACKAGED_LMS[name].gguf_path()
    for method in ("rtn", "gptq"):
        if method != "rtn":
            lm = load_causal_lm(name)  # the reference again (from the cache; no second copy)
        batches = calibration_windows(train, args.budget, args.context, seed=0, prefix=pre)
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
            **evaluate(back, held, tail, args.context, pre),
            "seconds": seconds,
            "file_bytes": report["file_bytes"],
            "tensors": report["tensors"],
        }
        if args.llama_cpp:
            row[method]["llama_cpp"] = run_llama_cpp(args, path, held, pre)
            row[method]["transformers_tok_s"] = tokens_per_second(back, held, args.context, pre)
        del back
        print(json.dumps(row[method], default=str))
    return row


def markdown(rows: list[dict]) -> str:
    lines = [
        "| model | reference NLL sentences / pydoc tail | RTN Q4_0 ΔNLL | GPTQ Q4_0 ΔNLL | "
        "GPTQ − RTN, sentences [95% CI] | GPTQ − RTN, pydoc tail [95% CI] | file MiB (both) "
        "| GPTQ s |",
        "|---|---|---|---|---|---|---|---|",
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
        vs = []
        for text in ("sentences", "pydoc_tail"):
            d, lo, hi = paired_delta(r["gptq"], r["rtn"], text)
            vs.append(f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]")
        lines.append(
            f"| {r['model']} | {ref['sentences_nll']:.3f} / {ref['pydoc_tail_nll']:.3f} | "
            f"{delta('rtn')} | {delta('gptq')} | {vs[0]} | {vs[1]} | {size} | "
            f"{r['gptq']['seconds']:.0f} |"
        )
    runs = [(r, m) for r in rows for m in ("rtn", "gptq") if "llama_cpp" in r[m]]
    if runs:
        lines += [
            "",
            "| file | NLL sentences: transformers / llama.cpp | scored tok/s: transformers / "
            "llama.cpp | generated tok/s: transformers / llama.cpp |",
            "|---|---|---|---|",
        ]
        for r, m in runs:
            ll, hf = r[m]["llama_cpp"], r[m]["transformers_tok_s"]
            if "error" in ll:
                lines.append(f"| {r['model']} {m} | llama.cpp failed: {ll['error']} | | |")
                continue
            lines.append(
                f"| {r['model']} {m.upper()} Q4_0 | {r[m]['sentences_nll']:.4f} / "
                f"{ll['sentences_nll']:.4f} | {hf['prompt_tok_s']:.0f} / {ll['prompt_tok_s']:.0f} "
                f"| {hf['gen_tok_s']:.1f} / {ll['gen_tok_s']:.1f} |"
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
    ap.add_argument(
        "--llama-only", action="store_true",
        help="with --llama-cpp: add llama.cpp's figures to models already measured",
    )  # fmt: skip
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "gguf_q4_0.jsonl"
    done = {}
    if store.exists():
        done = {json.loads(x)["model"]: json.loads(x) for x in store.read_text().splitlines()}
    if args.llama_only:
        for name, row in done.items():
            lm = load_causal_lm(name)
            held, pre = read_tokens(lm, ["sentences"]), lm.text_prefix
            for method in ("rtn", "gptq"):
                path = args.out / f"{name}.{method}.q4_0.gguf"
                if not path.exists():
                    sys.exit(f"{path}: missing; run without --llama-only to write it")
                back, _ = build_causal_lm(path)
                row[method]["llama_cpp"] = run_llama_cpp(args, path, held, pre)
                row[method]["transformers_tok_s"] = tokens_per_second(back, held, args.context, pre)
                print(name, method, row[method]["llama_cpp"], row[method]["transformers_tok_s"])
        store.write_text("".join(json.dumps(r, default=str) + "\n" for r in done.values()))
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
