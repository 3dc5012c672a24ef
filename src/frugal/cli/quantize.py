"""`frugal quantize` and `frugal export`: weights-only quantization of a Whisper, and its
deployable copies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from frugal.cli.common import (
    DataOpt,
    ModelOpt,
    ThreadsOpt,
    app,
    err,
    fail,
    load_whisper_or_fail,
    out,
    set_threads,
)


@app.command()
def quantize(
    output: Annotated[Path, typer.Option("--out", "-o", help="folder to write")],
    format: Annotated[str, typer.Option("--format", "-f", help="weight format, e.g. mxint4")],
    model: ModelOpt = "tiny.en",
    method: Annotated[str, typer.Option(help="rtn, gptq or qat")] = "rtn",
    data: DataOpt = "builtin",
    budget: Annotated[int, typer.Option(help="calibration utterances (gptq, qat)")] = 128,
    seed: Annotated[int, typer.Option(help="seed of the calibration sample and of QAT")] = 0,
    pattern: Annotated[
        str,
        typer.Option(
            help="module-name globs of the weights, comma-separated (add proj_out "
            "for the tied vocabulary projection / embeddings)"
        ),
    ] = "model.*.layers.*",
    damp: Annotated[float, typer.Option(help="GPTQ damping, fraction of mean diagonal")] = 0.01,
    act_order: Annotated[bool, typer.Option(help="GPTQ: columns by decreasing Hessian")] = False,
    steps: Annotated[int, typer.Option(help="QAT optimizer steps")] = 32,
    lr: Annotated[float, typer.Option(help="QAT learning rate (AdamW, cosine)")] = 1e-4,
    learnable_scales: Annotated[bool, typer.Option(help="QAT: learn a scale per row")] = False,
    vocab_format: Annotated[
        str | None,
        typer.Option(
            help="also round the tied vocabulary projection / embeddings (RTN), "
            "e.g. int8_pc or nf4_b32"
        ),
    ] = None,
    threads: ThreadsOpt = None,
) -> None:
    """Weights-only quantization (RTN, GPTQ or QAT); `frugal eval --model OUT` loads it."""
    from frugal.data import load_dataset
    from frugal.formats import UnknownFormatError
    from frugal.quantize import GPTQConfig, QATConfig, check_method
    from frugal.tasks.asr.calibration import split_calibration
    from frugal.tasks.asr.quantize import quantize_whisper, save_quantized

    set_threads(threads)
    calib = []
    try:
        check_method(method, format)
        gptq = GPTQConfig(damp=damp, act_order=act_order)
        qat = QATConfig(steps=steps, lr=lr, learnable_scales=learnable_scales, seed=seed)
        if method != "rtn":
            calib = split_calibration(load_dataset(data), budget, seed)[0]
    except (UnknownFormatError, ValueError, OSError) as exc:
        fail(str(exc))
    asr = load_whisper_or_fail(model)
    try:
        with err.status(f"{method} {format} on {asr.name}"):
            record = quantize_whisper(
                asr, format, method, calib, pattern, gptq=gptq, qat=qat, vocab_format=vocab_format
            )
    except ValueError as exc:
        fail(str(exc))
    try:
        folder = save_quantized(asr, output)
    except (OSError, ValueError) as exc:
        fail(str(exc))
    store = record["storage"]
    out.print(
        f"{method}: {len(record['modules'])} modules, {record['quantized_weights']:,} weights "
        f"in {format} ({record['bits_per_weight']:.3f} bits/weight, "
        f"{record['calibration_examples']} calibration utterances, "
        f"{record['seconds']:.1f} s) -> {folder}",
        highlight=False,
    )
    from frugal.nn.native import native_kernel

    out.print(
        f"stored: {store['file_bytes'] / 2**20:.1f} MiB ({store['file']}), "
        f"{store['packed_bits_per_weight']:.3f} bits per quantized weight as stored "
        f"(format: {record['bits_per_weight']:.3f}); runs on: "
        f"{native_kernel(format) or 'simulated (fp32 values on the grid)'}"
        + (" in the encoder, fp32 in the decoder" if native_kernel(format) else ""),
        highlight=False,
    )


@app.command()
def export(
    model: Annotated[str, typer.Argument(help="tiny.en, base, a frugal folder, ...")],
    output: Annotated[Path, typer.Option("--out", "-o", help="folder to write")],
    to: Annotated[
        str, typer.Option(help="ct2 (CTranslate2 / faster-whisper), hf, or gguf (an LM)")
    ] = "ct2",
    quantization: Annotated[
        str,
        typer.Option(help="ct2: int8, int8_float32, int8_float16, float16, bfloat16, float32"),
    ] = "int8",
    rest: Annotated[
        str, typer.Option(help="gguf: the matrices frugal did not quantize, f32 or f16")
    ] = "f32",
    source: Annotated[
        Path | None,
        typer.Option(help="gguf: the GGUF whose vocabulary to carry (default: the base model's)"),
    ] = None,
) -> None:
    """Write a model for the runtimes users deploy with: a Whisper as a faster-whisper folder
    (model.bin, config.json, vocabulary, tokenizer, preprocessor config) or a transformers
    folder with frugal's quantization record; a causal LM quantized into q4_0 / q8_0 as a
    GGUF file for llama.cpp, its weights exactly frugal's."""
    from frugal.models.ct2_writer import QUANTIZATIONS, export_ct2
    from frugal.models.hf_export import export_hf

    if to == "gguf":
        _export_gguf(model, output, rest, source)
        return
    if to not in ("ct2", "hf"):
        fail(f"--to {to!r}: choose ct2, hf or gguf")
    if to == "ct2" and quantization not in QUANTIZATIONS:
        fail(f"--quantization {quantization!r}: choose one of {', '.join(QUANTIZATIONS)}")
    asr = load_whisper_or_fail(model, "simulated")
    try:
        with err.status(f"exporting {asr.name} to {to}"):
            if to == "hf":
                export_hf(asr, output)
                out.print(f"transformers folder -> {output}", highlight=False)
                return
            report = export_ct2(asr, output, quantization)
    except (OSError, ValueError) as exc:
        fail(str(exc))
    size = (output / "model.bin").stat().st_size
    line = f"{quantization}: model.bin {size / 2**20:.1f} MiB -> {output}"
    if quantization.startswith("int8"):
        line += (
            f"; int8 codes carried over exactly for {len(report.exact)} weights, "
            f"re-quantized with CTranslate2's rule: {len(report.requantized)}"
        )
        if 0 < len(report.requantized) <= 5:
            line += f" ({', '.join(report.requantized)})"
    if report.worst() > 0:
        line += f"; largest added error {100 * report.worst():.3f}% (relative RMS)"
    out.print(line, highlight=False)


