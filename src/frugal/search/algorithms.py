"""Search algorithms behind one small interface: `propose(history)` returns the next batch
of configurations to measure (the runner skips ones already stored), `observe` hears what
they measured. Random search, NSGA-II (pymoo) and LINAS, the predictor-guided loop."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from frugal.search.pareto import non_dominated_sort
from frugal.search.space import Config, SearchSpace

History = list[tuple[Config, list[float]]]


class Algorithm(ABC):
    """Base: subclasses implement propose; observe is optional."""

    name = "algorithm"

    def __init__(self, space: SearchSpace, n_obj: int, batch: int = 20, seed: int = 0):
        if batch < 1:
            raise ValueError("batch must be >= 1")
        self.space, self.n_obj, self.batch, self.seed = space, n_obj, batch, seed
        self.rng = np.random.default_rng(seed)

    @abstractmethod
    def propose(self, history: History) -> list[Config]:
        """The next configurations to measure (stored ones are skipped by the runner)."""

    def observe(  # noqa: B027 - optional hook, a no-op unless an algorithm keeps state
        self, configs: Sequence[Config], objectives: Sequence[list[float]]
    ) -> None:
        """Results of the last proposal, in its order (stored ones included)."""


class RandomSearch(Algorithm):
    """Uniform samples of valid configurations not measured yet."""

    name = "random"

    def propose(self, history: History) -> list[Config]:
        seen = {self.space.key(c) for c, _ in history}
        return self.space.sample(self.batch, self.rng, seen)


def _pymoo_problem(space: SearchSpace, n_obj: int):
    from pymoo.core.problem import Problem as PymooProblem

    xl, xu = space.bounds()
    return PymooProblem(n_var=len(xl), n_obj=n_obj, xl=xl, xu=xu, vtype=int)


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

    def __init__(self, space: SearchSpace, n_obj: int, batch: int = 20, seed: int = 0):
        super().__init__(space, n_obj, batch, seed)
        self._algo = None
        self._pop = None

    def _start(self, history: History) -> None:
        initial = None
        if len(history) >= self.batch:
            F = np.array([f for _, f in history])
            order = np.concatenate(non_dominated_sort(F))[: self.batch]
            initial = np.array([self.space.to_indices(history[i][0]) for i in order])
        elif self.space.candidates is not None:
            initial = np.array([self.space.to_indices(c)
                                for c in self.space.sample(self.batch, self.rng)])  # fmt: skip
        self._algo = _nsga2(self.batch, self.seed, initial, self.space)
        self._algo.setup(_pymoo_problem(self.space, self.n_obj), seed=self.seed, verbose=False)

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
        static = StaticProblem(_pymoo_problem(self.space, self.n_obj), F=F)
        Evaluator().eval(static, self._pop)
        self._algo.tell(infills=self._pop)


class Predictor:
    """One objective's surrogate: ridge, SVR (RBF) or their average, picked by K-fold
    cross-validated error on everything measured so far."""

    CHOICES = ("ridge", "svr", "stack")
    MIN_CV = 10  # measurements needed before the choice is made by cross-validation

    def __init__(self, kind: str = "auto", seed: int = 0):
        if kind != "auto" and kind not in self.CHOICES:
            raise ValueError(f"unknown predictor {kind!r}; choose auto, ridge, svr or stack")
        self.kind, self.seed = kind, seed

    @staticmethod
    def _make(kind: str):
        from sklearn.ensemble import VotingRegressor
        from sklearn.linear_model import RidgeCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVR

        ridge = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
        svr = make_pipeline(StandardScaler(), SVR(kernel="rbf", C=10.0, gamma="scale"))
        if kind == "ridge":
            return ridge
        if kind == "svr":
            return svr
        return VotingRegressor([("ridge", ridge), ("svr", svr)])

    def fit(self, X: np.ndarray, y: np.ndarray) -> Predictor:
        from sklearn.model_selection import KFold, cross_val_score

        mu, sd = y.mean(), y.std() or 1.0
        self._mu, self._sd = mu, sd
        z = (y - mu) / sd
        kind = self.kind
        if kind == "auto" and len(y) < self.MIN_CV:
            kind = "ridge"  # too few measurements to choose by cross-validation
        if kind == "auto":
            folds = KFold(min(5, len(y)), shuffle=True, random_state=self.seed)
            scores = {
                k: cross_val_score(self._make(k), X, z, cv=folds,
                                   scoring="neg_mean_squared_error").mean()
                for k in self.CHOICES
            }  # fmt: skip
            kind = max(scores, key=scores.get)
        self.chosen_ = kind
        self.est_ = self._make(kind).fit(X, z)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.est_.predict(X) * self._sd + self._mu


class LINAS(Algorithm):
    """Predictor-guided search (LINAS, as in DyNAS-T): measure a random first population;
    then, each round, fit one predictor per objective on every measurement, run NSGA-II for
    `generations` generations on the predictors alone, and propose the best `batch`
    configurations of its final population that are not measured yet."""

    name = "linas"

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
    ):
        super().__init__(space, n_obj, batch, seed)
        self.generations, self.inner_pop = generations, inner_pop
        self.predictor, self.encoding = predictor, encoding
        self.chosen: list[str] = []
        self._round = 0

    def propose(self, history: History) -> list[Config]:
        seen = {self.space.key(c) for c, _ in history}
        if len(history) < self.batch:
            return self.space.sample(self.batch - len(history), self.rng, seen)
        self._round += 1
        X = self.space.encode([c for c, _ in history], self.encoding)
        F = np.array([f for _, f in history], float)
        models = [Predictor(self.predictor, self.seed).fit(X, F[:, j]) for j in range(self.n_obj)]
        self.chosen = [m.chosen_ for m in models]
        cands = self._optimize(models)
        out, keys = [], set(seen)
        for c in cands:
            k = self.space.key(c)
            if k not in keys and self.space.is_valid(c):
                keys.add(k)
                out.append(c)
            if len(out) == self.batch:
                break
        if len(out) < self.batch:  # the surrogate front is exhausted: fill at random
            out += self.space.sample(self.batch - len(out), self.rng, keys)
        return out

    def _optimize(self, models: list[Predictor]) -> list[Config]:
        """NSGA-II on the predictors; candidates ranked by predicted front, then crowding.
        On a finite candidate list every candidate is scored instead (the exact optimum of
        the inner search)."""
        if self.space.candidates is not None:
            X = self.space.encode(self.space.candidates, self.encoding)
            F = np.stack([m.predict(X) for m in models], axis=1)
            return [self.space.candidates[i] for i in _front_order(F)]
        from pymoo.core.problem import Problem as PymooProblem
        from pymoo.optimize import minimize

        space, enc = self.space, self.encoding
        xl, xu = space.bounds()

        class Surrogate(PymooProblem):
            def __init__(self):
                super().__init__(n_var=len(xl), n_obj=len(models), xl=xl, xu=xu, vtype=int)

            def _evaluate(self, x, out, *args, **kwargs):
                x = np.clip(np.asarray(x).round(), xl, xu).astype(int)
                F = np.stack([m.predict(space.encode_indices(x, enc)) for m in models], axis=1)
                if space.constraints:
                    bad = np.array([not space.is_valid(space.from_indices(r)) for r in x])
                    F[bad] = np.finfo(float).max / 10
                out["F"] = F

        res = minimize(
            Surrogate(), _nsga2(self.inner_pop, self.seed + self._round),
            ("n_gen", self.generations), seed=self.seed + self._round, verbose=False,
        )  # fmt: skip
        X, F = res.pop.get("X"), res.pop.get("F")
        return [space.from_indices(X[i]) for i in _front_order(F)]


def _front_order(F: np.ndarray) -> list[int]:
    """Rows by non-dominated front, then by crowding distance (widest first) within one."""
    order = []
    for front in non_dominated_sort(F):
        order += list(front[np.argsort(-_crowding(F[front]))])
    return order


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
    "make_algorithm",
]
