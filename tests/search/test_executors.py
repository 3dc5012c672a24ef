"""Where measurements run: a local Ray cluster gives the same search as local processes for
the same seed; failures on Ray workers are recorded; a bad address is a one-line error."""

from __future__ import annotations

import os

import numpy as np
import pytest

from frugal.search.algorithms import make_algorithm
from frugal.search.executors import LocalExecutor, RayExecutor, make_executor
from frugal.search.problems import DiscreteZDT1, Problem
from frugal.search.runner import run_search
from frugal.search.store import SearchStore

from .test_runner import Flaky


class Jittery(Problem):
    """ZDT1 whose measurements take uneven times, so workers finish out of order."""

    name, objectives = "jittery", ("f1", "f2")

    def __init__(self):
        self.base = DiscreteZDT1()
        self.space = self.base.space

    def evaluate(self, config):
        import time

        time.sleep(0.01 * (config["x1"] % 4))
        return self.base.evaluate(config)


class Threads(Problem):
    """Reports the torch threads of the process that measures it."""

    name, objectives = "threads", ("threads", "zero")

    def __init__(self):
        self.space = DiscreteZDT1().space

    def evaluate(self, config):
        import torch

        return [float(torch.get_num_threads()), 0.0]


def test_local_workers_share_the_cpu_threads(monkeypatch):
    import frugal.search.executors as executors

    # 2 cores, 2 workers: one thread each (torch alone would take every core: ≥ 2)
    monkeypatch.setattr(executors.os, "cpu_count", lambda: 2)
    p = Threads()
    configs = p.space.sample(4, np.random.default_rng(0))
    with LocalExecutor(p, workers=2) as ex:
        got = {f[0] for _, (f, _, _) in ex.map(configs)}
    assert got == {1.0}


def _env(name: str) -> str | None:
    return os.environ.get(name)


def test_local_workers_get_the_environment_of_their_pool(monkeypatch):
    """Workers fork from one long-lived server; each pool's workers still see the
    environment as it is when the pool is made (as spawned processes would)."""
    monkeypatch.delenv("FRUGAL_TEST_MARK", raising=False)
    with LocalExecutor(workers=2) as ex:  # starts the server, or reuses a running one
        assert [v for _, v in ex.run(_env, ["FRUGAL_TEST_MARK"])] == [None]
    monkeypatch.setenv("FRUGAL_TEST_MARK", "set later")
    with LocalExecutor(workers=2) as ex:
        assert [v for _, v in ex.run(_env, ["FRUGAL_TEST_MARK"] * 3)] == ["set later"] * 3


def test_an_unreachable_ray_address_is_a_one_line_error():
    import ray  # the locked environment has it: a missing install fails, never skips

    with pytest.raises(ValueError, match="cannot reach Ray"):
        RayExecutor(DiscreteZDT1(), address="ray://127.0.0.1:9", workers=1)
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def local_ray():
    import ray  # the locked environment has it: a missing install fails, never skips

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _search(problem, executor, store_path, alg="linas"):
    kw = {"generations": 15} if alg == "linas" else {}
    a = make_algorithm(alg, problem.space, 2, batch=8, seed=5, **kw)
    with SearchStore(store_path) as store:
        rows = run_search(problem, a, 40, store, executor=executor)
    return {r["key"]: (r["objectives"], r["round"], r["error"]) for r in rows}


def test_a_ray_run_equals_a_local_run_for_the_same_seed(local_ray, tmp_path):
    p = Jittery()
    with RayExecutor(p, workers=2) as ex:
        on_ray = _search(p, ex, tmp_path / "ray.sqlite")
    with LocalExecutor(p, workers=2) as ex:
        local = _search(p, ex, tmp_path / "local.sqlite")
    assert len(on_ray) == 40
    assert on_ray == local


def test_failures_on_ray_workers_are_recorded(local_ray, tmp_path):
    p = Flaky()
    with make_executor(p, workers=2, ray_address="auto") as ex:
        rows = _search(p, ex, tmp_path / "s.sqlite", alg="random")
    errors = [e for _, _, e in rows.values() if e]
    assert errors and all("out of memory" in e for e in errors)
    assert len(rows) == 40
