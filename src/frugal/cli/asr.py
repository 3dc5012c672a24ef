"""`frugal transcribe` and `frugal eval`: Whisper on audio files and on data sets, each
with its renderer."""

from __future__ import annotations

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
    RayAddressOpt,
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


@app.command()
def transcribe(
    audio: Annotated[
        list[str],
        typer.Argument(
            help="audio files (wav, flac, ogg, mp3, m4a...); with --out also folders (searched "
            "recursively), .jsonl/.csv manifests and globs"
        ),
    ],
    model: ModelOpt = "tiny.en",
    format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="text, json, srt or vtt; with --out, a comma list of txt, json, srt, vtt "
            "[default there: txt,json]",
        ),
    ] = "text",
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="transcribe a corpus: outputs under this folder mirroring the inputs, a "
            "results table (results.sqlite) there; a rerun skips files already done",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            help="with --out: worker processes (or Ray actors), one model each; 0: one per "
            "core with one thread each (the fastest split measured on 2 cores; 1 uses half "
            "the memory)"
        ),
    ] = 0,
    ray_address: RayAddressOpt = None,
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
    still processed. With --out, a corpus: resumable, on several workers or Ray."""
    from frugal.corpus.run import render
    from frugal.data import AudioError, load_audio
    from frugal.tasks.asr import DecodeOptions, Transcriber

    if out_dir is None:
        if format not in ("text", "json", "srt", "vtt"):
            fail(f"unknown format {format!r}: use text, json, srt or vtt")
        if workers or ray_address:
            fail("--workers and --ray-address transcribe a corpus: give --out DIR")
        corpus = [a for a in audio if Path(a).is_dir() or any(c in a for c in "*?[")]
        if corpus:
            fail(f"{corpus[0]} names several files: transcribe a corpus with --out DIR")
    set_threads(None if out_dir is not None else threads)
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
    if out_dir is not None:
        formats = "txt,json" if format == "text" else format
        _transcribe_corpus(
            audio, out_dir, model, kernels, opts, sparsify, formats, workers, threads, ray_address
        )
        return
    loaded, failed = [], []
    for path in map(Path, audio):
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
            else:
                sys.stdout.write(render(res, format, path))
    if failed:
        raise typer.Exit(1)


def _corpus_progress():
    """Files, audio hours done, real-time factor and ETA of a corpus run, on stderr."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[files]} files, {task.fields[hours]:.2f} h audio"),
        TextColumn("RTF {task.fields[rtf]:.3f}"),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def _transcribe_corpus(
    specs, out_dir, model, kernels, opts, sparsify, formats, workers, threads, ray_address
) -> None:
    """`frugal transcribe --out`: the corpus run and its summary; exit 1 when a file failed."""
    import os
    import time

    from frugal.corpus import CorpusSettings, ModelLoadError, discover, run_corpus
    from frugal.search.executors import make_executor
    from frugal.sqlite_file import ConfigMismatchError

    if workers < 0:
        fail("--workers must be >= 0")
    try:
        settings = CorpusSettings(
            model=model,
            kernels=kernels,
            decode=opts.to_dict(),
            sparsify=sparsify,
            formats=tuple(f.strip() for f in formats.split(",") if f.strip()),
            threads=threads,
        )
    except ValueError as exc:
        fail(str(exc))
    if sparsify is not None:
        sparse_encoder_option(sparsify)  # a bad setting fails here, not once per file
    files, problems = discover(specs)
    for what, why in problems:
        err.print(
            f"[red]error:[/red] {escape(what)}: {escape(why)}", highlight=False, soft_wrap=True
        )
    if not files:
        fail("no audio files to transcribe")
    if workers == 0:  # benchmarks/corpus.py: 2 processes x 1 thread beat 1 x 2 by 1.44x
        workers = max(1, min(len(os.sched_getaffinity(0)), len(files)))
    t0 = time.perf_counter()
    state = {"files": 0, "audio": 0.0}
    with _corpus_progress() as bar:
        task = bar.add_task("transcribing", total=None, files="0/?", hours=0.0, rtf=0.0)

        def on_start(total_s: float, n: int) -> None:
            state["n"] = n
            bar.update(task, total=max(total_s, 1e-9), files=f"0/{n}")

        def on_file(f, result, est_s: float) -> None:
            state["files"] += 1
            state["audio"] += result.duration_s or 0.0
            wall = time.perf_counter() - t0
            if result.status != "done":
                msg = f"[red]error:[/red] {escape(result.error or 'failed')}"
                err.print(msg, highlight=False, soft_wrap=True)
            bar.update(
                task,
                advance=est_s,
                files=f"{state['files']}/{state.get('n', '?')}",
                hours=state["audio"] / 3600,
                rtf=wall / state["audio"] if state["audio"] else 0.0,
            )

        try:
            with make_executor(
                workers=workers, ray_address=ray_address, threads=threads or 0
            ) as executor:
                run = run_corpus(files, settings, out_dir, executor, on_start, on_file)
        except ConfigMismatchError as exc:
            fail(str(exc))
        except (ModelLoadError, ValueError) as exc:
            fail(str(exc).splitlines()[0])
    err.print(
        f"{run.done} transcribed, {run.skipped} already done, {run.failed} failed; "
        f"{run.audio_s / 3600:.3f} h audio in {run.wall_s:.1f} s "
        f"({run.audio_h_per_h:.1f} h audio per hour); table: {out_dir / 'results.sqlite'}",
        highlight=False,
        soft_wrap=True,
    )
    if run.failed or problems:
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
