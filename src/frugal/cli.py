"""frugal's command line: thin wrappers that parse, call one library function, render."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

ModelOpt = Annotated[
    str, typer.Option("--model", "-m", help="tiny.en, base, small, a folder or a hub id")
]
DataOpt = Annotated[str, typer.Option("--data", "-d", help="builtin, a folder or a manifest")]
LimitOpt = Annotated[int | None, typer.Option(help="first N utterances only")]
MethodOpt = Annotated[str, typer.Option(help="decoder: lean (ours) or generate (transformers)")]
ThreadsOpt = Annotated[int | None, typer.Option(help="torch CPU threads (default: torch's)")]
SparsifyOpt = Annotated[
    str | None,
    typer.Option(
        help="encoder sparsification: layer=0,sparsity=0.1[,padding_frames=128,rule=audio,"
        "score=attention,guard=on], a JSON object, or a search's best.json"
    ),
]


def _threads(n: int | None) -> None:
    if n is not None:
        import torch

        torch.set_num_threads(n)


def _fail(msg: str) -> None:
    err.print(f"[red]error:[/red] {escape(msg)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _sparse_encoder(spec: str | None):
    if spec is None:
        return None
    from frugal.sparsify import SparsifyConfig, sparse_encoder

    try:
        return sparse_encoder(SparsifyConfig.parse(spec))
    except (ValueError, TypeError, OSError) as exc:
        _fail(f"--sparsify {spec!r}: {exc}")


def _check_sparsify(asr, encoder) -> None:
    if encoder is not None:
        from frugal.sparsify import check_config

        try:
            check_config(asr, encoder.config)
        except ValueError as exc:
            _fail(str(exc))


RayAddressOpt = Annotated[
    str | None,
    typer.Option(help="run on Ray: auto, ray://host:port, or local (pip install frugal[ray])"),
]
KernelsOpt = Annotated[
    str,
    typer.Option(
        help="quantized folders: native (int8 encoder weights on the int8 kernel) or "
        "simulated (fp32 values on the format's grid)"
    ),
]


def _load(model: str, kernels: str = "native"):
    from frugal.models import load_whisper

    try:
        with err.status(f"loading {model}"):
            return load_whisper(model, kernels=kernels)
    except (OSError, ValueError, ModuleNotFoundError) as exc:
        _fail(str(exc))


@app.command()
def models() -> None:
    """List the Whisper checkpoints and causal LMs that frugal can load by name."""
    from frugal.models import CHECKPOINTS
    from frugal.models.packaged_lm import PACKAGED_LMS

    table = Table("name", "kind", "installed", "description", "install")
    for c in CHECKPOINTS.values():
        table.add_row(c.name, "whisper", c.status(), c.description, escape(c.install))
    for m in PACKAGED_LMS.values():
        table.add_row(m.name, "causal LM", m.status(), m.description, escape(m.install))
    out.print(table)
    out.print("Also: a faster-whisper folder (model.bin), a transformers folder, or a hub id.")


LongFormOpt = Annotated[
    str,
    typer.Option(
        "--long-form",
        help="audio over 30 s (and every file in transcribe): sequential (seek through the "
        "recording), batched (VAD chunks decoded in batches) or windows (fixed 30 s windows "
        "without timestamps)",
    ),
]


def _long_form_options(mode: str, **kwargs):
    from frugal.tasks.asr.longform import LongFormOptions

    try:
        return LongFormOptions(mode=mode, **kwargs)
    except ValueError as exc:
        _fail(str(exc))


def _audio_progress():
    """A rich progress bar over seconds of audio on stderr (off when not a terminal)."""
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s audio"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def _segment_json(segment) -> dict:
    row = {k: v for k, v in segment.to_dict().items() if k not in ("tokens", "words")}
    if segment.words is not None:
        row["words"] = [
            {k: v for k, v in w.to_dict().items() if k != "tokens"} for w in segment.words
        ]
    return row


@app.command()
def transcribe(
    audio: Annotated[list[Path], typer.Argument(help="audio files (wav, flac, ogg, mp3, m4a...)")],
    model: ModelOpt = "tiny.en",
    format: Annotated[str, typer.Option("--format", "-f", help="text, json, srt or vtt")] = "text",
    long_form: LongFormOpt = "sequential",
    method: MethodOpt = "lean",
    beam_size: Annotated[int, typer.Option(help="beams (>1 uses generate())")] = 1,
    language: Annotated[str, typer.Option(help="language code, or 'auto' to detect")] = "en",
    batch_size: Annotated[int, typer.Option(help="windows decoded together")] = 8,
    condition_on_previous_text: Annotated[
        bool, typer.Option(help="prompt each window with the text before it")
    ] = False,
    word_timestamps: Annotated[
        bool, typer.Option(help="time every word (json: a words list per segment)")
    ] = False,
    vad_filter: Annotated[
        bool, typer.Option(help="sequential: skip stretches where the VAD finds no speech")
    ] = False,
    no_speech_threshold: Annotated[
        float, typer.Option(help="<|nospeech|> probability above which a window may be silent")
    ] = 0.6,
    logprob_threshold: Annotated[
        float, typer.Option(help="mean log-probability below which a window is re-decoded")
    ] = -1.0,
    compression_ratio_threshold: Annotated[
        float, typer.Option(help="gzip ratio above which a window's text loops")
    ] = 2.4,
    sparsify: SparsifyOpt = None,
    kernels: KernelsOpt = "native",
    threads: ThreadsOpt = None,
) -> None:
    """Transcribe audio files with timestamps; unreadable ones are reported and the rest
    still processed."""
    from frugal.data import AudioError, load_audio
    from frugal.tasks.asr import DecodeOptions, Transcriber
    from frugal.tasks.asr.subtitles import to_srt, to_vtt

    if format not in ("text", "json", "srt", "vtt"):
        _fail(f"unknown format {format!r}: use text, json, srt or vtt")
    _threads(threads)
    lf = _long_form_options(
        long_form,
        condition_on_previous_text=condition_on_previous_text,
        word_timestamps=word_timestamps,
        vad_filter=vad_filter,
        no_speech_threshold=no_speech_threshold,
        logprob_threshold=logprob_threshold,
        compression_ratio_threshold=compression_ratio_threshold,
    )
    try:
        opts = DecodeOptions(
            method,
            beam_size,
            None if language == "auto" else language,
            batch_size=batch_size,
            timestamps=True,
            long_form=lf,
        )
    except ValueError as exc:
        _fail(str(exc))
    loaded, failed = [], []
    for path in audio:
        try:
            loaded.append((path, load_audio(path)))
        except AudioError as exc:
            failed.append(path)
            err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
    if loaded:
        encoder = _sparse_encoder(sparsify)
        asr = _load(model, kernels)
        _check_sparsify(asr, encoder)
        tr = Transcriber(asr, opts, encoder=encoder)
        total = sum(len(a) for _, a in loaded) / 16000
        with _audio_progress() as bar:
            task = bar.add_task(f"transcribing {len(loaded)} file(s)", total=total)
            results = tr.transcribe(
                [a for _, a in loaded], progress=lambda sec: bar.advance(task, sec)
            )
        for (path, _), res in zip(loaded, results, strict=True):
            if format == "text":
                out.print(
                    escape(f"{path}: {res.text}" if len(loaded) > 1 else res.text), highlight=False
                )
            elif format == "json":
                row = {
                    "audio": str(path),
                    "text": res.text,
                    "duration_s": res.duration_s,
                    "language": res.language,
                    "decoding": res.decoding,
                    "windows": res.windows,
                    "fallbacks": res.fallbacks,
                    "skipped_silent": res.skipped,
                    "guarded_dense": res.guarded,
                    "segments": [
                        {k: v for k, v in g.to_dict().items() if k not in ("tokens",)}
                        for g in res.segments
                    ],
                    "timings_ms": res.timings_ms,
                }
                sys.stdout.write(json.dumps(row) + "\n")
            else:
                sys.stdout.write((to_srt if format == "srt" else to_vtt)(res.segments))
    if failed:
        raise typer.Exit(1)


def _num(value, spec: str) -> str:
    """A number for a table, or an em dash when there is none (no utterance scored)."""
    if value is None or value != value:
        return "—"
    return format(value, spec)


def _eval_table(summary: dict) -> Table:
    table = Table(
        "model",
        "data",
        "utts",
        "failed",
        "WER %",
        "NLL/token",
        "e2e ms (median)",
        "encoder ms",
        "decoder ms",
        "RTF",
    )
    table.add_row(
        summary["model"],
        str(summary["data"]),
        str(summary["utterances"]),
        str(summary["failed"]),
        _num(summary["wer_pct"], ".2f"),
        _num(summary["nll_per_token"], ".4f"),
        _num(summary["e2e_ms_median"], ".1f"),
        _num(summary["encoder_ms_median"], ".1f"),
        _num(summary["decoder_ms_median"], ".1f"),
        _num(summary["rtf_median"], ".3f"),
    )
    return table


@app.command()
def formats() -> None:
    """List number formats with their bits per element (shared scales included)."""
    from frugal.formats import list_formats
    from frugal.formats.packing import is_packable
    from frugal.nn.native import native_kernel

    table = Table("name", "bits/element", "kind", "stored", "runs on (this CPU)")
    for f in list_formats():
        table.add_row(
            f.name,
            f"{f.bits_per_element:g}",
            type(f).__name__.removesuffix("Format"),
            "packed" if is_packable(f) else "fp32",
            native_kernel(f.name) or "simulated (fp32 on the grid)",
        )
    out.print(table)
    out.print(
        "Grammar: intN[_pc|_gG][_asym], fp8_e4m3|fp8_e5m2|fp6_e3m2|fp6_e2m3|fp4_e2m1"
        "|fp16|bf16[_sr], mx<int2..8|fp8|fp8_e5m2|fp6|fp6_e3m2|fp4>[_bK], bfpN_bK, "
        "nf4[_bK], flexN+M",
        highlight=False,
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

    _threads(threads)
    calib = []
    try:
        check_method(method, format)
        gptq = GPTQConfig(damp=damp, act_order=act_order)
        qat = QATConfig(steps=steps, lr=lr, learnable_scales=learnable_scales, seed=seed)
        if method != "rtn":
            calib = split_calibration(load_dataset(data), budget, seed)[0]
    except (UnknownFormatError, ValueError, OSError) as exc:
        _fail(str(exc))
    asr = _load(model)
    try:
        with err.status(f"{method} {format} on {asr.name}"):
            record = quantize_whisper(
                asr, format, method, calib, pattern, gptq=gptq, qat=qat, vocab_format=vocab_format
            )
    except ValueError as exc:
        _fail(str(exc))
    try:
        folder = save_quantized(asr, output)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
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
    to: Annotated[str, typer.Option(help="ct2 (CTranslate2 / faster-whisper) or hf")] = "ct2",
    quantization: Annotated[
        str,
        typer.Option(help="ct2: int8, int8_float32, int8_float16, float16, bfloat16, float32"),
    ] = "int8",
) -> None:
    """Write a Whisper for the runtimes users deploy with: a faster-whisper folder
    (model.bin, config.json, vocabulary, tokenizer, preprocessor config) or a transformers
    folder with frugal's quantization record."""
    from frugal.models.ct2_writer import QUANTIZATIONS, export_ct2
    from frugal.models.hf_export import export_hf

    if to not in ("ct2", "hf"):
        _fail(f"--to {to!r}: choose ct2 or hf")
    if to == "ct2" and quantization not in QUANTIZATIONS:
        _fail(f"--quantization {quantization!r}: choose one of {', '.join(QUANTIZATIONS)}")
    asr = _load(model, "simulated")
    try:
        with err.status(f"exporting {asr.name} to {to}"):
            if to == "hf":
                export_hf(asr, output)
                out.print(f"transformers folder -> {output}", highlight=False)
                return
            report = export_ct2(asr, output, quantization)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
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


