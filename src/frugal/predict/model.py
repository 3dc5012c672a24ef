"""Statistical models of the loss increase a quantization causes (ΔNLL, nats per token):
random forest and gradient boosting, a ridge baseline and a constant one, fitted on a
symmetric-log target; prediction intervals from grouped cross-validated residuals; and
leave-one-model-out / leave-one-format-out evaluation that never lets a held-out model or
format into training."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from frugal.stats import scaled_ridge, spearman

# What a predictor may see. "cheap": no forward pass but the probe loss; "full": plus the
# loss landscape on the probe examples (random and noise directions, Hessian trace).
CHEAP_FEATURES = (
    "log10_params", "log10_quantized", "depth", "kurtosis", "peak_over_std",
    "peak_over_std_max", "tail6_permille", "probe_nll",
    "bits", "log2_group", "float_grid", "sqnr_db", "sqnr_min_db", "method_gptq",
)  # fmt: skip
LANDSCAPE_FEATURES = (
    "rand_rise_r0.03", "rand_rise_r0.1", "hessian_trace_mean", "quadratic_rise",
    "act_sqnr_db", "noise_rise_a0.5", "noise_rise_a1",
)  # fmt: skip
FEATURE_SETS = {"cheap": CHEAP_FEATURES, "full": CHEAP_FEATURES + LANDSCAPE_FEATURES}
KINDS = ("rf", "gb", "linear", "constant")
SCALE = 0.01  # nats: the symmetric log is linear below this and logarithmic above


def to_target(delta: np.ndarray) -> np.ndarray:
    """asinh(ΔNLL/0.01): tiny and huge increases on one footing, negative ones allowed."""
    return np.arcsinh(np.asarray(delta, dtype=float) / SCALE)


def from_target(t: np.ndarray) -> np.ndarray:
    return np.sinh(np.asarray(t, dtype=float)) * SCALE


@dataclass
class Table:
    """The design matrix: one row per quantized measurement with its features, its target
    ΔNLL = NLL − NLL(fp32), and the groups used to hold data out."""

    X: np.ndarray
    y: np.ndarray
    names: list[str]
    models: np.ndarray
    formats: np.ndarray
    methods: np.ndarray
    fp_nll: np.ndarray
    cost: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: np.ndarray) -> Table:
        return Table(
            self.X[idx], self.y[idx], self.names, self.models[idx], self.formats[idx],
            self.methods[idx], self.fp_nll[idx], self.cost[idx] if len(self.cost) else self.cost,
        )  # fmt: skip


def feature_row(
    model_feats: dict[str, float], format_feats: dict[str, float], method: str, names: Sequence[str]
) -> list[float]:
    """The predictor's inputs for one (model, format, method), in `names` order."""
    pool = {**model_feats, **format_feats, "method_gptq": float(method == "gptq")}
    missing = [n for n in names if n not in pool]
    if missing:
        raise KeyError(f"features missing: {', '.join(missing)}")
    return [float(pool[n]) for n in names]


def build_table(
    measurements: list[dict],
    features: dict[tuple[str, str], dict[str, tuple[float, float]]],
    names: Sequence[str] = FEATURE_SETS["full"],
) -> Table:
    """Join measurements with their features; rows lacking features or an fp32 row are
    left out (a collection in progress). `cost` is each row's feature seconds: its own
    format's features plus its model's, the latter shared by that model's rows."""
    fp = {r["model"]: r["nll"] for r in measurements if r["method"] == "none"}
    X, y, mods, fmts, meths, fps, cost = [], [], [], [], [], [], []
    for r in measurements:
        if r["method"] == "none" or r["model"] not in fp or r.get("nll") is None:
            continue
        mf, ff = features.get((r["model"], "")), features.get((r["model"], r["format"]))
        if not mf or not ff:
            continue
        try:
            row = feature_row(
                {k: v for k, (v, _) in mf.items()}, {k: v for k, (v, _) in ff.items()},
                r["method"], names,
            )  # fmt: skip
        except KeyError:
            continue
        if not all(math.isfinite(v) for v in row):
            continue
        X.append(row)
        y.append(r["nll"] - fp[r["model"]])
        mods.append(r["model"])
        fmts.append(r["format"])
        meths.append(r["method"])
        fps.append(fp[r["model"]])
        cost.append(sum(s for _, s in ff.values()) + sum(s for _, s in mf.values()))
    if not X:
        raise ValueError("no measurement has both features and a full-precision row yet")
    return Table(
        np.array(X), np.array(y), list(names), np.array(mods), np.array(fmts),
        np.array(meths), np.array(fps), np.array(cost),
    )  # fmt: skip


