"""Surrogates of one objective. `Predictor`: a point estimate (ridge, SVR or their average,
chosen by cross-validation). `Surrogate`: a mean and a standard deviation, three ways, for
comparison: a bootstrap ensemble of the Predictor, a Gaussian process (Matérn 5/2, learned
noise), and a random forest's spread across its trees."""

from __future__ import annotations

import numpy as np

from frugal.stats import scaled_ridge

KINDS = ("ensemble", "gp", "forest")


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
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVR

        ridge = scaled_ridge()
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

    def predict(self, X: np.ndarray, return_std: bool = False):
        """Predictions; with `return_std`, (predictions, zeros): a point estimate is sure."""
        m = self.est_.predict(X) * self._sd + self._mu
        return (m, np.zeros(len(m))) if return_std else m


class Surrogate:
    """fit(X, y) then predict(X, return_std=True) → (mean, std), both in y's units."""

    def __init__(self, kind: str = "gp", seed: int = 0, members: int = 8):
        if kind not in KINDS:
            raise ValueError(f"unknown surrogate {kind!r}; choose one of {', '.join(KINDS)}")
        if members < 2:
            raise ValueError("an ensemble needs at least 2 members")
        self.kind, self.seed, self.members = kind, seed, members

    def fit(self, X: np.ndarray, y: np.ndarray) -> Surrogate:
        X, y = np.asarray(X, float), np.asarray(y, float)
        if len(X) < 2:
            raise ValueError("a surrogate needs at least 2 measurements")
        self._mu, self._sd = y.mean(), y.std() or 1.0
        z = (y - self._mu) / self._sd
        self._xm, self._xs = X.mean(0), X.std(0)
        self._xs[self._xs == 0] = 1.0
        getattr(self, f"_fit_{self.kind}")((X - self._xm) / self._xs, z)
        return self

    def _fit_ensemble(self, X: np.ndarray, z: np.ndarray) -> None:
        """The predictor kind chosen by cross-validation on all data, refit on bootstrap
        resamples (the spread of their predictions is the uncertainty)."""
        kind = Predictor("auto", self.seed).fit(X, z).chosen_
        rng = np.random.default_rng(self.seed)
        self._models = []
        for _ in range(self.members):
            idx = rng.integers(0, len(z), len(z))
            while len(np.unique(idx)) < 2:  # a resample needs two distinct points
                idx = rng.integers(0, len(z), len(z))
            self._models.append(Predictor(kind, self.seed).fit(X[idx], z[idx]))

    def _fit_gp(self, X: np.ndarray, z: np.ndarray) -> None:
        """Matérn 5/2 with one length scale (inputs are standardized; one scale per input
        costs a 38-dimensional fit on the Whisper space for no measured gain) plus noise."""
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        kernel = ConstantKernel(1.0, (1e-2, 1e2)) * Matern(
            np.sqrt(X.shape[1]), (1e-2, 1e3), nu=2.5
        ) + WhiteKernel(1e-2, (1e-6, 1.0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # a bound reached is fine
            self._gp = GaussianProcessRegressor(
                kernel, n_restarts_optimizer=1, random_state=self.seed
            ).fit(X, z)

    def _fit_forest(self, X: np.ndarray, z: np.ndarray) -> None:
        from sklearn.ensemble import RandomForestRegressor

        self._forest = RandomForestRegressor(
            100, min_samples_leaf=2, max_features=0.5, random_state=self.seed
        ).fit(X, z)

    def predict(self, X: np.ndarray, return_std: bool = False):
        X = (np.asarray(X, float) - self._xm) / self._xs
        if self.kind == "gp":
            m, s = self._gp.predict(X, return_std=True)
        else:
            members = (
                [p.predict(X) for p in self._models]
                if self.kind == "ensemble"
                else [t.predict(X) for t in self._forest.estimators_]
            )
            m, s = np.mean(members, axis=0), np.std(members, axis=0)
        m = m * self._sd + self._mu
        return (m, np.asarray(s) * self._sd) if return_std else m


__all__ = ["KINDS", "Predictor", "Surrogate"]
