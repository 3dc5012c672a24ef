"""`frugal transcribe` and `frugal eval`: Whisper on audio files and on data sets, each
with its renderer."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from frugal.cli.common import (
    DataOpt,
    KernelsOpt,
    LimitOpt,
    MethodOpt,
    ModelOpt,
    SparsifyOpt,
    ThreadsOpt,
    app,
    check_sparsify,
    err,
    fail,
    load_whisper_or_fail,
    out,
    set_threads,
    sparse_encoder_option,
)

LongFormOpt = Annotated[
    str,
    typer.Option(
        "--long-form",
        help="audio over 30 s (and every file in transcribe): sequential (seek through the "
        "recording), batched (VAD chunks decoded in batches, with timestamps and fallback), "
        "chunks (VAD chunks decoded once each without timestamps, faster-whisper's batched "
        "pipeline) or windows (fixed 30 s windows without timestamps)",
    ),
]


def _long_form_options(mode: str, **kwargs):
    from frugal.tasks.asr.longform import LongFormOptions

    try:
        return LongFormOptions(mode=mode, **kwargs)
    except ValueError as exc:
        fail(str(exc))


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
        fail(f"unknown format {format!r}: use text, json, srt or vtt")
    set_threads(threads)
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
        fail(str(exc))
    loaded, failed = [], []
    for path in audio:
        try:
            loaded.append((path, load_audio(path)))
        except AudioError as exc:
            failed.append(path)
            err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
    if loaded:
        encoder = sparse_encoder_option(sparsify)
        asr = load_whisper_or_fail(model, kernels)
        check_sparsify(asr, encoder)
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
                    "fallback_rules": res.fallback_rules,
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

    set_threads(threads)
    lf = _long_form_options(long_form)
    try:
        ds = load_dataset(data)
        opts = DecodeOptions(method, beam_size, batch_size=1, long_form=lf)
    except (OSError, ValueError) as exc:
        fail(str(exc))
    if limit is not None:
        ds = ds.take(limit)
    encoder = sparse_encoder_option(sparsify)
    asr = load_whisper_or_fail(model, kernels)
    check_sparsify(asr, encoder)
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
