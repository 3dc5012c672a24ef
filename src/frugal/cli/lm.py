"""`frugal lm ...`: causal language models (perplexity, quantization)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from frugal.cli.common import (
    ThreadsOpt,
    app,
    err,
    fail,
    out,
    set_threads,
)

lm_app = typer.Typer(
    no_args_is_help=True, help="Causal language models (packaged, local folders, hub ids)."
)
app.add_typer(lm_app, name="lm")
LMOpt = Annotated[
    str, typer.Option("--model", "-m", help="smollm2-135m, a causal-LM folder or a hub id")
]
TextOpt = Annotated[
    list[str], typer.Option("--text", "-t", help="text file(s), or pydoc / sentences")
]


def _load_lm(model: str, text: list[str]):
    from frugal.tasks.lm import load_causal_lm, read_tokens

    try:
        with err.status(f"loading {model}"):
            lm = load_causal_lm(model, log=lambda m: err.print(m, highlight=False))
        return lm, read_tokens(lm, text)
    except (OSError, ValueError, ModuleNotFoundError) as exc:
        fail(str(exc))


@lm_app.command("perplexity")
def lm_perplexity(
    model: LMOpt,
    text: TextOpt,
    context: Annotated[int, typer.Option(help="tokens the model sees")] = 512,
    stride: Annotated[int, typer.Option(help="tokens each window advances")] = 256,
    threads: ThreadsOpt = None,
) -> None:
    """NLL per token and perplexity of text files, with sliding windows."""
    from frugal.tasks.lm import perplexity, sliding_windows

    set_threads(threads)
    lm, tokens = _load_lm(model, text)
    try:
        nll, ppl = perplexity(
            lm.model,
            sliding_windows(tokens, min(context, lm.max_positions), stride, lm.text_prefix),
        )
    except ValueError as exc:
        fail(str(exc))
    out.print(f"{lm.name}: {len(tokens):,} tokens, NLL {nll:.4f} nats/token, perplexity {ppl:.3f}")


@lm_app.command("quantize")
def lm_quantize(
    model: LMOpt,
    text: TextOpt,
    output: Annotated[Path, typer.Option("--out", "-o", help="folder to write")],
    format: Annotated[str, typer.Option("--format", "-f", help="weight format")],
    method: Annotated[str, typer.Option(help="rtn, gptq or qat")] = "gptq",
    budget: Annotated[int, typer.Option(help="calibration windows")] = 128,
    length: Annotated[int, typer.Option(help="tokens per calibration window")] = 512,
    pattern: Annotated[str | None, typer.Option(help="module glob (default: the blocks)")] = None,
    steps: Annotated[int, typer.Option(help="QAT optimizer steps")] = 32,
    lr: Annotated[float, typer.Option(help="QAT learning rate")] = 1e-4,
    seed: int = 0,
    threads: ThreadsOpt = None,
) -> None:
    """Quantize a causal LM's weights, calibrated on random windows of the text files."""
    from frugal.quantize import QATConfig, make_recipe, quantize
    from frugal.tasks.lm import block_pattern, calibration_windows

    set_threads(threads)
    lm, tokens = _load_lm(model, text)
    try:
        qat = QATConfig(steps=steps, lr=lr, seed=seed)
        recipe = make_recipe(method, format, pattern or block_pattern(lm.model), qat=qat)
        batches = calibration_windows(
            tokens, budget, min(length, lm.max_positions), seed, prefix=lm.text_prefix
        )
        record = quantize(lm.model, recipe, batches if method != "rtn" else [])
    except ValueError as exc:
        fail(str(exc))
    record["base_model"] = str(model)
    if lm.note:
        record["base_model_grid"] = lm.note
    folder = lm.save(output, record)
    out.print(
        f"{method}: {len(record['modules'])} modules in {format} "
        f"({record['bits_per_weight']:.3f} bits/weight, {record['calibration_examples']} "
        f"windows of {length} tokens, {record['seconds']:.1f} s) -> {folder}",
        highlight=False,
    )
