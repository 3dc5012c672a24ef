"""Search algorithms behind one small interface: `propose(history)` returns the next batch
of configurations to measure (the runner skips ones already stored), `observe` hears what
they measured. Random search, NSGA-II (pymoo) and LINAS, the predictor-guided loop (plain, or
with uncertain surrogates and expected-hypervolume batches). Upper limits on objectives
(`limits`) make a measurement infeasible when it exceeds one; every algorithm but random
prefers feasible configurations."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from frugal.search.acquisition import greedy_batch
from frugal.search.pareto import non_dominated_sort
from frugal.search.space import Config, SearchSpace
from frugal.search.surrogates import Predictor

History = list[tuple[Config, list[float]]]


class Algorithm(ABC):
    """Base: subclasses implement propose; observe is optional. `limits`: an upper bound (or
    None) per objective; `reference`: the hypervolume's reference point when known (the
    runner sets it); `extra_violation`: constraint violations measured elsewhere, by config
    key (the Optuna sampler fills it from a study's constraints)."""

    name = "algorithm"

    def __init__(
        self,
        space: SearchSpace,
        n_obj: int,
        batch: int = 20,
        seed: int = 0,
        limits: Sequence[float | None] | None = None,
    ):
        if batch < 1:
            raise ValueError("batch must be >= 1")
        if limits is not None and len(limits) != n_obj:
            raise ValueError(f"limits needs one bound (or None) per objective, {n_obj} in all")
        self.space, self.n_obj, self.batch, self.seed = space, n_obj, batch, seed
        self.limits = None if limits is None or all(v is None for v in limits) else list(limits)
        self.reference: list[float] | None = None
        self.extra_violation: dict[str, float] = {}
        self.rng = np.random.default_rng(seed)

    def violations(self, F: np.ndarray) -> np.ndarray:
        """Per row of objectives, how far past the limits it is (relative; 0 = feasible)."""
        return limit_violations(F, self.limits)

    def history_violations(self, history: History) -> np.ndarray:
        """`violations` of the measured history plus any violation recorded elsewhere."""
        F = np.array([f for _, f in history], float).reshape(-1, self.n_obj)
        extra = [self.extra_violation.get(self.space.key(c), 0.0) for c, _ in history]
        return self.violations(F) + np.array(extra, float)

    @abstractmethod
    def propose(self, history: History) -> list[Config]:
        """The next configurations to measure (stored ones are skipped by the runner)."""

    def observe(  # noqa: B027 - optional hook, a no-op unless an algorithm keeps state
        self, configs: Sequence[Config], objectives: Sequence[list[float]]
    ) -> None:
        """Results of the last proposal, in its order (stored ones included)."""


def limit_violations(F: np.ndarray, limits: Sequence[float | None] | None) -> np.ndarray:
    """Σ_j max(0, f_j − limit_j) / max(|limit_j|, 1e-12) per row (0: within every limit)."""
    F = np.asarray(F, float)
    if limits is None:
        return np.zeros(len(F))
    out = np.zeros(len(F))
    for j, lim in enumerate(limits):
        if lim is not None:
            out += np.clip(F[:, j] - lim, 0, None) / max(abs(lim), 1e-12)
    return out


class RandomSearch(Algorithm):
    """Uniform samples of valid configurations not measured yet."""

    name = "random"

    def propose(self, history: History) -> list[Config]:
        seen = {self.space.key(c) for c, _ in history}
        return self.space.sample(self.batch, self.rng, seen)


def _pymoo_problem(space: SearchSpace, n_obj: int, constrained: bool = False):
    from pymoo.core.problem import Problem as PymooProblem

    xl, xu = space.bounds()
    return PymooProblem(
        n_var=len(xl), n_obj=n_obj, n_ieq_constr=int(constrained), xl=xl, xu=xu, vtype=int
    )


def _nsga2(pop_size: int, seed: int, initial: np.ndarray | None = None, space=None):
    """pymoo's NSGA-II on value indices; with a candidate-restricted `space`, offspring are
    moved to their nearest candidate (a repair)."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.repair import NoRepair, Repair
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling

    class Snap(Repair):
        def _do(self, problem, X, **kwargs):
            return space.snap(X).astype(float)

    snap = Snap() if space is not None and space.candidates is not None else NoRepair()
    return NSGA2(
        pop_size=pop_size,
        repair=snap,
        sampling=IntegerRandomSampling() if initial is None else initial,
        crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
        mutation=PM(eta=20, vtype=float, repair=RoundingRepair()),
        eliminate_duplicates=True,
    )


class NSGA2Search(Algorithm):
    """pymoo's NSGA-II over the parameters' value indices (SBX + polynomial mutation with
    rounding); one generation of `batch` offspring per proposal. On resume the first
    population is the best `batch` of the history."""

    name = "nsga2"

    def __init__(self, space: SearchSpace, n_obj: int, batch: int = 20, seed: int = 0, **kw):
        super().__init__(space, n_obj, batch, seed, **kw)
        self._algo = None
        self._pop = None
        self._constrained = False

    def _start(self, history: History) -> None:
        initial = None
        self._constrained = self.limits is not None or bool(self.extra_violation)
        if len(history) >= self.batch:
            F = np.array([f for _, f in history])
            order = _front_order(F, self.history_violations(history))[: self.batch]
            initial = np.array([self.space.to_indices(history[i][0]) for i in order])
        elif self.space.candidates is not None:
            initial = np.array([self.space.to_indices(c)
                                for c in self.space.sample(self.batch, self.rng)])  # fmt: skip
        self._algo = _nsga2(self.batch, self.seed, initial, self.space)
        problem = _pymoo_problem(self.space, self.n_obj, self._constrained)
        self._algo.setup(problem, seed=self.seed, verbose=False)

    def propose(self, history: History) -> list[Config]:
        if self._algo is None:
            self._start(history)
        self._pop = self._algo.ask()
        return [self.space.from_indices(x) for x in self._pop.get("X")]

    def observe(self, configs, objectives) -> None:
        from pymoo.core.evaluator import Evaluator
        from pymoo.problems.static import StaticProblem

        F = np.array(objectives, float)
        valid = np.array([self.space.is_valid(c) for c in configs])
        F[~valid] = np.finfo(float).max / 10  # invalid configs lose every comparison
        kw = {}
        if self._constrained:
            extra = [self.extra_violation.get(self.space.key(c), 0.0) for c in configs]
            kw["G"] = (self.violations(F) + np.array(extra))[:, None]
        static = StaticProblem(_pymoo_problem(self.space, self.n_obj, self._constrained), F=F, **kw)
        Evaluator().eval(static, self._pop)
        self._algo.tell(infills=self._pop)


class LINAS(Algorithm):
    """Predictor-guided search (LINAS, as in DyNAS-T): measure a random first population;
    then, each round, fit one surrogate per objective on every measurement, run NSGA-II for
    `generations` generations on the surrogates' means, and propose `batch` configurations
    not measured yet from its final population: the best by predicted front and crowding
    (`selection="front"`, DyNAS-T's rule), or a greedy batch by expected hypervolume
    improvement under the surrogates' spread (`selection="ehvi"`; predictor ensemble, gp or
    forest). On a finite candidate list every candidate is scored instead."""

    name = "linas"
    SELECTIONS = ("front", "ehvi")

    def __init__(
        self,
        space: SearchSpace,
        n_obj: int,
        batch: int = 20,
        seed: int = 0,
        generations: int = 250,
        inner_pop: int = 50,
        predictor: str = "auto",
        encoding: str = "onehot",
        selection: str = "front",
        limits: Sequence[float | None] | None = None,
    ):
        from frugal.search.surrogates import KINDS

        super().__init__(space, n_obj, batch, seed, limits)
        if selection not in self.SELECTIONS:
            raise ValueError(f"unknown selection {selection!r}; choose front or ehvi")
        if predictor not in ("auto", *Predictor.CHOICES, *KINDS):
            choices = ", ".join(("auto", *Predictor.CHOICES, *KINDS))
            raise ValueError(f"unknown predictor {predictor!r}; choose one of {choices}")
        self.generations, self.inner_pop = generations, inner_pop
        self.predictor, self.encoding, self.selection = predictor, encoding, selection
        self.chosen: list[str] = []
        self._round = 0

    def _fit(self, X: np.ndarray, F: np.ndarray) -> list:
        """One fitted surrogate per objective; `chosen` records what each turned out to be."""
        from frugal.search.surrogates import KINDS, Surrogate

        kind = Surrogate if self.predictor in KINDS else Predictor
        models = [kind(self.predictor, self.seed).fit(X, F[:, j]) for j in range(self.n_obj)]
        self.chosen = [getattr(m, "chosen_", self.predictor) for m in models]
        return models

    def propose(self, history: History) -> list[Config]:
        seen = {self.space.key(c) for c, _ in history}
        if len(history) < self.batch:
            return self.space.sample(self.batch - len(history), self.rng, seen)
        self._round += 1
        X = self.space.encode([c for c, _ in history], self.encoding)
        F = np.array([f for _, f in history], float)
        models = self._fit(X, F)
        cands = [c for c in self._optimize(models)
                 if self.space.key(c) not in seen and self.space.is_valid(c)]  # fmt: skip
        cands = list({self.space.key(c): c for c in cands}.values())
        if self.selection == "ehvi" and cands:
            cands = self._by_ehvi(cands, models, F[self.history_violations(history) == 0])
        out = cands[: self.batch]
        if len(out) < self.batch:  # the surrogate front is exhausted: fill at random
            keys = seen | {self.space.key(c) for c in out}
            out += self.space.sample(self.batch - len(out), self.rng, keys)
        return out

    @staticmethod
    def _means(models: list, X: np.ndarray) -> np.ndarray:
        """Predicted objectives, candidates × objectives."""
        return np.stack([m.predict(X) for m in models], axis=1)

    def _by_ehvi(self, cands: list[Config], models: list, front: np.ndarray) -> list[Config]:
        pairs = [m.predict(self.space.encode(cands, self.encoding), return_std=True)
                 for m in models]  # fmt: skip
        mean = np.stack([p[0] for p in pairs], axis=1)
        std = np.stack([p[1] for p in pairs], axis=1)  # 0 for point predictors
        ref = self.reference
        if ref is None:  # 10% beyond the worst of what is known
            allF = np.vstack([front, mean]) if len(front) else mean
            worst, best = allF.max(0), allF.min(0)
            ref = worst + 0.1 * np.maximum(worst - best, 1e-12)
        order = greedy_batch(mean, std, front, np.asarray(ref, float), self.batch, self.rng,
                             self.limits)  # fmt: skip
        return [cands[i] for i in order]

    def _optimize(self, models: list) -> list[Config]:
        """NSGA-II on the surrogates' means; candidates ranked by predicted feasibility, front,
        then crowding. On a finite candidate list every candidate is scored instead (the
        exact optimum of the inner search)."""
        if self.space.candidates is not None:
            X = self.space.encode(self.space.candidates, self.encoding)
            F = self._means(models, X)
            return [self.space.candidates[i] for i in _front_order(F, self.violations(F))]
        from pymoo.core.problem import Problem as PymooProblem
        from pymoo.optimize import minimize

        space, enc, algo = self.space, self.encoding, self
        xl, xu = space.bounds()
        constrained = self.limits is not None

        class Inner(PymooProblem):
            def __init__(self):
                super().__init__(n_var=len(xl), n_obj=len(models), n_ieq_constr=int(constrained),
                                 xl=xl, xu=xu, vtype=int)  # fmt: skip

            def _evaluate(self, x, out, *args, **kwargs):
                x = np.clip(np.asarray(x).round(), xl, xu).astype(int)
                F = algo._means(models, space.encode_indices(x, enc))
                if space.constraints:
                    bad = np.array([not space.is_valid(space.from_indices(r)) for r in x])
                    F[bad] = np.finfo(float).max / 10
                out["F"] = F
                if constrained:
                    out["G"] = algo.violations(F)[:, None]

        res = minimize(
            Inner(), _nsga2(self.inner_pop, self.seed + self._round),
            ("n_gen", self.generations), seed=self.seed + self._round, verbose=False,
        )  # fmt: skip
        X, F = res.pop.get("X"), res.pop.get("F")
        return [space.from_indices(X[i]) for i in _front_order(F, self.violations(F))]


def _front_order(F: np.ndarray, violation: np.ndarray | None = None) -> list[int]:
    """Feasible rows (violation 0) by non-dominated front, then by crowding distance (widest
    first) within one; then infeasible rows, least violation first."""
    F = np.asarray(F, float)
    ok = np.ones(len(F), bool) if violation is None else np.asarray(violation) <= 0
    feasible = np.flatnonzero(ok)
    order = []
    for front in non_dominated_sort(F[feasible]):
        order += list(feasible[front[np.argsort(-_crowding(F[feasible][front]))]])
    bad = np.flatnonzero(~ok)
    return order + list(bad[np.argsort(violation[bad], kind="stable")])


def _crowding(F: np.ndarray) -> np.ndarray:
    n = len(F)
    if n <= 2:
        return np.full(n, np.inf)
    d = np.zeros(n)
    for j in range(F.shape[1]):
        o = np.argsort(F[:, j])
        span = F[o[-1], j] - F[o[0], j] or 1.0
        d[o[0]] = d[o[-1]] = np.inf
        d[o[1:-1]] += (F[o[2:], j] - F[o[:-2], j]) / span
    return d


ALGORITHMS = {"random": RandomSearch, "nsga2": NSGA2Search, "linas": LINAS}


def make_algorithm(name: str, space: SearchSpace, n_obj: int, **kw) -> Algorithm:
    """An algorithm by name (random, nsga2, linas)."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; choose one of {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name](space, n_obj, **kw)


__all__ = [
    "ALGORITHMS",
    "LINAS",
    "Algorithm",
    "NSGA2Search",
    "Predictor",
    "RandomSearch",
    "limit_violations",
    "make_algorithm",
]
