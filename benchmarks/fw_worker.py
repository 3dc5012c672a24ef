"""faster-whisper for the benchmarks: in process, or in a worker process of its own.

In one process, torch's and CTranslate2's OpenMP runtimes (each wheel bundles its libgomp)
cost frugal's decoder 2x: under OMP_WAIT_POLICY=PASSIVE every small torch op waits for its
threads to wake (tiny.en, 20 clips, decoder median 76 -> 160 ms), and under the default policy
CTranslate2's threads spin after each call (153 ms). The worker process keeps faster-whisper's
threads apart and asleep (PASSIVE, set before CTranslate2 loads) while frugal runs; measured
alone, faster-whisper is 7-9% faster under the default policy than under the passive one.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def fw_run(folder: Path, compute_type: str, threads: int, multilingual: bool):
    """faster-whisper in this process: audio -> text (greedy, no conditioning, no VAD)."""
    from faster_whisper import WhisperModel

    model = WhisperModel(str(folder), device="cpu", compute_type=compute_type, cpu_threads=threads)

    def run(audio):
        segs, _ = model.transcribe(
            audio,
            beam_size=1,
            language="en" if multilingual else None,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        return " ".join(s.text.strip() for s in segs)

    return run


def _worker(conn, folder: str, compute_type: str, threads: int, multilingual: bool) -> None:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    run = fw_run(Path(folder), compute_type, threads, multilingual)
    conn.send("ready")
    while True:
        try:
            audio = conn.recv()
        except EOFError:  # the benchmark ended
            return
        t = time.perf_counter()
        text = run(audio)
        conn.send((text, 1e3 * (time.perf_counter() - t)))


def fw_process(
    folder: Path, compute_type: str, threads: int, multilingual: bool
) -> Callable[[np.ndarray], tuple[str, float]]:
    """faster-whisper in a worker process: audio -> (text, the worker's own wall ms)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(
        target=_worker, args=(child, str(folder), compute_type, threads, multilingual)
    )
    proc.daemon = True
    proc.start()
    if parent.recv() != "ready":
        raise RuntimeError("faster-whisper worker did not start")

    def run(audio: np.ndarray) -> tuple[str, float]:
        parent.send(audio)
        return parent.recv()

    return run
