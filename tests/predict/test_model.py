"""Predictors: they beat a constant on a synthetic set with known structure, intervals cover,
and held-out splits never leak a model or format into training."""

from __future__ import annotations

import numpy as np
import pytest

from frugal.predict.model import (
    QualityPredictor,
    ShuffledGroupKFold,
    Table,
    evaluate,
    feature_row,
    from_target,
    leave_one_out,
    metrics,
    to_target,
)


def synthetic(seed: int = 0, models: int = 6, formats: int = 10) -> Table:
    """ΔNLL = curvature(model) · 2^(−2·bits) · (0.3 if gptq) · noise: the quadratic
    model of quantization loss, with features a predictor can see (log curvature, bits,
    method) and one irrelevant feature."""
    rng = np.random.default_rng(seed)
    curv = np.exp(rng.normal(0, 1, models))
    bits = np.linspace(3, 8, formats)
    X, y, mods, fmts, meths = [], [], [], [], []
    for m in range(models):
        for f in range(formats):
            for g in (0, 1):
                d = curv[m] * 2.0 ** (-2 * bits[f]) * 300 * (0.3 if g else 1.0)
                y.append(d * np.exp(rng.normal(0, 0.1)))
                X.append([np.log(curv[m]), bits[f], g, rng.normal()])
                mods.append(f"m{m}")
                fmts.append(f"f{f}")
                meths.append("gptq" if g else "rtn")
    n = len(y)
    return Table(
        np.array(X), np.array(y), ["log_curv", "bits", "method_gptq", "junk"],
        np.array(mods), np.array(fmts), np.array(meths), np.zeros(n), np.zeros(n),
    )  # fmt: skip


def test_target_transform_round_trips_and_keeps_order():
    d = np.array([-0.02, -0.001, 0.0, 0.003, 0.1, 4.0])
    assert np.allclose(from_target(to_target(d)), d)
    assert np.all(np.diff(to_target(d)) > 0)


@pytest.mark.parametrize("kind", ["rf", "gb", "linear"])
def test_predictors_beat_constant_on_held_out_models(kind):
    table = synthetic()
    ours = evaluate(table, kind, "model", trees=40)
    const = evaluate(table, "constant", "model")
    assert ours["pooled"]["mae"] < 0.6 * const["pooled"]["mae"]
    assert ours["pooled"]["spearman"] > 0.9
    assert np.isnan(const["pooled"]["spearman"]) or const["pooled"]["spearman"] < 0.5


def test_intervals_cover_about_as_asked():
    table = synthetic(seed=1, models=8)
    ev = evaluate(table, "rf", "model", coverage=0.8, trees=40)
    assert 0.6 <= ev["pooled"]["coverage"] <= 1.0
    assert np.all(ev["low"] <= ev["pred"]) and np.all(ev["pred"] <= ev["high"])


def test_leave_one_out_never_leaks_a_group():
    groups = np.array(["a", "b", "a", "c", "b", "c", "c"])
    seen = []
    for g, tr, te in leave_one_out(groups):
        assert set(groups[te]) == {g}
        assert g not in set(groups[tr])
        assert len(tr) + len(te) == len(groups)
        seen.append(g)
    assert seen == ["a", "b", "c"]
    folds = list(ShuffledGroupKFold(2, seed=3).split(None, None, groups))
    for tr, te in folds:
        assert not set(groups[tr]) & set(groups[te])
    assert sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(len(groups)))


def test_evaluate_by_format_holds_whole_formats_out():
    table = synthetic(models=3, formats=4)
    ev = evaluate(table, "linear", "format")
    assert sorted(ev["groups"]) == ["f0", "f1", "f2", "f3"]
    assert all(g["n"] == 6 for g in ev["groups"].values())  # 3 models × 2 methods


def test_metrics_on_known_values():
    m = metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    assert m["mae"] == pytest.approx(1 / 3)
    assert m["r2"] == pytest.approx(1 - 1 / 2)
    assert m["spearman"] == pytest.approx(1.0)


