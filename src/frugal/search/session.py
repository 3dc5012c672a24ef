"""A named search on disk: `<folder>/<name>/store.sqlite` plus its report. Reopening a
name resumes it (same problem, algorithm and seed, or a one-line error)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from frugal.search.algorithms import make_algorithm
from frugal.search.executors import make_executor
from frugal.search.problems import SYNTHETIC, Problem
from frugal.search.report import hv_curve, plot_search, write_csv
from frugal.search.runner import Progress, reference_point, run_search
from frugal.search.store import SearchStore


@dataclass
class SearchConfig:
    """Which problem, which algorithm, how many real measurements, batch per round."""

    problem: str = "zdt1"
    algorithm: str = "linas"
    budget: int = 200
    batch: int = 20
    seed: int = 0
    generations: int = 250

    def to_dict(self) -> dict:
        return asdict(self)


def _whisper_joint() -> Problem:
    from frugal.search.whisper_problems import WhisperJoint

    return WhisperJoint()


def _whisper_subnet() -> Problem:
    from frugal.search.whisper_problems import WhisperSubnet

    return WhisperSubnet()


PROBLEMS: dict[str, Callable[[], Problem]] = {
    **SYNTHETIC,
    "whisper-joint": _whisper_joint,
    "whisper-subnet": _whisper_subnet,
}


def make_problem(name: str) -> Problem:
    if name not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; choose one of {', '.join(PROBLEMS)}")
    return PROBLEMS[name]()


def run_named(
    cfg: SearchConfig,
    name: str,
    folder: str | Path = "results/search",
    workers: int = 1,
    on_progress: Callable[[Progress], None] | None = None,
    ray_address: str | None = None,
) -> dict:
    """Run or resume the search called `name` (measured by `workers` local processes, or by
    Ray workers when `ray_address` is given); write measurements.csv, pareto.png and
    hypervolume.png beside its store; return the paths and the final hypervolume."""
    problem = make_problem(cfg.problem)
    kw = {"generations": cfg.generations} if cfg.algorithm == "linas" else {}
    algorithm = make_algorithm(
        cfg.algorithm, problem.space, len(problem.objectives), batch=cfg.batch, seed=cfg.seed, **kw
    )
    out = Path(folder) / name
    out.mkdir(parents=True, exist_ok=True)
    with SearchStore(out / "store.sqlite") as store:
        old = store.get_meta("config")
        if old is not None:
            same = {k: old[k] for k in ("problem", "algorithm", "seed", "batch")}
            if same != {k: getattr(cfg, k) for k in same}:
                raise ValueError(
                    f"search {name!r} was started as {same}; pick another --name to change them"
                )
        store.set_meta("config", cfg.to_dict())
        with make_executor(problem, workers, ray_address) as executor:
            rows = run_search(problem, algorithm, cfg.budget, store, workers, on_progress, executor)
        F = np.array([r["objectives"] for r in rows if r["objectives"] is not None])
        ref = reference_point(problem, store, F)
    curve = hv_curve(rows, ref) if ref is not None else []
    paths = [write_csv(rows, problem.objectives, out / "measurements.csv")]
    if ref is not None:
        title = f"{cfg.problem}: {cfg.algorithm}, {len(rows)} measurements"
        paths += plot_search(rows, problem.objectives, ref, out, title)
    return {
        "folder": out,
        "files": paths,
        "measured": len(rows),
        "failed": sum(r["error"] is not None for r in rows),
        "hypervolume": curve[-1] if curve else None,
        "reference_point": ref,
    }


def compare_named(folder: str | Path = "results/search") -> list[Path]:
    """Hypervolume against measurements of every search stored under `folder`, one plot per
    problem (`compare_<problem>.png`), all on one reference point: the problem's fixed one,
    else the component-wise worst of the searches' recorded points."""
    from frugal.search.report import plot_hv_comparison

    by_problem: dict[str, list] = {}
    for path in sorted(Path(folder).glob("*/store.sqlite")):
        with SearchStore(path) as store:
            cfg, ref, rows = (
                store.get_meta("config"),
                store.get_meta("reference_point"),
                store.rows(),
            )
        if cfg is not None and rows:
            by_problem.setdefault(cfg["problem"], []).append((path.parent.name, cfg, ref, rows))
    if not by_problem:
        raise ValueError(f"no stored search under {folder}")
    out = []
    for pname, runs in by_problem.items():
        refs = [r for _, _, r, _ in runs if r is not None]
        if not refs:
            continue
        ref = np.max(np.array(refs), axis=0).tolist()
        curves = {f"{name} ({cfg['algorithm']})": [hv_curve(rows, ref)]
                  for name, cfg, _, rows in runs}  # fmt: skip
        path = Path(folder) / f"compare_{pname}.png"
        out.append(plot_hv_comparison(curves, path, f"{pname}: reference point {ref}", log_x=False))
    return out


__all__ = ["PROBLEMS", "SearchConfig", "compare_named", "make_problem", "run_named"]