study_app = typer.Typer(no_args_is_help=True, help="Published-style studies.")
app.add_typer(study_app, name="study")


@study_app.command("ptq-vs-qat")
def study_ptq_vs_qat(
    model: ModelOpt = "tiny.en",
    formats: Annotated[str, typer.Option(help="comma-separated weight formats")] = (
        "mxint8,mxint6,mxint4,mxint3,mxfp4,int4_g128"
    ),
    budget: Annotated[
        int, typer.Option(help="calibration utterances or text windows, every method")
    ] = 128,
    data: DataOpt = "builtin",
    output: Annotated[Path | None, typer.Option("--out", "-o", help="results folder")] = None,
    methods: Annotated[str, typer.Option(help="comma-separated: rtn,gptq,qat")] = "rtn,gptq,qat",
    split: Annotated[
        str,
        typer.Option(help="speech: random (utterances), voice (held-out voices) or engine"),
    ] = "random",
    heldout_voices: Annotated[int, typer.Option(help="voices kept out (--split voice)")] = 4,
    calibration_text: Annotated[
        str, typer.Option(help="LMs: calibration text (pydoc, sentences or a file)")
    ] = "pydoc",
    heldout_text: Annotated[
        str, typer.Option(help="LMs: held-out text (pydoc, sentences or a file)")
    ] = "sentences",
    context: Annotated[int, typer.Option(help="LMs: tokens per window")] = 128,
    steps: Annotated[int, typer.Option(help="QAT optimizer steps (one batch each)")] = 32,
    lr: Annotated[float, typer.Option(help="QAT learning rate")] = 1e-4,
    learnable_scales: Annotated[bool, typer.Option(help="QAT: learn a scale per row")] = False,
    act_order: Annotated[bool, typer.Option(help="GPTQ act-order")] = False,
    heldout: Annotated[int | None, typer.Option(help="at most N held-out utterances")] = None,
    no_wer: Annotated[bool, typer.Option("--no-wer", help="skip WER (NLL only)")] = False,
    seed: int = 0,
    threads: ThreadsOpt = None,
) -> None:
    """RTN vs GPTQ vs QAT on the same calibration budget: global (held-out NLL, WER) and
    local (layer output MSE) objectives, their rank correlation, loss along the line from
    full precision; resumes from the results folder. The model is a Whisper or a causal LM
    (smollm2-135m, a folder), calibrated on one text and held out on another."""
    from frugal.quantize import GPTQConfig, QATConfig
    from frugal.study.ptq_vs_qat import StudyConfig, markdown_table, run_study, write_report

    try:
        cfg = StudyConfig(
            model=model,
            formats=[f.strip() for f in formats.split(",") if f.strip()],
            methods=[m.strip() for m in methods.split(",") if m.strip()],
            data=data,
            budget=budget,
            seed=seed,
            split=split,
            heldout_voices=heldout_voices,
            calibration_text=calibration_text,
            heldout_text=heldout_text,
            context=context,
            gptq=GPTQConfig(act_order=act_order),
            qat=QATConfig(steps=steps, lr=lr, learnable_scales=learnable_scales, seed=seed),
            heldout=heldout,
            wer=not no_wer,
            threads=threads,
        )
    except ValueError as exc:
        _fail(str(exc))
    folder = output or Path("results") / "ptq_vs_qat" / Path(model).name
    try:
        rows = run_study(cfg, folder, log=lambda m: err.print(m, highlight=False))
    except (OSError, ValueError, ModuleNotFoundError) as exc:
        _fail(str(exc))
    paths = write_report(rows, folder)
    out.print(markdown_table(rows), highlight=False)
    out.print(f"results: {paths['json']} (+ summary.md, PNGs)", highlight=False)