class QualityPredictor(RegressorMixin, BaseEstimator):
    """An sklearn regressor of ΔNLL (nats/token): fit(X, ΔNLL, groups) / predict(X) → ΔNLL;
    predict_interval(X) → (ΔNLL, low, high). `kind`: rf, gb, linear or constant, fitted on
    the asinh target through a TransformedTargetRegressor; intervals at `coverage` come from
    residuals of grouped cross-validation on the training data (split-conformal style), so
    they widen when models differ. Plain parameters: clone, get_params, set_params and
    cross_val_score (with LeaveOneGroupOut) work as on any sklearn estimator."""

    def __init__(
        self, kind: str = "rf", coverage: float = 0.8, seed: int = 0, folds: int = 4,
        trees: int = 200,
    ):  # fmt: skip
        self.kind, self.coverage, self.seed, self.folds = kind, coverage, seed, folds
        self.trees = trees

    def _check(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown predictor {self.kind!r}; choose one of {', '.join(KINDS)}")
        if not 0 < self.coverage < 1:
            raise ValueError("coverage must lie in (0, 1)")

    def _estimator(self):
        from sklearn.dummy import DummyRegressor
        from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor

        if self.kind == "rf":
            return RandomForestRegressor(
                self.trees, min_samples_leaf=2, random_state=self.seed, n_jobs=1
            )
        if self.kind == "gb":
            return GradientBoostingRegressor(
                n_estimators=self.trees, max_depth=3, learning_rate=0.05, subsample=0.8,
                random_state=self.seed,
            )  # fmt: skip
        if self.kind == "linear":
            return scaled_ridge()
        return DummyRegressor(strategy="median")

    def _on_target(self):
        """The estimator fitted on asinh(ΔNLL/0.01), predicting back in nats."""
        from sklearn.compose import TransformedTargetRegressor

        return TransformedTargetRegressor(
            self._estimator(), func=to_target, inverse_func=from_target, check_inverse=False
        )

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None):
        self._check()
        X, y = np.asarray(X, float), np.asarray(y, float)
        self.model_ = self._on_target().fit(X, y)
        t = to_target(y)
        self.range_ = (float(t.min()) - 1.0, float(t.max()) + 1.0)  # e-fold beyond the data
        self.halfwidth_ = self._residual_quantile(X, y, groups)
        return self

    def _residual_quantile(self, X, y, groups) -> float:
        """The `coverage` quantile of |held-out residual| on the target scale, over folds
        of whole groups (every row its own group when none are given)."""
        groups = np.arange(len(y)) if groups is None else np.asarray(groups)
        n_groups = len(np.unique(groups))
        if n_groups < 2:
            return float("nan")
        resid = []
        folds = ShuffledGroupKFold(min(self.folds, n_groups), self.seed)
        for tr, te in folds.split(X, y, groups):
            est = self._on_target().fit(X[tr], y[tr])
            resid.append(np.abs(est.regressor_.predict(X[te]) - to_target(y[te])))
        r = np.concatenate(resid)
        level = min(1.0, math.ceil((len(r) + 1) * self.coverage) / len(r))
        return float(np.quantile(r, level))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted ΔNLL (nats/token)."""
        return self.predict_interval(X)[0]

    def predict_interval(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ΔNLL, low, high): the prediction, clipped to an e-fold beyond the training
        targets (no wild extrapolation), and its interval at `coverage`."""
        t = np.clip(self.model_.regressor_.predict(np.asarray(X, float)), *self.range_)
        return from_target(t), from_target(t - self.halfwidth_), from_target(t + self.halfwidth_)

    def importances(self, names: Sequence[str]) -> dict[str, float]:
        """Impurity importances (trees) or |standardized coefficients| (ridge), summing to 1."""
        est = self.model_.regressor_
        if hasattr(est, "feature_importances_"):
            imp = np.asarray(est.feature_importances_, float)
        elif hasattr(est, "steps"):
            imp = np.abs(est.steps[-1][1].coef_)
        else:
            imp = np.zeros(len(names))
        total = imp.sum() or 1.0
        return {n: float(v / total) for n, v in zip(names, imp, strict=True)}


