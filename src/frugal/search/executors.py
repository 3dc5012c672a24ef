"""Where measurements run: in this process, in a local pool of worker processes, or on a Ray
cluster. Each executor yields (config, (objectives, seconds, error)) as measurements complete;
the runner stores them in that order."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

import numpy as np

from frugal.search.problems import Problem
from frugal.search.space import Config

Result = tuple[list[float] | None, float, str | None]  # objectives, seconds, error
_PROBLEM: Problem | None = None


def measure(config: Config, problem: Problem | None = None, fidelity: int | None = None) -> Result:
    """(objectives, seconds, error) of one configuration, at full fidelity or the one given;
    an exception becomes the error."""
    problem = problem or _PROBLEM
    t0 = time.perf_counter()
    try:
        args = () if fidelity is None else (fidelity,)
        f = [float(v) for v in problem.evaluate(config, *args)]
        if len(f) != len(problem.objectives) or not all(np.isfinite(f)):
            raise ValueError(f"objectives {f} are not {len(problem.objectives)} finite numbers")
        return f, time.perf_counter() - t0, None
    except Exception as exc:  # recorded in the store; the search goes on
        return None, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}".splitlines()[0]


class Executor(ABC):
    """Measures batches of configurations of one problem; a context manager."""

    def __init__(self, problem: Problem):
        self.problem = problem

    @abstractmethod
    def map(
        self, configs: Sequence[Config], fidelity: int | None = None
    ) -> Iterator[tuple[Config, Result]]:
        """(config, result) pairs in order of completion; `fidelity`: the problem's level to
        measure at (None: full)."""

    def close(self) -> None:  # noqa: B027 - nothing to release unless overridden
        """Release workers."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalExecutor(Executor):
    """`workers` == 1: measure here, one after another; more: that many spawned processes,
    each holding its own copy of the problem and an equal share of the CPU threads."""

    def __init__(self, problem: Problem, workers: int = 1):
        super().__init__(problem)
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.workers = workers
        self._pool = None
        if workers > 1:
            ctx = multiprocessing.get_context("spawn")
            threads = max(1, (os.cpu_count() or 1) // workers)
            self._pool = ProcessPoolExecutor(workers, ctx, _init, (problem, threads))

    def map(self, configs, fidelity=None):
        if self._pool is None:
            for c in configs:
                yield c, measure(c, self.problem, fidelity)
            return
        running: dict[Future, Config] = {
            self._pool.submit(measure, c, None, fidelity): c for c in configs
        }
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                yield running.pop(fut), fut.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def _init(problem: Problem, threads: int) -> None:
    """A worker's start: its problem, and its share of threads (read by torch/BLAS at import;
    set directly where torch is already loaded), so workers do not oversubscribe the CPU."""
    global _PROBLEM
    _PROBLEM = problem
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


class RayExecutor(Executor):
    """Measurements on `workers` Ray actors (one CPU each), each holding a copy of the
    problem. `address`: a running cluster ("auto", "ray://host:10001") or "local" for a
    fresh local one; when Ray is already initialized in this process, that session is used."""

    def __init__(self, problem: Problem, address: str | None = "local", workers: int = 2):
        super().__init__(problem)
        try:
            import ray
        except ImportError as exc:
            raise ValueError(
                "Ray is not installed; pip install 'frugal[ray]' or leave out --ray-address"
            ) from exc
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self._ray, self.workers, self._owned = ray, workers, False
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise ValueError(f"cannot reach Ray at {address!r}: {msg}") from exc
            self._owned = True
        self._actor = ray.remote(num_cpus=1, max_restarts=0)(_RayWorker)
        self._problem_ref = ray.put(problem)
        self._idle = [self._actor.remote(self._problem_ref) for _ in range(workers)]

    def map(self, configs, fidelity=None):
        ray = self._ray
        todo, running = list(configs), {}
        while todo or running:
            while todo and self._idle:
                actor, c = self._idle.pop(), todo.pop(0)
                running[actor.measure.remote(c, fidelity)] = (actor, c)
            done, _ = ray.wait(list(running), num_returns=1)
            actor, c = running.pop(done[0])
            try:
                result = ray.get(done[0])
                self._idle.append(actor)
            except ray.exceptions.RayError as exc:  # the worker died: record it, start another
                result = (None, 0.0, f"{type(exc).__name__}: {exc}".splitlines()[0])
                self._idle.append(self._actor.remote(self._problem_ref))
            yield c, result

    def close(self) -> None:
        self._idle = []
        if self._owned and self._ray.is_initialized():
            self._ray.shutdown()
            self._owned = False


class _RayWorker:
    """One Ray actor: a copy of the problem, kept between measurements (loaded models too)."""

    def __init__(self, problem: Problem):
        self.problem = problem

    def measure(self, config: Config, fidelity: int | None = None) -> Result:
        return measure(config, self.problem, fidelity)


def make_executor(problem: Problem, workers: int = 1, ray_address: str | None = None) -> Executor:
    """A Ray executor when `ray_address` is given, else a local one."""
    if ray_address:
        return RayExecutor(problem, ray_address, workers)
    return LocalExecutor(problem, workers)


__all__ = ["Executor", "LocalExecutor", "RayExecutor", "Result", "make_executor", "measure"]
