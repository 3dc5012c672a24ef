"""Transcribe a corpus: each file once per settings, on the workers of any executor (this
process, local processes, Ray actors), its outputs written atomically under --out by the
driver and its row committed right after, so a killed run loses only the files in flight
and leaves no half-written output. Longest files go first, so a long recording does not
run alone at the end while the other workers idle."""

from __future__ import annotations

import functools
import json
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from frugal.corpus.discover import CorpusFile, options_hash
from frugal.corpus.store import FileResult, open_store

FORMATS = ("txt", "json", "srt", "vtt")


class ModelLoadError(RuntimeError):
    """The model or its options cannot be used: every file would fail the same way."""


@dataclass(frozen=True)
class CorpusSettings:
    """What a corpus run transcribes with. `decode`: DecodeOptions as a dict; `threads`:
    torch threads per worker (None: the executor's share); `formats`: outputs per file."""

    model: str = "tiny.en"
    kernels: str = "native"
    decode: dict = field(default_factory=dict)
    sparsify: str | None = None
    formats: tuple[str, ...] = ("txt", "json")
    threads: int | None = None

    def __post_init__(self) -> None:
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or not self.formats:
            raise ValueError(f"output formats {list(self.formats)}: choose from {FORMATS}")

    @functools.cached_property
    def identity_json(self) -> str:
        """`identity()` as JSON, computed once per settings object (workers key their loaded
        model by it for every file; a model folder is not walked again each time)."""
        return json.dumps(self.identity(), sort_keys=True)

    def identity(self) -> dict:
        """Everything that changes what is written (threads do not), with the model folder's
        files (names, sizes, mtimes) when the model is a local folder."""
        ident = {k: v for k, v in asdict(self).items() if k != "threads"}
        ident["formats"] = list(self.formats)
        folder = Path(self.model)
        if folder.is_dir():
            files = sorted(p for p in folder.rglob("*") if p.is_file())
            ident["model_files"] = options_hash(
                {
                    str(p.relative_to(folder)): [p.stat().st_size, p.stat().st_mtime_ns]
                    for p in files
                }
            )
        return ident


_TRANSCRIBERS: dict[str, object] = {}  # per worker process: settings -> Transcriber


def _transcriber(settings: CorpusSettings):
    """This process's Transcriber for `settings`, loaded on first use and kept."""
    key = settings.identity_json
    if key not in _TRANSCRIBERS:
        from frugal.models import load_whisper
        from frugal.sparsify import SparsifyConfig, check_config, sparse_encoder
        from frugal.tasks.asr import DecodeOptions, Transcriber

        if settings.threads:
            import torch

            torch.set_num_threads(settings.threads)
        try:
            encoder = None
            if settings.sparsify:
                encoder = sparse_encoder(SparsifyConfig.parse(settings.sparsify))
            asr = load_whisper(settings.model, kernels=settings.kernels)
            if encoder is not None:
                check_config(asr, encoder.config)
            opts = DecodeOptions.from_dict(settings.decode)
        except (OSError, ValueError, TypeError, ModuleNotFoundError) as exc:
            raise ModelLoadError(str(exc).splitlines()[0]) from None
        _TRANSCRIBERS.clear()  # one model per worker
        _TRANSCRIBERS[key] = Transcriber(asr, opts, encoder=encoder)
    return _TRANSCRIBERS[key]


def transcribe_file(f: CorpusFile, settings: CorpusSettings) -> tuple[FileResult, object]:
    """A worker's job: (its FileResult, the Transcript or None). An unreadable file or a
    failure while decoding becomes a failed result with a one-line error; a model that cannot
    load, a fatal one (returned, not raised, so that it reaches the driver the same way from
    processes and Ray actors)."""
    from frugal.data import AudioError, load_audio

    t0 = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        tr = _transcriber(settings)
    except ModelLoadError as exc:
        return FileResult("failed", error=str(exc), worker=worker, fatal=True), None
    try:
        audio = load_audio(f.path)
        res = tr.transcribe([audio])[0]
    except (AudioError, OSError) as exc:
        return FileResult("failed", error=str(exc).splitlines()[0], worker=worker), None
    except Exception as exc:  # recorded; the corpus goes on
        msg = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return FileResult("failed", wall_s=time.perf_counter() - t0, error=msg, worker=worker), None
    return (
        FileResult(
            "done",
            duration_s=res.duration_s,
            language=res.language,
            windows=res.windows,
            fallbacks=res.fallbacks,
            wall_s=time.perf_counter() - t0,
            worker=worker,
        ),
        res,
    )


