"""faster-whisper for the benchmarks: in process, or in a worker process of its own.

The anchor runs under its own defaults (no OMP_WAIT_POLICY or thread setting of ours beyond
`cpu_threads`) and decodes the way frugal does: a clip of at most 30 s in one window without
timestamps (frugal's `Transcriber` on such a clip), a longer recording long-form with
timestamps. Greedy, no conditioning on previous text, no VAD.

Each system lives in a process of its own: in one process torch's and CTranslate2's OpenMP
runtimes (each wheel bundles its libgomp) slow each other 2x (tiny.en, 20 clips, frugal's
decoder median 76 -> 153-160 ms). The benchmarks interleave systems item by item; after each
anchor call the parent waits `SETTLE_S` so that the anchor's OpenMP threads, which spin
for a while after a parallel region under the default wait policy, are asleep before the
next system is timed (that wait is not counted for either).
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

SETTLE_S = 0.1  # libgomp's default spin before sleeping is far shorter
WINDOW_SAMPLES = 30 * 16000


def fw_run(
    folder: Path,
    compute_type: str,
    threads: int,
    multilingual: bool,
    mode: str = "clip",
    batch_size: int = 8,
):
    """faster-whisper in this process: audio -> text, greedy, no conditioning on previous
    text, no VAD. `mode` "clip": timestamps only on audio over 30 s, as frugal's
    `Transcriber` decodes; "sequential": long-form with timestamps (its `transcribe`);
    "batched": its `BatchedInferencePipeline` (VAD chunks, `batch_size`)."""
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    if mode not in ("clip", "sequential", "batched"):
        raise ValueError(f"unknown mode {mode!r}")
    model = WhisperModel(str(folder), device="cpu", compute_type=compute_type, cpu_threads=threads)
    language = "en" if multilingual else None
    pipeline = BatchedInferencePipeline(model) if mode == "batched" else None

    def run(audio):
        if pipeline is not None:
            segs, _ = pipeline.transcribe(
                audio, beam_size=1, batch_size=batch_size, language=language
            )
        else:
            segs, _ = model.transcribe(
                audio,
                beam_size=1,
                language=language,
                condition_on_previous_text=False,
                vad_filter=False,
                without_timestamps=mode == "clip" and len(audio) <= WINDOW_SAMPLES,
            )
        return " ".join(s.text.strip() for s in segs)

    return run


def _worker(conn, args: tuple, kwargs: dict) -> None:
    run = fw_run(*args, **kwargs)
    conn.send("ready")
    while True:
        try:
            audio = conn.recv()
        except EOFError:  # the benchmark ended
            return
        t = time.perf_counter()
        text = run(audio)
        conn.send((text, 1e3 * (time.perf_counter() - t)))


def fw_process(*args, **kwargs) -> Callable[[np.ndarray], tuple[str, float]]:
    """faster-whisper in a worker process under its default settings, made by
    `fw_run(*args, **kwargs)` there: audio -> (text, the worker's own wall ms)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_worker, args=(child, args, kwargs))
    proc.daemon = True
    proc.start()
    if parent.recv() != "ready":
        raise RuntimeError("faster-whisper worker did not start")

    def run(audio: np.ndarray) -> tuple[str, float]:
        parent.send(audio)
        answer = parent.recv()
        time.sleep(SETTLE_S)  # not counted: the worker timed itself
        return answer

    return run