class ShuffledGroupKFold:
    """K folds of whole groups, the groups dealt to folds in a seeded random order (an
    sklearn CV splitter: `split(X, y, groups)`, `get_n_splits`). Unlike GroupKFold, which
    balances fold sizes deterministically, the deal depends only on the seed and the set of
    groups, as the published reports were made."""

    def __init__(self, n_splits: int = 4, seed: int = 0):
        self.n_splits, self.seed = n_splits, seed

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return self.n_splits

    def split(self, X, y=None, groups=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if groups is None:
            raise ValueError("ShuffledGroupKFold needs the groups")
        groups = np.asarray(groups)
        order = np.random.default_rng(self.seed).permutation(np.unique(groups))
        for k in range(self.n_splits):
            te = np.isin(groups, order[k :: self.n_splits])
            yield np.flatnonzero(~te), np.flatnonzero(te)


def leave_one_out(groups: np.ndarray) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(held-out group, train indices, test indices), one split per distinct group in sorted
    order (sklearn's LeaveOneGroupOut)."""
    from sklearn.model_selection import LeaveOneGroupOut

    groups = np.asarray(groups)
    for tr, te in LeaveOneGroupOut().split(groups, groups=groups):
        yield str(groups[te[0]]), tr, te


NOISE_FLOOR = 0.01  # nats: below it, rankings of measured ΔNLL are mostly noise


def metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """R² and MAE on ΔNLL (nats), Spearman ρ between predicted and measured ΔNLL, and ρ over
    the rows whose measured ΔNLL exceeds the 0.01-nat noise floor."""
    y, pred = np.asarray(y, float), np.asarray(pred, float)
    ss = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - float(((y - pred) ** 2).sum()) / ss if ss > 0 else float("nan")
    above = y >= NOISE_FLOOR
    return {
        "r2": r2,
        "spearman": spearman(y, pred),
        "spearman_above_floor": spearman(y[above], pred[above]),
        "n_above_floor": int(above.sum()),
        "mae": float(np.abs(y - pred).mean()),
        "n": len(y),
    }


def evaluate(
    table: Table, kind: str, by: str = "model", coverage: float = 0.8, seed: int = 0,
    trees: int = 200,
) -> dict:  # fmt: skip
    """Leave-one-`by`-out (model or format): per held-out group its metrics and interval
    coverage, plus all held-out predictions pooled."""
    groups = {"model": table.models, "format": table.formats}[by]
    pred = np.full(len(table), np.nan)
    lo, hi = pred.copy(), pred.copy()
    per_group = {}
    for g, tr, te in leave_one_out(groups):
        if set(groups[tr]) & set(groups[te]):
            raise AssertionError("a held-out group leaked into training")
        p = QualityPredictor(kind, coverage, seed, trees=trees).fit(
            table.X[tr], table.y[tr], groups[tr]
        )
        pred[te], lo[te], hi[te] = p.predict_interval(table.X[te])
        m = metrics(table.y[te], pred[te])
        m["coverage"] = float(np.mean((table.y[te] >= lo[te]) & (table.y[te] <= hi[te])))
        per_group[g] = m
    pooled = metrics(table.y, pred)
    pooled["coverage"] = float(np.mean((table.y >= lo) & (table.y <= hi)))
    return {"kind": kind, "by": by, "groups": per_group, "pooled": pooled,
            "pred": pred, "low": lo, "high": hi}  # fmt: skip


class PairwiseRanker:
    """Orders one model's (format, method) rows by expected loss, without predicting nats:
    a logistic model of "row a loses more than row b" on standardized feature differences
    (RankSVM-style), fitted on pairs of rows of the same training model. Pairs closer than
    `min_gap` in asinh(ΔNLL/0.01) are left out (their order is mostly measurement noise) and
    the rest weighted by their gap. fit(X, ΔNLL, groups) / score(X): higher = more loss."""

    def __init__(self, C: float = 0.1, min_gap: float = 0.5):
        self.C, self.min_gap = C, min_gap

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray) -> PairwiseRanker:
        from sklearn.linear_model import LogisticRegression

        X, t, groups = np.asarray(X, float), to_target(y), np.asarray(groups)
        self.mean_, self.scale_ = X.mean(0), X.std(0)
        self.scale_[self.scale_ == 0] = 1.0
        Z = (X - self.mean_) / self.scale_
        diffs, labels, weights = [], [], []
        for g in np.unique(groups):
            idx = np.flatnonzero(groups == g)
            a, b = np.meshgrid(idx, idx, indexing="ij")
            keep = (a != b) & (np.abs(t[a] - t[b]) > self.min_gap)
            a, b = a[keep], b[keep]
            diffs.append(Z[a] - Z[b])
            labels.append(t[a] > t[b])
            weights.append(np.abs(t[a] - t[b]))
        D, lab = np.concatenate(diffs), np.concatenate(labels)
        if len(np.unique(lab)) < 2:
            raise ValueError("no pair of rows differs by more than the noise gap")
        clf = LogisticRegression(C=self.C, max_iter=5000, fit_intercept=False)
        self.coef_ = clf.fit(D, lab, sample_weight=np.concatenate(weights)).coef_[0]
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        return ((np.asarray(X, float) - self.mean_) / self.scale_) @ self.coef_


def evaluate_ranker(table: Table, **params) -> dict:
    """PairwiseRanker left-one-model-out: Spearman of its scores per held-out model."""
    per_group = {}
    score = np.full(len(table), np.nan)
    for g, tr, te in leave_one_out(table.models):
        ranker = PairwiseRanker(**params).fit(table.X[tr], table.y[tr], table.models[tr])
        score[te] = ranker.score(table.X[te])
        per_group[g] = {"spearman": spearman(table.y[te], score[te]), "n": len(te)}
    return {"kind": "ranker", "by": "model", "groups": per_group,
            "pooled": {"spearman": spearman(table.y, score), "n": len(table)}}  # fmt: skip


# One-feature rankings a learned predictor must beat: (feature, sign) with predicted ΔNLL
# ∝ sign · feature — fewer bits, lower RTN SQNR, a larger quadratic estimate: more loss.
BASELINES = {
    "bits": ("bits", -1.0),
    "rtn_sqnr": ("sqnr_db", -1.0),
    "quadratic": ("quadratic_rise", 1.0),
}


def evaluate_baseline(table: Table, name: str) -> dict:
    """A one-feature ranking (BASELINES) scored like `evaluate` per held-out model: nothing
    is fitted, so only rank metrics (Spearman) mean anything."""
    feature, sign = BASELINES[name]
    score = sign * table.X[:, table.names.index(feature)]
    per_group = {}
    for g, _, te in leave_one_out(table.models):
        per_group[g] = {
            "spearman": spearman(table.y[te], score[te]),
            "n": len(te),
        }
    return {"kind": f"baseline:{name}", "by": "model", "groups": per_group,
            "pooled": {"spearman": spearman(table.y, score), "n": len(table)}}  # fmt: skip


__all__ = [
    "BASELINES",
    "CHEAP_FEATURES",
    "FEATURE_SETS",
    "KINDS",
    "LANDSCAPE_FEATURES",
    "PairwiseRanker",
    "QualityPredictor",
    "ShuffledGroupKFold",
    "Table",
    "build_table",
    "evaluate",
    "evaluate_baseline",
    "evaluate_ranker",
    "feature_row",
    "from_target",
    "leave_one_out",
    "metrics",
    "to_target",
]
