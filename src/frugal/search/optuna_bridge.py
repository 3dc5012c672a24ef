"""frugal and Optuna (an optional extra: pip install 'frugal[optuna]'). `FrugalSampler` lets an
Optuna study propose trials with LINAS (or random search); `export_to_optuna` writes a frugal
search into an Optuna storage, so optuna-dashboard and Optuna's plots work on it."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

from frugal.search.space import Categorical, Config, Integer, Ordinal, SearchSpace

try:
    import optuna
    from optuna.samplers._base import _process_constraints_after_trial
except ImportError as exc:
    raise ImportError("Optuna is not installed; pip install 'frugal[optuna]'") from exc


def distributions(space: SearchSpace) -> dict:
    """Optuna distributions of a frugal space (integers as IntDistribution, the rest as
    categorical choices)."""
    d = optuna.distributions
    out = {}
    for p in space.params:
        if isinstance(p, Integer):
            out[p.name] = d.IntDistribution(p.low, p.high, step=p.step)
        else:
            out[p.name] = d.CategoricalDistribution(list(p.values))
    return out


def space_from_distributions(dists: dict) -> SearchSpace:
    """A frugal space from Optuna distributions: categorical, integer (linear), and float
    with a step (as ordered values); other floats have no finite grid (one-line error)."""
    d = optuna.distributions
    params = []
    for name, dist in sorted(dists.items()):
        if isinstance(dist, d.CategoricalDistribution):
            params.append(Categorical(name, tuple(dist.choices)))
        elif isinstance(dist, d.IntDistribution) and not dist.log:
            params.append(Integer(name, dist.low, dist.high, dist.step))
        elif isinstance(dist, d.FloatDistribution) and dist.step is not None and not dist.log:
            n = round((dist.high - dist.low) / dist.step)
            params.append(Ordinal(name, tuple(dist.low + i * dist.step for i in range(n + 1))))
        else:
            raise ValueError(
                f"parameter {name!r}: frugal searches finite grids (categorical, int, or "
                f"float with step), not {dist}"
            )
    return SearchSpace(params)


class FrugalSampler(optuna.samplers.BaseSampler):
    """An Optuna sampler running a frugal algorithm ("linas" or "random", with its keyword
    arguments, e.g. predictor="gp", selection="ehvi"). Trials are proposed in batches of
    `batch`: the algorithm sees every completed trial (maximized objectives negated), and
    Optuna's constraints (`constraints_func`, values ≤ 0 feasible) as violations. The search
    space is inferred from the study's completed trials (the first trial is random), or given
    as `space`."""

    def __init__(
        self,
        algorithm: str = "linas",
        batch: int = 10,
        seed: int = 0,
        space: SearchSpace | None = None,
        constraints_func: Callable | None = None,
        **kw,
    ):
        if algorithm not in ("linas", "random"):
            raise ValueError(
                f"FrugalSampler runs linas or random, not {algorithm!r} (Optuna has NSGA-II)"
            )
        self.algorithm_name, self.batch, self.seed, self.kw = algorithm, batch, seed, kw
        self.space = space
        self.constraints_func = constraints_func
        self._random = optuna.samplers.RandomSampler(seed=seed)
        self._algo = None
        self._queue: list[Config] = []

    def infer_relative_search_space(self, study, trial) -> dict:
        if self.space is not None:
            return distributions(self.space)
        return optuna.search_space.intersection_search_space(
            study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        )

    def sample_relative(self, study, trial, search_space: dict) -> dict:
        if not search_space:
            return {}
        if self._algo is None or set(self._algo.space.names) != set(search_space):
            from frugal.search.algorithms import make_algorithm

            space = self.space or space_from_distributions(search_space)
            self._algo = make_algorithm(
                self.algorithm_name, space, len(study.directions), batch=self.batch,
                seed=self.seed, **self.kw,
            )  # fmt: skip
            self._queue = []
        space = self._algo.space
        history, taken = self._history(study, space)
        self._queue = [c for c in self._queue if space.key(c) not in taken]
        if not self._queue:
            self._queue = [c for c in self._algo.propose(history) if space.key(c) not in taken]
        return dict(self._queue.pop(0)) if self._queue else {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        if self.constraints_func is not None:  # stored where Optuna's own samplers put them
            _process_constraints_after_trial(self.constraints_func, study, trial, state)

    def reseed_rng(self) -> None:
        self._random.reseed_rng()

    def _history(self, study, space: SearchSpace):
        """Completed trials as (config, minimized objectives); every trial's key is taken."""
        sign = np.array([-1.0 if d == optuna.study.StudyDirection.MAXIMIZE else 1.0
                         for d in study.directions])  # fmt: skip
        history, taken = [], set()
        self._algo.extra_violation = {}
        for t in study.get_trials(deepcopy=False):
            if not set(space.names) <= set(t.params):
                continue
            config = {n: t.params[n] for n in space.names}
            key = space.key(config)
            taken.add(key)
            if t.state == optuna.trial.TrialState.COMPLETE and t.values is not None:
                history.append((config, (sign * np.array(t.values, float)).tolist()))
                c = t.system_attrs.get("constraints")
                if c is not None:
                    self._algo.extra_violation[key] = float(np.clip(c, 0, None).sum())
        return history, taken


