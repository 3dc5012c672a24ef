"""Across model size: the noise floor of each model's measured ΔNLL (two disjoint halves of
its held-out data), a predictor trained on smaller models and asked about a larger one, and
a law of ΔNLL in bits per weight and parameter count fitted on the smaller models beside it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from frugal.predict.model import QualityPredictor, Table, metrics
from frugal.stats import spearman


def noise_floor(measurements: list[dict]) -> dict[str, dict[str, float]]:
    """Per model with split-half rows: ΔA and ΔB, the ΔNLL of each row on the two disjoint
    halves of the held-out data. Their difference is pure sampling noise (the same weights,
    other text), so rms(ΔA − ΔB)/2 estimates the standard error of the full-data ΔNLL; the
    halves' Spearman says how far that noise scrambles the model's ranking."""
    fp = {
        r["model"]: (r.get("record") or {}).get("nll_halves")
        for r in measurements
        if r["method"] == "none"
    }
    out = {}
    for model, halves in sorted(fp.items()):
        if not halves:
            continue
        da, db, delta = [], [], []
        for r in measurements:
            h = (r.get("record") or {}).get("nll_halves")
            if r["model"] != model or r["method"] == "none" or not h or r.get("nll") is None:
                continue
            da.append(h[0] - halves[0])
            db.append(h[1] - halves[1])
            delta.append((h[0] - halves[0] + h[1] - halves[1]) / 2)
        if len(da) < 3:
            continue
        diff = np.abs(np.subtract(da, db))
        out[model] = {
            "rows": len(da),
            "se": float(np.sqrt(np.mean(diff**2)) / 2),
            "median_abs_diff": float(np.median(diff)),
            "relative_median": float(np.median(diff / np.maximum(np.abs(delta), 1e-12))),
            "split_half_spearman": spearman(np.array(da), np.array(db)),
        }
    return out


@dataclass
class PrecisionLaw:
    """ΔNLL = exp(c_method) · 2^(−β·bits) · (N/10⁸)^(−α): bits per weight (scales
    included), N parameters. In the quadratic regime ΔNLL ∝ noise power ∝ 2^(−2·bits), so β
    near 2 is what theory expects; α > 0 says larger models lose less at equal bits."""

    beta: float
    alpha: float
    intercepts: dict[str, float]
    rows: int

    @classmethod
    def fit(cls, bits, params, methods, delta, floor: float = 0.01) -> PrecisionLaw:
        """Least squares on log ΔNLL over rows above `floor` nats (below it the measured
        ΔNLL is mostly noise and may be ≤ 0, where the log is undefined)."""
        bits, params, delta = (np.asarray(a, float) for a in (bits, params, delta))
        methods = np.asarray(methods)
        keep = delta > floor
        names = sorted(set(methods[keep].tolist()))
        if keep.sum() < len(names) + 3:
            raise ValueError(f"too few rows above {floor} nats to fit the law")
        cols = [-bits[keep] * math.log(2), -np.log(params[keep] / 1e8)]
        cols += [(methods[keep] == m).astype(float) for m in names]
        coef, *_ = np.linalg.lstsq(np.stack(cols, 1), np.log(delta[keep]), rcond=None)
        intercepts = dict(zip(names, map(float, coef[2:]), strict=True))
        return cls(float(coef[0]), float(coef[1]), intercepts, int(keep.sum()))

    def predict(self, bits, params, methods) -> np.ndarray:
        """ΔNLL (nats/token); a method with no fitted row above the floor gets the mean of
        the fitted methods' intercepts."""
        bits, params = np.asarray(bits, float), np.asarray(params, float)
        mean_c = float(np.mean(list(self.intercepts.values())))
        c = np.array([self.intercepts.get(m, mean_c) for m in methods])
        return np.exp(c - self.beta * bits * math.log(2) - self.alpha * np.log(params / 1e8))


def _bits_params(measurements: list[dict]) -> dict[tuple[str, str, str], tuple[float, float]]:
    return {
        (r["model"], r["format"], r["method"]): (r["bits_per_weight"], r["params"])
        for r in measurements
        if r["method"] != "none" and r.get("bits_per_weight") is not None
    }


def across_size(
    table: Table,
    measurements: list[dict],
    target: str,
    law_models: Sequence[str],
    max_params: float | None = None,
    kind: str = "rf",
    seed: int = 0,
    trees: int = 200,
) -> dict:
    """Train the predictor on every model with at most `max_params` parameters (default:
    every model smaller than `target`), predict all of `target`'s rows; fit the precision
    law on `law_models` (smaller models of the target's kind) and predict the same rows."""
    size = _bits_params(measurements)
    params = {m: p for (m, _, _), (_, p) in size.items()}
    if target not in params or target not in set(table.models.tolist()):
        raise ValueError(f"{target}: no rows with features to predict")
    limit = params[target] - 1 if max_params is None else max_params
    train_models = sorted(m for m in set(table.models.tolist())
                          if m != target and params.get(m, math.inf) <= limit)  # fmt: skip
    if not train_models:
        raise ValueError(f"no model with at most {limit:.3g} parameters to train on")
    tr = np.isin(table.models, train_models)
    te = table.models == target
    pred = QualityPredictor(kind, seed=seed, trees=trees).fit(
        table.X[tr], table.y[tr], table.models[tr]
    )
    y_hat = pred.predict(table.X[te])
    keys = list(zip(table.models, table.formats, table.methods, strict=True))
    law_rows = [i for i, k in enumerate(keys) if k[0] in law_models and k[0] != target]

    def bits_params(idx):
        return [size[keys[i]][0] for i in idx], [size[keys[i]][1] for i in idx]

    law = PrecisionLaw.fit(*bits_params(law_rows), table.methods[law_rows], table.y[law_rows])
    te_idx = np.flatnonzero(te)
    law_hat = law.predict(*bits_params(te_idx), table.methods[te_idx])
    return {
        "target": target,
        "target_params": params[target],
        "train_models": train_models,
        "law_models": sorted(set(law_models) - {target}),
        "predictor": metrics(table.y[te], y_hat),
        "law": metrics(table.y[te], law_hat),
        "law_params": {
            "beta": law.beta,
            "alpha": law.alpha,
            "intercepts": law.intercepts,
            "rows": law.rows,
        },
        "rows": [
            {
                "format": str(table.formats[i]),
                "method": str(table.methods[i]),
                "measured": float(table.y[i]),
                "predicted": float(p),
                "law": float(q),
            }
            for i, p, q in zip(te_idx, y_hat, law_hat, strict=True)
        ],
    }


__all__ = ["PrecisionLaw", "across_size", "noise_floor"]