def _export_gguf(model: str, output: Path, rest: str, source: Path | None) -> None:
    from frugal.models.gguf_export import export_gguf
    from frugal.models.gguf_file import GGUFError
    from frugal.models.packaged_lm import PACKAGED_LMS
    from frugal.nn.artifact import read_quant_record
    from frugal.tasks.lm import load_causal_lm

    record = read_quant_record(model) if Path(model).is_dir() else None
    base = (record or {}).get("base_model") or model
    try:
        if source is None:
            if base not in PACKAGED_LMS:
                raise ValueError(
                    f"{model}: no GGUF to take the vocabulary from; give --source FILE.gguf, "
                    "or quantize a packaged LM (frugal models), e.g. frugal lm quantize "
                    "-m smollm2-135m"
                )
            source = PACKAGED_LMS[base].gguf_path()
        lm = load_causal_lm(model)
        path = output if output.suffix == ".gguf" else output / f"{lm.name}.gguf"
        with err.status(f"writing {path}"):
            report = export_gguf(lm.model, path, record, source, rest, name=lm.name)
    except (OSError, ValueError, GGUFError, ModuleNotFoundError) as exc:
        fail(str(exc))
    types = ", ".join(f"{k} x{v}" for k, v in sorted(report["tensors"].items()))
    out.print(
        f"GGUF {report['file_bytes'] / 2**20:.1f} MiB -> {path}: {report['exact']} quantized "
        f"weights encoded exactly; tensors {types}",
        highlight=False,
    )