def export_to_optuna(
    rows: Sequence[dict],
    space: SearchSpace,
    objectives: Sequence[str],
    storage: str,
    study_name: str,
    limits: Sequence[float | None] | None = None,
    partial_rows: Sequence[dict] = (),
    attrs: dict | None = None,
):
    """A new Optuna study in `storage` holding a frugal search: each measurement a COMPLETE
    trial (minimize every objective; metric names set), failures FAIL, configurations
    measured only at lower fidelities PRUNED; lower-fidelity objectives as user attributes
    (`fidelity_<n>`), limits as Optuna constraints. One-line error if the name is taken."""
    from frugal.search.algorithms import limit_violations

    existing = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    if study_name in existing:
        raise ValueError(f"study {study_name!r} already exists in {storage}; pick another name")
    study = optuna.create_study(
        storage=storage, study_name=study_name, directions=["minimize"] * len(objectives)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(objectives))
    for k, v in (attrs or {}).items():
        study.set_user_attr(k, v)
    dists = distributions(space)
    by_key: dict[str, dict] = {}
    for r in partial_rows:
        if r["objectives"] is not None:
            by_key.setdefault(r["key"], {})[f"fidelity_{r['fidelity']}"] = r["objectives"]
    State = optuna.trial.TrialState
    trials, full = [], set()
    for r in rows:
        full.add(r["key"])
        ok = r["objectives"] is not None
        system = {}
        if ok and limits is not None:
            F = np.array([r["objectives"]], float)
            system["constraints"] = [float(limit_violations(F, limits)[0])]
        user = {"frugal_key": r["key"], "seconds": r["seconds"], "round": r["round"]}
        user |= by_key.get(r["key"], {}) | ({"error": r["error"]} if r["error"] else {})
        trials.append(optuna.trial.create_trial(
            params={n: r["config"][n] for n in space.names}, distributions=dists,
            values=r["objectives"] if ok else None, state=State.COMPLETE if ok else State.FAIL,
            user_attrs=user, system_attrs=system,
        ))  # fmt: skip
    for key, levels in by_key.items():
        if key in full:
            continue
        config = next(r["config"] for r in partial_rows if r["key"] == key)
        trials.append(optuna.trial.create_trial(
            params={n: config[n] for n in space.names}, distributions=dists,
            state=State.PRUNED, user_attrs={"frugal_key": key} | levels,
        ))  # fmt: skip
    study.add_trials(trials)
    return study


__all__ = [
    "FrugalSampler",
    "distributions",
    "export_to_optuna",
    "space_from_distributions",
]