def test_predictor_rejects_bad_arguments_and_names_missing_features():
    X, y = np.zeros((4, 2)), np.arange(4.0)
    with pytest.raises(ValueError, match="unknown predictor"):
        QualityPredictor("svm").fit(X, y)
    with pytest.raises(ValueError, match="coverage"):
        QualityPredictor("rf", coverage=1.5).fit(X, y)
    with pytest.raises(KeyError, match="sqnr_db"):
        feature_row({"bits": 4.0}, {}, "rtn", ["bits", "sqnr_db"])


def test_importances_find_the_informative_features():
    table = synthetic()
    p = QualityPredictor("rf", trees=60).fit(table.X, table.y, table.models)
    imp = p.importances(table.names)
    assert abs(sum(imp.values()) - 1) < 1e-9
    assert imp["junk"] < min(imp["bits"], imp["log_curv"])


def test_predictions_stay_within_an_e_fold_of_the_training_targets():
    table = synthetic()
    p = QualityPredictor("linear").fit(table.X, table.y)
    far = table.X[:1].copy()
    far[0, 1] = -100.0  # bits far outside the data: a linear model would explode
    pred, _lo, hi = p.predict_interval(far)
    assert pred[0] <= from_target(to_target(table.y.max()) + 1) + 1e-12
    assert np.isfinite(hi).all()


def test_noise_floor_metric_uses_only_rows_above_it():
    y = np.array([0.0001, -0.0002, 0.0003, 0.02, 0.5, 2.0])
    pred = np.array([0.3, 0.1, 0.2, 0.05, 0.4, 3.0])  # noise rows ranked badly
    m = metrics(y, pred)
    assert m["n_above_floor"] == 3 and m["spearman_above_floor"] == pytest.approx(1.0)
    assert m["spearman"] < 0.9


def test_pairwise_ranker_orders_a_held_out_model_by_within_model_differences():
    from scipy.stats import spearmanr

    from frugal.predict.model import PairwiseRanker

    rng = np.random.default_rng(0)
    X, y, groups = [], [], []
    for m in range(4):
        offset = rng.normal() * 5  # a per-model feature level unrelated to the order
        for _ in range(12):
            bits = rng.uniform(2, 8)
            X.append([-bits, offset + rng.normal() * 0.1])
            y.append(0.01 * np.exp(8 - bits) * (1 + m))  # more loss with fewer bits
            groups.append(f"m{m}")
    X, y, groups = np.array(X), np.array(y), np.array(groups)
    tr = groups != "m3"
    ranker = PairwiseRanker().fit(X[tr], y[tr], groups[tr])
    rho = spearmanr(y[~tr], ranker.score(X[~tr])).statistic
    assert rho > 0.99
    assert abs(ranker.coef_[0]) > 10 * abs(ranker.coef_[1])
    with pytest.raises(ValueError, match="noise gap"):
        PairwiseRanker(min_gap=1e9).fit(X, y, groups)


def test_the_predictor_works_with_sklearn_tooling():
    """clone / get_params / set_params, cross_val_score over LeaveOneGroupOut, and predict()
    equal to the middle of predict_interval()."""
    from sklearn.base import clone
    from sklearn.model_selection import LeaveOneGroupOut, cross_val_score

    table = synthetic(models=4)
    p = QualityPredictor("linear", coverage=0.7)
    assert p.get_params() == {"kind": "linear", "coverage": 0.7, "seed": 0, "folds": 4,
                              "trees": 200}  # fmt: skip
    q = clone(p).set_params(kind="rf", trees=30)
    assert (q.kind, q.trees, p.kind) == ("rf", 30, "linear")
    scores = cross_val_score(
        q, table.X, table.y, groups=table.models, cv=LeaveOneGroupOut(),
        scoring="neg_mean_absolute_error",
    )  # fmt: skip
    assert len(scores) == 4 and np.all(np.isfinite(scores))
    q.fit(table.X, table.y, table.models)
    mid, lo, hi = q.predict_interval(table.X)
    assert np.array_equal(q.predict(table.X), mid) and np.all((lo <= mid) & (mid <= hi))
    # the target transform is the asinh one, and the fitted regressor learned it
    assert q.model_.func is to_target and q.model_.inverse_func is from_target
