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
from scipy.stats import spearmanr

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


class QualityPredictor:
    """fit(X, ΔNLL) / predict(X) → (ΔNLL, low, high). `kind`: rf, gb, linear or constant;
    intervals at `coverage` come from residuals of grouped cross-validation on the
    training data (split-conformal style), so they widen when models differ."""

    def __init__(
        self, kind: str = "rf", coverage: float = 0.8, seed: int = 0, folds: int = 4,
        trees: int = 200,
    ):  # fmt: skip
        if kind not in KINDS:
            raise ValueError(f"unknown predictor {kind!r}; choose one of {', '.join(KINDS)}")
        if not 0 < coverage < 1:
            raise ValueError("coverage must lie in (0, 1)")
        self.kind, self.coverage, self.seed, self.folds = kind, coverage, seed, folds
        self.trees = trees

    def _estimator(self):
        from sklearn.dummy import DummyRegressor
        from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
        from sklearn.linear_model import RidgeCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

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
            return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
        return DummyRegressor(strategy="median")

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None):
        X, t = np.asarray(X, float), to_target(y)
        self.est_ = self._estimator().fit(X, t)
        self.range_ = (float(t.min()) - 1.0, float(t.max()) + 1.0)  # e-fold beyond the data
        self.halfwidth_ = self._residual_quantile(X, t, groups)
        return self

    def _residual_quantile(self, X, t, groups) -> float:
        groups = np.arange(len(t)) if groups is None else np.asarray(groups)
        uniq = np.unique(groups)
        if len(uniq) < 2:
            return float("nan")
        resid = []
        for tr, te in group_splits(groups, min(self.folds, len(uniq)), self.seed):
            est = self._estimator().fit(X[tr], t[tr])
            resid.append(np.abs(est.predict(X[te]) - t[te]))
        r = np.concatenate(resid)
        level = min(1.0, math.ceil((len(r) + 1) * self.coverage) / len(r))
        return float(np.quantile(r, level))

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = np.clip(self.est_.predict(np.asarray(X, float)), *self.range_)  # no wild extrapolation
        return from_target(t), from_target(t - self.halfwidth_), from_target(t + self.halfwidth_)

    def importances(self, names: Sequence[str]) -> dict[str, float]:
        """Impurity importances (trees) or |standardized coefficients| (ridge), summing to 1."""
        est = self.est_
        if hasattr(est, "feature_importances_"):
            imp = np.asarray(est.feature_importances_, float)
        elif hasattr(est, "steps"):
            imp = np.abs(est.steps[-1][1].coef_)
        else:
            imp = np.zeros(len(names))
        total = imp.sum() or 1.0
        return {n: float(v / total) for n, v in zip(names, imp, strict=True)}


def group_splits(
    groups: np.ndarray, folds: int, seed: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """K folds of whole groups (seeded): no group is on both sides of a split."""
    uniq = np.unique(groups)
    rng = np.random.default_rng(seed)
    order = rng.permutation(uniq)
    for k in range(folds):
        held = set(order[k::folds].tolist())
        te = np.array([g in held for g in groups])
        yield np.flatnonzero(~te), np.flatnonzero(te)


def leave_one_out(groups: np.ndarray) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(held-out group, train indices, test indices), one split per distinct group."""
    for g in np.unique(groups):
        te = groups == g
        yield str(g), np.flatnonzero(~te), np.flatnonzero(te)


NOISE_FLOOR = 0.01  # nats: below it, rankings of measured ΔNLL are mostly noise


def _spearman(y: np.ndarray, pred: np.ndarray) -> float:
    if len(y) < 3 or np.ptp(pred) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(y, pred).statistic)


def metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """R² and MAE on ΔNLL (nats), Spearman ρ between predicted and measured ΔNLL, and ρ over
    the rows whose measured ΔNLL exceeds the 0.01-nat noise floor."""
    y, pred = np.asarray(y, float), np.asarray(pred, float)
    ss = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - float(((y - pred) ** 2).sum()) / ss if ss > 0 else float("nan")
    above = y >= NOISE_FLOOR
    return {
        "r2": r2,
        "spearman": _spearman(y, pred),
        "spearman_above_floor": _spearman(y[above], pred[above]),
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
        pred[te], lo[te], hi[te] = p.predict(table.X[te])
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
        per_group[g] = {"spearman": _spearman(table.y[te], score[te]), "n": len(te)}
    return {"kind": "ranker", "by": "model", "groups": per_group,
            "pooled": {"spearman": _spearman(table.y, score), "n": len(table)}}  # fmt: skip


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
            "spearman": _spearman(table.y[te], score[te]),
            "n": len(te),
        }
    return {"kind": f"baseline:{name}", "by": "model", "groups": per_group,
            "pooled": {"spearman": _spearman(table.y, score), "n": len(table)}}  # fmt: skip


__all__ = [
    "BASELINES",
    "CHEAP_FEATURES",
    "FEATURE_SETS",
    "KINDS",
    "LANDSCAPE_FEATURES",
    "PairwiseRanker",
    "QualityPredictor",
    "Table",
    "build_table",
    "evaluate",
    "evaluate_baseline",
    "evaluate_ranker",
    "feature_row",
    "from_target",
    "group_splits",
    "leave_one_out",
    "metrics",
    "to_target",
]