def _csv(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


StoreOpt = Annotated[
    Path, typer.Option("--store", "-s", help="SQLite file of the prediction study")
]
DEFAULT_STORE = Path("results/predict/study.sqlite")


def _collect_defaults() -> tuple[str, str]:
    from frugal.study.collect import DEFAULT_FORMATS, DEFAULT_MODELS

    return ",".join(DEFAULT_MODELS), ",".join(DEFAULT_FORMATS)


@study_app.command("collect")
def study_collect(
    models: Annotated[
        str | None, typer.Option(help="comma-separated: tiny.en, base, zoo:<name>, folders")
    ] = None,
    formats: Annotated[str | None, typer.Option(help="comma-separated weight formats")] = None,
    methods: Annotated[str, typer.Option(help="comma-separated: rtn,gptq")] = "rtn,gptq",
    store: StoreOpt = DEFAULT_STORE,
    calibration: Annotated[int, typer.Option(help="calibration utterances / windows")] = 32,
    heldout: Annotated[int, typer.Option(help="held-out utterances (speech)")] = 16,
    heldout_tokens: Annotated[int, typer.Option(help="held-out tokens (text)")] = 16384,
    probe: Annotated[int, typer.Option(help="probe examples for landscape features")] = 4,
    data: DataOpt = "builtin",
    text: Annotated[list[Path] | None, typer.Option(help="text file(s) for folder LMs")] = None,
    zoo_dir: Annotated[Path, typer.Option(help="where zoo LMs are trained/kept")] = Path(
        "results/zoo"
    ),
    no_wer: Annotated[bool, typer.Option("--no-wer", help="skip WER (NLL only)")] = False,
    no_features: Annotated[bool, typer.Option("--no-features", help="measure only")] = False,
    workers: Annotated[int, typer.Option(help="worker processes (or Ray workers)")] = 1,
    threads: Annotated[int, typer.Option(help="torch threads per worker (0: cores/workers)")] = 0,
    retry_failed: Annotated[bool, typer.Option(help="re-run rows that failed before")] = False,
    seed: int = 0,
    ray_address: RayAddressOpt = None,
) -> None:
    """Measure (model, format, method) → held-out NLL and WER, plus the cheap features, into
    a SQLite store; rows land as they complete and a rerun resumes (models and formats may
    be added)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from frugal.study.collect import CollectConfig, collect
    from frugal.tasks.subjects import SubjectConfig

    dm, df = _collect_defaults()
    try:
        cfg = CollectConfig(
            models=_csv(models or dm),
            formats=_csv(formats or df),
            methods=_csv(methods),
            subject=SubjectConfig(
                calibration=calibration,
                heldout=heldout,
                heldout_tokens=heldout_tokens,
                probe=probe,
                seed=seed,
                data=data,
                text=tuple(str(t) for t in text or ()),
                wer=not no_wer,
                zoo_dir=str(zoo_dir),
            ),
            with_features=not no_features,
            workers=workers,
            threads=threads,
        )
    except ValueError as exc:
        _fail(str(exc))
    cols = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn())  # fmt: skip
    with Progress(*cols, console=err, transient=True) as bar:
        task = bar.add_task("collecting", total=None)
        try:
            counts = collect(
                cfg, store, log=lambda m: bar.console.print(m, highlight=False),
                retry_failed=retry_failed,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
                ray_address=ray_address,
            )  # fmt: skip
        except (OSError, ValueError) as exc:
            _fail(str(exc))
    out.print(
        f"{counts['stored']} rows stored, {counts['failed']} failed, {counts['jobs']} jobs run;"
        f" store: {store}",
        highlight=False,
    )


@study_app.command("predict-report")
def study_predict_report(
    store: StoreOpt = DEFAULT_STORE,
    output: Annotated[Path, typer.Option("--out", "-o", help="report folder")] = Path(
        "results/predict/report"
    ),
    trees: Annotated[int, typer.Option(help="trees of the forests / boosting stages")] = 200,
    seed: int = 0,
) -> None:
    """Leave-one-model-out and leave-one-format-out accuracy of every predictor (R²,
    Spearman, MAE, interval coverage), plots, feature importances and feature costs."""
    from frugal.predict.report import run_report
    from frugal.study.store import StudyDB

    if not store.is_file():
        _fail(f"{store}: no such study store (run `frugal study collect`)")
    with StudyDB(store) as db:
        rows, feats = db.measurements(), db.features()
    try:
        report = run_report(rows, feats, output, seed, trees)
    except ValueError as exc:
        _fail(str(exc))
    out.print((output / "summary.md").read_text(), highlight=False)
    out.print(f"report: {output} ({', '.join(Path(f).name for f in report['files'])})")


@app.command()
def predict(
    model: ModelOpt = "tiny.en",
    fmt: Annotated[str, typer.Option("--format", "-f", help="weight format")] = "mxint4",
    method: Annotated[str, typer.Option(help="rtn or gptq")] = "gptq",
    store: StoreOpt = DEFAULT_STORE,
    kind: Annotated[str, typer.Option(help="predictor: rf, gb or linear")] = "rf",
    features: Annotated[str, typer.Option(help="feature set: cheap or full")] = "full",
    coverage: Annotated[float, typer.Option(help="interval coverage")] = 0.8,
    measure: Annotated[
        bool, typer.Option(help="also quantize and evaluate for real, and compare")
    ] = False,
    threads: ThreadsOpt = None,
) -> None:
    """Predict the held-out NLL increase of quantizing MODEL to FORMAT with METHOD, from a
    predictor trained on every other model of the store; --measure checks it for real."""
    from frugal.study.query import Query, predict_one

    _threads(threads)
    q = Query(model, fmt, method, kind, features, coverage, measure)
    try:
        r = predict_one(q, store, log=lambda m: err.print(m, highlight=False))
    except (OSError, ValueError, KeyError) as exc:
        _fail(str(exc).strip("'\""))
    lo, hi = r["interval"]
    s = r["seconds"]
    pred_s = s["model_features"] + s["format_features"] + s["predict"]
    line = (
        f"{r['model']} {r['format']} {r['method']}: predicted ΔNLL {r['predicted_delta_nll']:+.4f}"
    )
    line += f" [{lo:+.4f}, {hi:+.4f}] ({100 * r['coverage']:.0f}% interval)"
    if r["fp_nll"] is not None:
        line += f", NLL {r['fp_nll'] + r['predicted_delta_nll']:.4f}"
    out.print(line, highlight=False)
    out.print(
        f"prediction: {pred_s:.1f} s (model features {s['model_features']:.1f} s, format "
        f"features {s['format_features']:.1f} s; model load {s['load']:.1f} s not counted)",
        highlight=False,
    )
    if measure:
        real_s = s["quantize"] + s["evaluate"]
        out.print(
            f"measured: ΔNLL {r['measured_delta_nll']:+.4f}, NLL {r['measured_nll']:.4f}"
            + (f", WER {r['measured_wer']:.2f}" if r.get("measured_wer") is not None else "")
            + f" ({'inside' if r['inside_interval'] else 'OUTSIDE'} the interval) in "
            f"{real_s:.1f} s (quantize {s['quantize']:.1f} s + evaluate {s['evaluate']:.1f} s);"
            f" prediction cost {100 * r['cost_ratio']:.1f}% of it",
            highlight=False,
        )


@app.command()
def search(
    problem: Annotated[
        str,
        typer.Option(
            help="zdt1, mixed-precision, whisper-joint, whisper-joint-nll or whisper-subnet"
        ),
    ] = "zdt1",
    algorithm: Annotated[str, typer.Option(help="random, nsga2 or linas")] = "linas",
    budget: Annotated[
        float, typer.Option(help="real measurements in total (full equivalents with --halving)")
    ] = 200,
    workers: Annotated[int, typer.Option(help="measurement processes (or Ray workers)")] = 1,
    name: Annotated[str, typer.Option(help="the search's name (resumes when it exists)")] = "run1",
    ray_address: RayAddressOpt = None,
    folder: Annotated[Path, typer.Option("--dir", help="where searches live")] = Path(
        "results/search"
    ),
    batch: Annotated[int, typer.Option(help="configurations per round")] = 20,
    generations: Annotated[
        int, typer.Option(help="LINAS: NSGA-II generations on predictors")
    ] = 250,
    predictor: Annotated[
        str,
        typer.Option(
            help="LINAS surrogate: auto, ridge, svr, stack; with spread: gp, ensemble, forest"
        ),
    ] = "auto",
    selection: Annotated[
        str, typer.Option(help="LINAS batch: front (predicted front) or ehvi (expected HV gain)")
    ] = "front",
    limit: Annotated[
        list[str] | None,
        typer.Option(help="upper limit on an objective, e.g. wer=15 (repeatable)"),
    ] = None,
    halving: Annotated[
        int, typer.Option(help="successive halving over the problem's fidelities with this eta")
    ] = 0,
    seed: int = 0,
) -> None:
    """Multi-objective search with live progress (measurements, hypervolume); every
    measurement is stored as it completes, so rerunning the same --name resumes."""
    from rich.progress import BarColumn, Progress, TextColumn

    from frugal.search.session import SearchConfig, run_named

    limits = {}
    for item in limit or []:
        key, sep, value = item.partition("=")
        try:
            limits[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            _fail(f"--limit {item!r}: expected objective=number, e.g. wer=15")
    cfg = SearchConfig(problem, algorithm, budget, batch, seed, generations, predictor,
                       selection, limits, halving)  # fmt: skip
    cols = (TextColumn("{task.description}"), BarColumn(),
            TextColumn("{task.completed:.4g}/{task.total:.4g}"),
            TextColumn("{task.fields[hv]}"))  # fmt: skip
    with Progress(*cols, console=err, transient=True) as bar:
        task = bar.add_task("measured", total=budget, hv="")

        def show(p) -> None:
            hv = "" if p.hypervolume is None else f"HV {p.hypervolume:.4g}"
            bar.update(
                task, completed=p.measured, hv=hv + (f", {p.failed} failed" * bool(p.failed))
            )

        try:
            res = run_named(cfg, name, folder, workers, show, ray_address)
        except ValueError as exc:
            _fail(str(exc))
    hv = "—" if res["hypervolume"] is None else f"{res['hypervolume']:.6g}"
    out.print(
        f"{res['measured']} measurements ({res['failed']} failed); hypervolume {hv} "
        f"(reference point {res['reference_point']}); files in {res['folder']}",
        highlight=False,
    )


@app.command("search-export")
def search_export(
    name: Annotated[str, typer.Argument(help="the stored search's name")],
    storage: Annotated[str, typer.Option(help="an Optuna storage URL")] = "sqlite:///optuna.db",
    study_name: Annotated[
        str | None, typer.Option(help="the new study's name (default: the search's)")
    ] = None,
    folder: Annotated[Path, typer.Option("--dir", help="where searches live")] = Path(
        "results/search"
    ),
) -> None:
    """Write a stored search into an Optuna storage as a new study, for optuna-dashboard and
    Optuna's plots (pip install 'frugal[optuna]')."""
    from frugal.search.session import export_named

    try:
        study, n = export_named(name, storage, study_name, folder)
    except (ValueError, ImportError) as exc:
        _fail(str(exc))
    out.print(f"{n} trials written to study {study!r} in {storage}", highlight=False)


@app.command("search-report")
def search_report(
    folder: Annotated[Path, typer.Option("--dir", help="where searches live")] = Path(
        "results/search"
    ),
) -> None:
    """Hypervolume against measurements of every stored search, one plot per problem, so
    algorithms run under different --name values can be compared."""
    from frugal.search.session import compare_named

    try:
        paths = compare_named(folder)
    except ValueError as exc:
        _fail(str(exc))
    for p in paths:
        out.print(str(p), highlight=False)


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
        _fail(str(exc))


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

    _threads(threads)
    lm, tokens = _load_lm(model, text)
    try:
        nll, ppl = perplexity(
            lm.model, sliding_windows(tokens, min(context, lm.max_positions), stride)
        )
    except ValueError as exc:
        _fail(str(exc))
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
    from frugal.quantize import QATConfig, check_method, quantize_model
    from frugal.tasks.lm import block_pattern, calibration_windows

    _threads(threads)
    lm, tokens = _load_lm(model, text)
    try:
        check_method(method, format)
        batches = calibration_windows(tokens, budget, min(length, lm.max_positions), seed)
        record = quantize_model(
            lm.model,
            method,
            format,
            pattern or block_pattern(lm.model),
            batches if method != "rtn" else [],
            qat=QATConfig(steps=steps, lr=lr, seed=seed),
        )
    except ValueError as exc:
        _fail(str(exc))
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


flexpoint_app = typer.Typer(no_args_is_help=True, help="Flexpoint (flexN+M) experiments.")
app.add_typer(flexpoint_app, name="flexpoint")


@flexpoint_app.command("demo")
def flexpoint_demo(
    output: Annotated[Path, typer.Option("--out", "-o", help="folder for PNG and JSON")] = Path(
        "results/flexpoint"
    ),
    seeds: Annotated[int, typer.Option(help="seeds per task and mode")] = 2,
    cnn_steps: int = 600,
    sort_steps: int = 1500,
    threads: ThreadsOpt = None,
) -> None:
    """Train a digits CNN and a sorting transformer in fp32, flex16+5 and fixed16_f8."""
    from rich.progress import Progress

    from frugal.train.flexpoint_demo import MODES, run_demo

    _threads(threads)
    total = len(MODES) * seeds * (cnn_steps + sort_steps)
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("training", total=total)
        result = run_demo(output, seeds, cnn_steps, sort_steps, progress=lambda: bar.advance(task))
    table = Table("task", "mode", "seeds", "val acc", "val loss", "s/run", "Autoflex overflows")
    for r in result["summary"]:
        table.add_row(
            r["task"],
            r["mode"],
            str(r["seeds"]),
            f"{r['val_acc_mean']:.4f} ± {r['val_acc_std']:.4f}",
            f"{r['val_loss_mean']:.4f} ± {r['val_loss_std']:.4f}",
            f"{r['seconds_mean']:.1f}",
            str(r["overflows"]),
        )
    out.print(table)
    out.print(
        f"curves: {result['png']}\nresults: {output / 'flexpoint_results.json'}", highlight=False
    )


sparsify_app = typer.Typer(no_args_is_help=True, help="Whisper encoder sparsification.")
app.add_typer(sparsify_app, name="sparsify")


@sparsify_app.command("search")
def sparsify_search(
    model: ModelOpt = "tiny.en",
    data: DataOpt = "builtin",
    limit: Annotated[int | None, typer.Option(help="at most N short clips")] = None,
    seed: Annotated[int | None, typer.Option(help="with --limit: a seeded random sample")] = None,
    long_data: Annotated[
        str | None,
        typer.Option(
            help="long recordings (≤ 30 s) for the long stratum, used as they are; "
            "default: --data's utterances joined into 20-30 s clips"
        ),
    ] = None,
    long_limit: Annotated[int | None, typer.Option(help="at most N long clips")] = None,
    strata: Annotated[str, typer.Option(help="short, long, or both")] = "short,long",
    max_wer_increase: Annotated[
        float, typer.Option(help="WER budget over dense on every stratum, points")
    ] = 1.0,
    layers: Annotated[str | None, typer.Option(help="encoder layers, e.g. 0,1,2 (all)")] = None,
    sparsities: Annotated[str, typer.Option(help="coarse grid")] = "0,0.1,0.2,0.3,0.4,0.5,0.6",
    score: Annotated[str, typer.Option(help="frame score of the search")] = "attention",
    rule: Annotated[str, typer.Option(help="keep rule: audio (length-aware) or frames")] = "audio",
    padding_frames: Annotated[
        int, typer.Option(help="rule audio: padding frames kept at most")
    ] = 128,
    baselines: Annotated[
        str, typer.Option(help="scores compared at the winner's setting")
    ] = "attention_cumulative,key_norm,stride,random",
    output: Annotated[
        Path, typer.Option("--out", "-o", help="folder: store, PNG, best.json")
    ] = Path("results/sparsify"),
    threads: ThreadsOpt = None,
) -> None:
    """Every (layer, sparsity) measured against dense on short and 20-30 s clips; the budget
    holds on each; resumes from --out's store."""
    from frugal.data import load_dataset
    from frugal.data.datasets import join_utterances
    from frugal.sparsify import SparsifyConfig
    from frugal.sparsify.search import run_search

    _threads(threads)
    try:
        ds = load_dataset(data)
        wanted = [s.strip() for s in strata.split(",") if s.strip()]
        if not wanted or set(wanted) - {"short", "long"}:
            raise ValueError(f"--strata takes short and/or long, not {strata!r}")
        sets = {}
        if "short" in wanted:
            sets["short"] = ds.take(limit, seed=seed) if limit is not None else ds
        if "long" in wanted:
            longs = load_dataset(long_data) if long_data else join_utterances(ds, 20.0, 30.0)
            sets["long"] = longs.take(long_limit, seed=seed) if long_limit else longs
        layer_list = [int(v) for v in layers.split(",")] if layers else None
        grid = [float(v) for v in sparsities.split(",")]
        base_list = [b for b in baselines.split(",") if b]
        base = SparsifyConfig(0, 0.0, score=score, rule=rule, padding_frames=padding_frames)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    asr = _load(model)
    with err.status("searching") as status:
        try:
            result = run_search(
                asr,
                sets,
                output,
                max_wer_increase,
                layer_list,
                grid,
                base,
                base_list,
                progress=lambda msg: status.update(f"measuring {msg}"),
            )
        except KeyboardInterrupt:
            err.print(
                f"interrupted: measured points are kept in {output / 'search.sqlite'}; "
                "run the same command to resume"
            )
            raise typer.Exit(130) from None
        except ValueError as exc:
            _fail(str(exc))
    out.print(_sparsify_table(result))
    if result.best is None:
        out.print(f"no setting within {max_wer_increase} pt of dense on every stratum")
    else:
        out.print(
            f"best within {max_wer_increase:g} pt: {result.guarded.config} (guard: "
            + ", ".join(
                f"{s} {result.compare(result.guarded, s)['guarded']} windows" for s in result.strata
            )
            + ")",
            highlight=False,
        )
        for name, c in result.confirm.items():
            out.print(
                f"  {name}: interleaved re-timing with the guard, dense {c['dense_ms']:.0f} ms, "
                f"sparse {c['sparse_ms']:.0f} ms, {c['speedup']:.2f}x end to end, encoder "
                f"{c['encoder_speedup']:.2f}x",
                highlight=False,
            )
    out.print(
        f"store {output / 'search.sqlite'}, plot {output / 'search.png'}, best "
        f"{output / 'best.json'}",
        highlight=False,
    )


def _sparsify_table(result) -> Table:
    table = Table(
        "kind",
        "stratum",
        "layer",
        "sparsity",
        "score",
        "WER %",
        "Δ pt [95% CI]",
        "e2e ms",
        "enc ms",
        "speed-up",
        "enc speed-up",
        "guarded",
    )
    for r in result.table_rows():
        table.add_row(
            r["kind"],
            r["stratum"],
            str(r["layer"] if r["layer"] is not None else "-"),
            f"{r['sparsity']:.3g}" if r["sparsity"] is not None else "-",
            r["score"],
            f"{r['wer_pct']:.2f}",
            f"{r['wer_delta_pt']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]",
            f"{r['e2e_ms']:.0f}",
            f"{r['encoder_ms']:.0f}",
            f"{r['speedup']:.2f}x",
            f"{r['encoder_speedup']:.2f}x",
            f"{r['guarded']}/{r['windows']}" if r["kind"] == "guarded" else "-",
        )
    return table


@app.command("eval")
def eval_(
    model: ModelOpt = "tiny.en",
    data: DataOpt = "builtin",
    limit: LimitOpt = None,
    method: MethodOpt = "lean",
    beam_size: int = 1,
    long_form: LongFormOpt = "sequential",
    warmup: Annotated[int, typer.Option(help="untimed runs before measuring")] = 2,
    output: Annotated[Path | None, typer.Option("--out", "-o", help="results JSON")] = None,
    sparsify: SparsifyOpt = None,
    kernels: KernelsOpt = "native",
    threads: ThreadsOpt = None,
) -> None:
    """Evaluate WER, token NLL and latency of a Whisper on a data set (utterances over 30 s
    go through long-form decoding)."""
    from frugal.data import load_dataset
    from frugal.tasks.asr import DecodeOptions, evaluate

    _threads(threads)
    lf = _long_form_options(long_form)
    try:
        ds = load_dataset(data)
        opts = DecodeOptions(method, beam_size, batch_size=1, long_form=lf)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    if limit is not None:
        ds = ds.take(limit)
    encoder = _sparse_encoder(sparsify)
    asr = _load(model, kernels)
    _check_sparsify(asr, encoder)
    result = evaluate(asr, ds, opts, warmup=warmup, progress=err.is_terminal, encoder=encoder)
    for row in result.failed:
        err.print(f"[red]error:[/red] {escape(str(row.error))}", highlight=False, soft_wrap=True)
    summary = result.summary()
    out.print(_eval_table(summary))
    if getattr(encoder, "guard", None) is not None:
        out.print(
            f"loop guard: {summary['guarded_windows']} of {summary['windows']} windows decoded "
            "again dense",
            highlight=False,
        )
    if output is not None:
        out.print(f"results: {result.to_json(output)}")
    if result.failed:
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