def render(res, fmt: str, audio: Path) -> str:
    """One output file's text: txt (the transcript), json (segments with times and words,
    timings), srt or vtt."""
    from frugal.tasks.asr.subtitles import to_srt, to_vtt

    if fmt == "txt":
        return res.text.strip() + "\n"
    if fmt == "srt":
        return to_srt(res.segments)
    if fmt == "vtt":
        return to_vtt(res.segments)
    row = {
        "audio": str(audio),
        "text": res.text,
        "duration_s": res.duration_s,
        "language": res.language,
        "decoding": res.decoding,
        "windows": res.windows,
        "fallbacks": res.fallbacks,
        "fallback_rules": res.fallback_rules,
        "skipped_silent": res.skipped,
        "guarded_dense": res.guarded,
        "segments": [{k: v for k, v in g.to_dict().items() if k != "tokens"} for g in res.segments],
        "timings_ms": res.timings_ms,
    }
    return json.dumps(row, ensure_ascii=False) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to a hidden temporary file beside `path`, flush it to disk, then rename
    it over `path`: a reader (or a rerun after kill -9) sees the old file or the whole new
    one, never part of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_outputs(out_dir: Path, f: CorpusFile, res, formats: Iterable[str]) -> list[str]:
    """Every output of one file under `out_dir`, mirroring its place in the input tree;
    returns their paths relative to `out_dir`."""
    written = []
    for fmt in formats:
        rel = f.rel.with_name(f"{f.rel.name}.{fmt}")
        write_atomic(out_dir / rel, render(res, fmt, f.path))
        written.append(str(rel))
    return written


def probe_seconds(path: Path) -> float | None:
    """The file's duration from its header (no decoding), or None when it cannot tell."""
    try:
        import soundfile as sf

        return float(sf.info(str(path)).duration)
    except Exception:
        pass
    try:
        import av

        with av.open(str(path)) as c:
            return c.duration / 1e6 if c.duration else None
    except Exception:
        return None


@dataclass
class CorpusRun:
    """What a run did: files skipped as already done, done now, failed now, and the audio
    seconds and wall seconds of this run."""

    skipped: int = 0
    done: int = 0
    failed: int = 0
    audio_s: float = 0.0
    wall_s: float = 0.0
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def audio_h_per_h(self) -> float:
        """Hours of audio transcribed per hour of wall time (this run)."""
        return self.audio_s / self.wall_s if self.wall_s else 0.0


def run_corpus(
    files: list[CorpusFile],
    settings: CorpusSettings,
    out_dir: Path,
    executor,
    on_start: Callable[[float, int], None] | None = None,
    on_file: Callable[[CorpusFile, FileResult, float], None] | None = None,
) -> CorpusRun:
    """Transcribe every file of `files` not already done under these settings in
    `out_dir/results.sqlite`, on `executor` (anything with frugal's Executor.run). Longest
    first. `on_start(estimated audio seconds, files)` once, `on_file(file, result, estimated
    seconds)` after each file is written and recorded. Raises ModelLoadError when a worker
    cannot load the model (the rows recorded so far stay)."""
    out_dir = Path(out_dir)
    ident = settings.identity()
    h = options_hash(ident)
    with open_store(out_dir, ident) as store:
        done = store.done_keys()
        todo = [f for f in files if f.key(h) not in done]
        run = CorpusRun(skipped=len(files) - len(todo))
        secs = {f: probe_seconds(f.path) for f in todo}
        known = [(secs[f], f.size) for f in todo if secs[f]]
        per_byte = sum(s for s, _ in known) / max(1, sum(b for _, b in known)) if known else 0
        est = {f: secs[f] if secs[f] else f.size * per_byte for f in todo}
        todo.sort(key=lambda f: -est[f])
        if on_start:
            on_start(sum(est.values()), len(todo))
        t0 = time.perf_counter()
        job = functools.partial(transcribe_file, settings=settings)

        def lost(f: CorpusFile, why: str):
            return FileResult("failed", error=why), None

        for f, (result, transcript) in executor.run(job, todo, lost):
            if result.fatal:
                raise ModelLoadError(result.error)
            if transcript is not None:
                result.outputs = write_outputs(out_dir, f, transcript, settings.formats)
                run.done += 1
                run.audio_s += result.duration_s or 0.0
            else:
                run.failed += 1
                run.errors.append((str(f.path), result.error or "failed"))
            store.put(f, f.key(h), result)
            if on_file:
                on_file(f, result, est[f])
        run.wall_s = time.perf_counter() - t0
    return run


__all__ = [
    "FORMATS",
    "CorpusRun",
    "CorpusSettings",
    "ModelLoadError",
    "render",
    "run_corpus",
    "transcribe_file",
    "write_atomic",
    "write_outputs",
]
