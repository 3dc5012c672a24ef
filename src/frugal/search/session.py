"""A named search on disk: `<folder>/<name>/store.sqlite` plus its report. Reopening a
name resumes it (same problem, algorithm and seed, or a one-line error)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
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
    """Which problem, which algorithm, how many real measurements (full-measurement
    equivalents with `halving_eta`), batch per round; LINAS' surrogate and selection; upper
    limits on objectives by name; successive halving over the problem's fidelities
    (`halving_eta` ≥ 2; 0: off)."""

    problem: str = "zdt1"
    algorithm: str = "linas"
    budget: float = 200
    batch: int = 20
    seed: int = 0
    generations: int = 250
    predictor: str = "auto"
    selection: str = "front"
    limits: dict[str, float] = field(default_factory=dict)
    halving_eta: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SearchConfig:
        """From `to_dict`'s output; fields added later take their defaults."""
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def limit_list(self, objectives: tuple[str, ...]) -> list[float | None] | None:
        """`limits` as one bound (or None) per objective; one-line error for an unknown name."""
        unknown = set(self.limits) - set(objectives)
        if unknown:
            raise ValueError(
                f"limit on unknown objective(s) {', '.join(sorted(unknown))}; "
                f"objectives are {', '.join(objectives)}"
            )
        return [self.limits.get(o) for o in objectives] if self.limits else None


RESUME_KEYS = ("problem", "algorithm", "seed", "batch", "predictor", "selection", "limits",
               "halving_eta")  # fmt: skip


def _whisper_joint() -> Problem:
    from frugal.search.whisper_problems import WhisperJoint

    return WhisperJoint()


def _whisper_joint_nll() -> Problem:
    from frugal.search.whisper_problems import WhisperJoint

    return WhisperJoint(accuracy="nll")


def _whisper_subnet() -> Problem:
    from frugal.search.whisper_problems import WhisperSubnet

    return WhisperSubnet()


PROBLEMS: dict[str, Callable[[], Problem]] = {
    **SYNTHETIC,
    "whisper-joint": _whisper_joint,
    "whisper-joint-nll": _whisper_joint_nll,
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
    limits = cfg.limit_list(problem.objectives)
    kw = {"limits": limits}
    if cfg.algorithm == "linas":
        kw |= {"generations": cfg.generations, "predictor": cfg.predictor,
               "selection": cfg.selection}  # fmt: skip
    algorithm = make_algorithm(
        cfg.algorithm, problem.space, len(problem.objectives), batch=cfg.batch, seed=cfg.seed, **kw
    )
    out = Path(folder) / name
    out.mkdir(parents=True, exist_ok=True)
    with SearchStore(out / "store.sqlite") as store:
        store.claim(
            cfg.to_dict(),
            RESUME_KEYS,
            upgrade=lambda old: SearchConfig.from_dict(old).to_dict(),
            hint="pick another --name to change it",
        )
        store.set_meta("limits", limits)
        with make_executor(problem, workers, ray_address) as executor:
            if cfg.halving_eta:
                from frugal.search.fidelity import Halving, run_halving

                halving = Halving(cfg.halving_eta)
                rows = run_halving(
                    problem, algorithm, cfg.budget, store, halving, workers, on_progress, executor
                )
            else:
                if cfg.budget != int(cfg.budget):
                    raise ValueError("the budget is a whole number of measurements without halving")
                rows = run_search(
                    problem, algorithm, int(cfg.budget), store, workers, on_progress, executor
                )
        F = np.array([r["objectives"] for r in rows if r["objectives"] is not None])
        ref = reference_point(problem, store, F)
    curve = hv_curve(rows, ref, limits) if ref is not None else []
    paths = [write_csv(rows, problem.objectives, out / "measurements.csv")]
    if ref is not None:
        title = f"{cfg.problem}: {cfg.algorithm}, {len(rows)} measurements"
        paths += plot_search(rows, problem.objectives, ref, out, title, limits)
    return {
        "folder": out,
        "files": paths,
        "measured": len(rows),
        "failed": sum(r["error"] is not None for r in rows),
        "hypervolume": curve[-1] if curve else None,
        "reference_point": ref,
    }


def export_named(
    name: str, storage: str, study_name: str | None = None, folder: str | Path = "results/search"
) -> tuple[str, int]:
    """Write the stored search `name` into an Optuna storage (e.g. sqlite:///optuna.db) as a
    new study (default name: the search's); returns (study name, trials written)."""
    from frugal.search.optuna_bridge import export_to_optuna

    path = Path(folder) / name / "store.sqlite"
    if not path.exists():
        raise ValueError(f"no search {name!r} under {folder}")
    with SearchStore(path) as store:
        cfg, ref = store.get_meta("config"), store.get_meta("reference_point")
        rows, partial = store.rows(), store.partial_rows()
    if cfg is None:
        raise ValueError(f"{path} records no search config")
    cfg = SearchConfig.from_dict(cfg)
    problem = make_problem(cfg.problem)
    study_name = study_name or name
    study = export_to_optuna(
        rows, problem.space, problem.objectives, storage, study_name,
        cfg.limit_list(problem.objectives), partial,
        {"frugal_config": cfg.to_dict(), "reference_point": ref},
    )  # fmt: skip
    return study_name, len(study.trials)


def compare_named(folder: str | Path = "results/search") -> list[Path]:
    """Hypervolume against measurements of every search stored under `folder`, one plot per
    problem (`compare_<problem>.png`), all on one reference point: the problem's fixed one,
    else the component-wise worst of the searches' recorded points."""
    from frugal.search.report import plot_hv_comparison

    by_problem: dict[str, list] = {}
    for path in sorted(Path(folder).glob("*/store.sqlite")):
        with SearchStore(path) as store:
            cfg, ref, rows, limits = (
                store.get_meta("config"),
                store.get_meta("reference_point"),
                store.rows(),
                store.get_meta("limits"),
            )
        if cfg is not None and rows:
            run = (path.parent.name, cfg, ref, rows, limits)
            by_problem.setdefault(cfg["problem"], []).append(run)
    if not by_problem:
        raise ValueError(f"no stored search under {folder}")
    out = []
    for pname, runs in by_problem.items():
        refs = [r for _, _, r, _, _ in runs if r is not None]
        if not refs:
            continue
        ref = np.max(np.array(refs), axis=0).tolist()
        curves = {f"{name} ({cfg['algorithm']})": [hv_curve(rows, ref, limits)]
                  for name, cfg, _, rows, limits in runs}  # fmt: skip
        path = Path(folder) / f"compare_{pname}.png"
        out.append(plot_hv_comparison(curves, path, f"{pname}: reference point {ref}", log_x=False))
    return out


__all__ = [
    "PROBLEMS",
    "SearchConfig",
    "compare_named",
    "export_named",
    "make_problem",
    "run_named",
]
