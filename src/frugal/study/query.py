"""One prediction for one (model, format, method): train the predictor on every other model
in a collected store, compute the query's features, predict ΔNLL with an interval, and
(optionally) quantize and evaluate for real to compare answers and seconds."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frugal.predict.features import format_features, model_features
from frugal.predict.model import FEATURE_SETS, QualityPredictor, build_table, feature_row
from frugal.quantize import check_method
from frugal.study.collect import CollectConfig, measure_row, stored_name
from frugal.study.store import FP, StudyDB
from frugal.tasks.subjects import load_subject


@dataclass
class Query:
    """What to predict and with which predictor (kind: rf | gb | linear)."""

    model: str
    format: str
    method: str = "gptq"
    kind: str = "rf"
    features: str = "full"
    coverage: float = 0.8
    measure: bool = False


def predict_one(query: Query, store: str | Path, log=print) -> dict:
    """Predicted ΔNLL [low, high] and seconds spent; with `measure`, the real NLL too."""
    check_method(query.method, query.format)
    if query.features not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {query.features!r}; choose cheap or full")
    if not Path(store).is_file():
        raise FileNotFoundError(f"{store}: no such study store (run `frugal study collect`)")
    with StudyDB(store) as db:
        meta = db.get_meta("config")
        if meta is None:
            raise ValueError(f"{store}: holds no collection yet")
        cfg = CollectConfig.from_dict(meta)
        rows, feats = db.measurements(), db.features()
    names = FEATURE_SETS[query.features]
    stored = {r["model"] for r in rows if (r["format"], r["method"]) == FP}
    own = stored_name(query.model, stored)
    train_rows = [r for r in rows if r["model"] != own]  # the query's model is held out
    table = build_table(train_rows, feats, names)
    log(f"predictor: {query.kind} on {len(table)} rows of {len(set(table.models))} other models")
    pred = QualityPredictor(query.kind, query.coverage).fit(table.X, table.y, table.models)

    t0 = time.perf_counter()
    subject = load_subject(query.model, cfg.subject, log)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    fcfg = dataclasses.replace(cfg.features, landscape=query.features != "cheap")
    mf, state = model_features(subject, fcfg)
    model_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ff = format_features(subject, query.format, state, fcfg)
    format_s = time.perf_counter() - t0
    x = feature_row(
        {k: v.value for k, v in mf.items()}, {k: v.value for k, v in ff.items()},
        query.method, names,
    )  # fmt: skip
    t0 = time.perf_counter()
    delta, lo, hi = (float(a[0]) for a in pred.predict_interval(np.array([x])))
    predict_s = time.perf_counter() - t0
    fp_nll = next(
        (r["nll"] for r in rows if r["model"] == own and (r["format"], r["method"]) == FP), None
    )
    out = {
        "model": subject.name,
        "format": query.format,
        "method": query.method,
        "predicted_delta_nll": delta,
        "interval": [lo, hi],
        "coverage": query.coverage,
        "fp_nll": fp_nll,
        "seconds": {
            "load": load_s,
            "model_features": model_s,
            "format_features": format_s,
            "predict": predict_s,
        },
        "training_rows": len(table),
    }
    if query.measure:
        t0 = time.perf_counter()
        fp = subject.nll() if fp_nll is None else fp_nll
        fp_s = time.perf_counter() - t0 if fp_nll is None else 0.0
        row = measure_row(subject, query.format, query.method, cfg)
        real_s = row["seconds_quantize"] + row["seconds_eval"]
        out.update(
            fp_nll=fp,
            measured_nll=row["nll"],
            measured_delta_nll=row["nll"] - fp,
            measured_wer=row["wer"],
            inside_interval=lo <= row["nll"] - fp <= hi,
        )
        out["seconds"].update(quantize=row["seconds_quantize"], evaluate=row["seconds_eval"],
                              fp_evaluate=fp_s)  # fmt: skip
        out["cost_ratio"] = (model_s + format_s + predict_s) / real_s
    return out


__all__ = ["Query", "predict_one"]
