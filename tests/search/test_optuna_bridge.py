"""Optuna interop: LINAS as an Optuna sampler (no repeats, maximized objectives, constraints)
and a frugal search exported into an Optuna storage (values, states, metric names,
fidelities, constraints), read back through Optuna's own API."""

from __future__ import annotations

import numpy as np
import optuna  # the locked environment has it: a missing install fails, never skips
import pytest

from frugal.search.optuna_bridge import (
    FrugalSampler,
    distributions,
    space_from_distributions,
)
from frugal.search.problems import MixedPrecision

optuna.logging.set_verbosity(optuna.logging.WARNING)
PROBLEM = MixedPrecision(6, seed=1)


def objective(trial):
    bits = {f"b{i}": trial.suggest_categorical(f"b{i}", [2, 3, 4, 8]) for i in range(6)}
    err, mbit = PROBLEM.evaluate(bits)
    trial.set_user_attr("mbit", mbit)  # Optuna's constraints read attributes, not values
    return -err, mbit  # the study maximizes the first objective


def test_linas_sampler_drives_an_optuna_study():
    sampler = FrugalSampler("linas", batch=8, seed=0, generations=20)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=48)
    keys = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(keys)) == len(keys)  # nothing measured twice
    # LINAS saw the maximized objective negated: its later trials beat random's
    F = np.array([[-t.values[0], t.values[1]] for t in study.trials])
    from frugal.search.pareto import hypervolume

    ref = np.array(PROBLEM.reference_point())
    rand = optuna.create_study(directions=["maximize", "minimize"],
                               sampler=optuna.samplers.RandomSampler(seed=0))  # fmt: skip
    rand.optimize(objective, n_trials=48)
    G = np.array([[-t.values[0], t.values[1]] for t in rand.trials])
    assert hypervolume(F, ref) > hypervolume(G, ref)


def test_sampler_constraints_are_stored_and_respected():
    limit = float(PROBLEM.sizes.sum() * 3)

    def cons(trial):
        return [trial.user_attrs["mbit"] - limit]

    sampler = FrugalSampler("linas", batch=8, seed=0, generations=20, constraints_func=cons)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=40)
    assert all("constraints" in t.system_attrs for t in study.trials)
    later = [t.values[1] <= limit for t in study.trials[16:]]
    rand = optuna.create_study(directions=["maximize", "minimize"],
                               sampler=optuna.samplers.RandomSampler(seed=0))  # fmt: skip
    rand.optimize(objective, n_trials=40)
    base = [t.values[1] <= limit for t in rand.trials[16:]]
    assert np.mean(later) > np.mean(base) + 0.2


def test_spaces_convert_both_ways_and_refuse_continuous_floats():
    d = optuna.distributions
    space = space_from_distributions({
        "a": d.CategoricalDistribution(["x", "y"]),
        "n": d.IntDistribution(2, 10, step=2),
        "s": d.FloatDistribution(0.0, 0.5, step=0.25),
    })  # fmt: skip
    assert [p.values for p in space.params] == [("x", "y"), (2, 4, 6, 8, 10), (0.0, 0.25, 0.5)]
    back = distributions(space)
    assert back["n"] == d.IntDistribution(2, 10, step=2)
    with pytest.raises(ValueError, match="finite grids"):
        space_from_distributions({"lr": d.FloatDistribution(1e-4, 1e-1, log=True)})
    with pytest.raises(ValueError, match="linas or random"):
        FrugalSampler("nsga2")


def test_export_writes_a_study_optuna_reads(tmp_path):
    from frugal.search.optuna_bridge import export_to_optuna

    space = PROBLEM.space
    configs = space.sample(4, np.random.default_rng(0))
    keys = [space.key(c) for c in configs]
    f = [PROBLEM.evaluate(c) for c in configs]
    rows = [
        {"key": keys[0], "config": configs[0], "objectives": f[0], "seconds": 1.0, "error": None,
         "round": 1},
        {"key": keys[1], "config": configs[1], "objectives": None, "seconds": 0.5,
         "error": "ValueError: boom", "round": 1},
        {"key": keys[2], "config": configs[2], "objectives": f[2], "seconds": 1.0, "error": None,
         "round": 2},
    ]  # fmt: skip
    partial = [
        {"key": keys[0], "fidelity": 3, "config": configs[0], "objectives": [9.0, f[0][1]]},
        {"key": keys[3], "fidelity": 3, "config": configs[3], "objectives": [7.0, f[3][1]]},
    ]
    storage = f"sqlite:///{tmp_path / 'o.db'}"
    limits = [None, f[0][1] + 1e-9]  # the first is feasible; the third maybe not
    export_to_optuna(rows, space, ("error", "mbit"), storage, "s", limits, partial, {"a": 1})
    study = optuna.load_study(study_name="s", storage=storage)
    State = optuna.trial.TrialState
    assert [t.state for t in study.trials] == [State.COMPLETE, State.FAIL, State.COMPLETE,
                                               State.PRUNED]  # fmt: skip
    assert study.metric_names == ["error", "mbit"] and study.user_attrs == {"a": 1}
    t0, t1, t2, t3 = study.trials
    assert t0.values == f[0] and t0.params == configs[0] and t0.user_attrs["fidelity_3"][0] == 9
    assert t1.user_attrs["error"] == "ValueError: boom"
    assert t0.system_attrs["constraints"] == [0.0]
    assert (t2.system_attrs["constraints"][0] > 0) == (f[2][1] > limits[1])
    assert t3.user_attrs["fidelity_3"] == [7.0, f[3][1]]
    assert len(study.best_trials) >= 1  # Optuna's own Pareto front works on it
    with pytest.raises(ValueError, match="already exists"):
        export_to_optuna(rows, space, ("error", "mbit"), storage, "s")
