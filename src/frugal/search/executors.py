"""Where work runs: in this process, in a local pool of worker processes, or on a Ray
cluster. `run(fn, items)` yields (item, fn(item)) as jobs complete (a study's collection
uses it); `map(configs)` yields a search problem's (config, (objectives, seconds, error)),
which the runner stores in that order."""

from __future__ import annotations

import functools
import itertools
import multiprocessing
import os
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

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


Lost = Callable[[Any, str], Any]  # (item, why) → the value recorded for a job whose worker died


class Executor(ABC):
    """Runs jobs on workers, at most `workers` at a time, pulled lazily from their iterable
    (so an interrupted run loses only the jobs in flight); a context manager. `problem`, when
    given, is held by every worker for `map`."""

    workers = 1
    _in_process = False  # jobs run in this process (map hands them this problem)

    def __init__(self, problem: Problem | None = None):
        self.problem = problem

    @abstractmethod
    def run(
        self, fn: Callable[[Any], Any], items: Iterable[Any], lost: Lost | None = None
    ) -> Iterator[tuple[Any, Any]]:
        """(item, fn(item)) pairs in order of completion; `fn` must be picklable. A job whose
        worker died yields `lost(item, why)` (raises when `lost` is None)."""

    def map(
        self, configs: Sequence[Config], fidelity: int | None = None
    ) -> Iterator[tuple[Config, Result]]:
        """(config, result) pairs of the problem's measurements in order of completion;
        `fidelity`: the problem's level to measure at (None: full)."""
        here = self.problem if self._in_process else None  # workers hold their own copy
        fn = functools.partial(measure, problem=here, fidelity=fidelity)
        return self.run(fn, configs, lambda c, why: (None, 0.0, why))

    def close(self) -> None:  # noqa: B027 - nothing to release unless overridden
        """Release workers."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalExecutor(Executor):
    """`workers` == 1: run here, one after another (on `threads` torch threads when given);
    more: that many worker processes, each holding its own copy of the problem and an
    equal share of the CPU threads (`threads` each when given).

    Workers are forked from a server process that has imported torch and the problem's module
    (`preload` adds more) once for all of them and for every later pool of this process
    (measured on 2 cores, two workers running a job that uses torch: 1.65 s for every pool
    when spawned; 1.2 s for the first pool, 0.05 s for each later one). Each worker gets this
    process's environment as it is when the pool is made."""

    def __init__(
        self,
        problem: Problem | None = None,
        workers: int = 1,
        threads: int = 0,
        preload: Sequence[str] = (),
    ):
        super().__init__(problem)
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.workers = workers
        self._pool = None
        self._in_process = workers == 1
        if workers == 1:
            if threads:  # this process: torch's own pool only (children keep their env)
                import torch

                torch.set_num_threads(threads)
        else:
            modules = ["torch", *preload]
            if problem is not None:
                modules.append(type(problem).__module__)
            ctx = _worker_context(modules)
            threads = threads or max(1, (os.cpu_count() or 1) // workers)
            env = dict(os.environ)
            owner = _process_identity(os.getpid())
            self._pool = ProcessPoolExecutor(workers, ctx, _init, (problem, threads, env, owner))

    def run(self, fn, items, lost=None):
        if self._pool is None:
            for item in items:
                yield item, fn(item)
            return
        todo, running = iter(items), {}
        while True:
            for item in itertools.islice(todo, self.workers - len(running)):
                running[self._pool.submit(fn, item)] = item
            if not running:
                return
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                item = running.pop(fut)
                try:
                    value = fut.result()
                except BrokenProcessPool as exc:
                    if lost is None:
                        raise
                    value = lost(item, f"worker died: {exc}".splitlines()[0])
                yield item, value

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def _set_threads(threads: int) -> None:
    """This process's share of threads: read by torch/BLAS at import, set directly where
    torch is already loaded, so workers do not oversubscribe the CPU."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def _worker_context(modules: Sequence[str]):
    """The forkserver context, its server importing `modules` when it first starts (one
    server per process: modules named by a later pool are imported by its workers)."""
    ctx = multiprocessing.get_context("forkserver")
    # the main script is not preloaded: each worker imports it itself (as spawn would), with
    # the preparation data multiprocessing sends per worker
    wanted = [m for m in dict.fromkeys(modules) if m not in ("__main__", "__mp_main__")]
    ctx.set_forkserver_preload(wanted)  # no effect once the server runs
    return ctx


def _process_identity(pid: int) -> tuple[int, str | None]:
    """(pid, its start time from /proc, None where there is no /proc): a pid the system
    reuses for another process has another start time."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return pid, None
    return pid, stat[stat.rindex(b")") + 2 :].split()[19].decode()  # field 22: starttime


def _alive(owner: tuple[int, str | None]) -> bool:
    pid, start = owner
    if start is not None:
        return _process_identity(pid) == owner
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _exit_when_gone(owner: tuple[int, str | None], every_s: float = 1.0) -> None:
    """End this worker once the process that made its pool is gone. A pool shut down normally
    ends its workers itself; one whose owner was killed (SIGKILL, the OOM killer) does not, and
    its workers would wait on the job queue forever, each holding a model in memory, and keep
    the fork server alive."""
    while _alive(owner):
        time.sleep(every_s)
    os._exit(1)


def _init(
    problem: Problem | None,
    threads: int,
    env: dict[str, str],
    owner: tuple[int, str | None] | None = None,
) -> None:
    """A worker's start: the parent's environment as it was when the pool was made (the
    server was forked earlier), its problem and its share of the threads; it exits by itself
    when `owner` (the pool's process) is gone."""
    global _PROBLEM
    os.environ.clear()
    os.environ.update(env)
    _PROBLEM = problem
    _set_threads(threads)
    if owner is not None:
        import threading

        threading.Thread(target=_exit_when_gone, args=(owner,), daemon=True).start()


class RayExecutor(Executor):
    """Jobs on `workers` Ray actors (one CPU each), each holding a copy of the problem.
    `address`: a running cluster ("auto", "ray://host:10001") or "local" for a fresh local
    one; when Ray is already initialized in this process, that session is used."""

    def __init__(
        self, problem: Problem | None = None, address: str | None = "local", workers: int = 2
    ):
        super().__init__(problem)
        if address == "local":
            # a local cluster runs in this machine's environment; under `uv run`, Ray's hook
            # would copy the working folder and build a new environment for the workers
            # (measured: +24 s on a 40-job search). Ray reads this when it is first imported.
            os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
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

    def run(self, fn, items, lost=None):
        ray = self._ray
        todo, running = iter(items), {}
        fn_ref = ray.put(fn)
        while True:
            for item in itertools.islice(todo, len(self._idle)):
                actor = self._idle.pop()
                running[actor.call.remote(fn_ref, item)] = (actor, item)
            if not running:
                return
            done, _ = ray.wait(list(running), num_returns=1)
            actor, item = running.pop(done[0])
            try:
                value = ray.get(done[0])
                self._idle.append(actor)
            except ray.exceptions.RayError as exc:
                dead = isinstance(exc, ray.exceptions.RayActorError)  # then start another
                self._idle.append(self._actor.remote(self._problem_ref) if dead else actor)
                if lost is None:
                    raise
                value = lost(item, f"{type(exc).__name__}: {exc}".splitlines()[0])
            yield item, value

    def close(self) -> None:
        self._idle = []
        if self._owned and self._ray.is_initialized():
            self._ray.shutdown()
            self._owned = False


class _RayWorker:
    """One Ray actor: its process's copy of the problem, kept between jobs (loaded models and
    other per-process caches too)."""

    def __init__(self, problem: Problem | None):
        global _PROBLEM
        _PROBLEM = problem

    def call(self, fn: Callable[[Any], Any], item: Any) -> Any:
        return fn(item)


def make_executor(
    problem: Problem | None = None,
    workers: int = 1,
    ray_address: str | None = None,
    threads: int = 0,
    preload: Sequence[str] = (),
) -> Executor:
    """A Ray executor when `ray_address` is given, else a local one (`threads` per local
    worker; 0: an equal share of the cores; `preload`: modules its workers start with)."""
    if ray_address:
        return RayExecutor(problem, ray_address, workers)
    return LocalExecutor(problem, workers, threads, preload)


__all__ = ["Executor", "LocalExecutor", "RayExecutor", "Result", "make_executor", "measure"]
