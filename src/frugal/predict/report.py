"""The prediction study's report: held-out accuracy (R², Spearman, MAE, interval coverage)
per predictor, feature set and held-out model or format; predicted-vs-measured plots;
feature importances; and what the features cost against real quantize-and-evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from frugal.plotting import saved_figure
from frugal.predict.model import (
    BASELINES,
    FEATURE_SETS,
    KINDS,
    QualityPredictor,
    Table,
    build_table,
    evaluate,
    evaluate_baseline,
    evaluate_ranker,
)
from frugal.predict.scaling import across_size, noise_floor
from frugal.stats import spearman

MAIN = ("rf", "full")  # the predictor the plots show


def _seconds(feats: dict[str, tuple[float, float]], names) -> float:
    """Seconds of the named features (the probe Hessians count with act_sqnr_db)."""
    wanted = set(names) | ({"cost_input_hessians"} if "act_sqnr_db" in names else set())
    return sum(s for k, (_, s) in feats.items() if k in wanted)


def feature_costs(
    measurements: list[dict], features: dict, names=FEATURE_SETS["full"]
) -> list[dict]:
    """Per model: seconds of the per-model and per-format features in `names` against the
    measured seconds of real quantize-and-evaluate per method; ratios for a first query (a
    new model: all its per-model features) and amortized over every (format, method)."""
    out = []
    models = sorted({r["model"] for r in measurements if r["method"] == "none"})
    for m in models:
        mf = features.get((m, ""), {})
        rows = [r for r in measurements if r["model"] == m and r["method"] != "none"]
        fmts = sorted({r["format"] for r in rows if (m, r["format"]) in features})
        if not mf or not rows or not fmts:
            continue
        model_s = _seconds(mf, names)
        fmt_s = float(np.mean([_seconds(features[(m, f)], names) for f in fmts]))
        real = {
            meth: float(np.mean([r["seconds_quantize"] + r["seconds_eval"] for r in rows
                                 if r["method"] == meth]))
            for meth in sorted({r["method"] for r in rows})
        }  # fmt: skip
        queries = len(rows)
        amortized = model_s / queries + fmt_s / max(1, len(real))
        entry = {"model": m, "model_features_s": model_s, "format_features_s": fmt_s,
                 "queries": queries, **{f"real_{k}_s": v for k, v in real.items()}}  # fmt: skip
        for meth, secs in real.items():
            entry[f"first_query_vs_{meth}"] = (model_s + fmt_s) / secs
            entry[f"amortized_vs_{meth}"] = amortized / secs
        out.append(entry)
    return out


def merge_stores(stores: list[tuple[list[dict], dict]]) -> tuple[list[dict], dict, list[str]]:
    """Measurements and features of several stores as one; a model in more than one store
    keeps the rows of the first that has it. Also the models of the first store."""
    rows, feats, seen = [], {}, set()
    first: list[str] = []
    for k, (ms, fs) in enumerate(stores):
        models = {r["model"] for r in ms} - seen
        rows += [r for r in ms if r["model"] in models]
        feats.update({key: v for key, v in fs.items() if key[0] in models})
        seen |= models
        if k == 0:
            first = sorted(models)
    return rows, feats, first


def run_report(
    measurements: list[dict], features: dict, folder: str | Path, seed: int = 0, trees: int = 200,
    target: str | None = None, law_models: list[str] | None = None,
    max_params: float | None = None,
) -> dict:  # fmt: skip
    """Evaluate every predictor × feature set × held-out grouping; write summary.md,
    report.json and PNGs into `folder`; return the report's numbers. With a `target` model,
    also across size: the predictor trained on smaller models (at most `max_params`) and
    the precision law fitted on `law_models`, both predicting the target's rows."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tables = {k: build_table(measurements, features, names) for k, names in FEATURE_SETS.items()}
    evals: dict[str, dict] = {}
    for fs, table in tables.items():
        for kind in KINDS:
            for by in ("model", "format"):
                ev = evaluate(table, kind, by, seed=seed, trees=trees)
                evals[f"{kind}/{fs}/{by}"] = ev
    table = tables[MAIN[1]]
    main = evals[f"{MAIN[0]}/{MAIN[1]}/model"]
    baselines = {b: evaluate_baseline(table, b) for b in BASELINES}
    rankers = {fs: evaluate_ranker(t) for fs, t in tables.items()}
    carriers = feature_carriers(table)
    pred = QualityPredictor(MAIN[0], seed=seed, trees=trees).fit(table.X, table.y, table.models)
    importances = dict(sorted(pred.importances(table.names).items(), key=lambda kv: -kv[1]))
    costs = {fs: feature_costs(measurements, features, names) for fs, names in FEATURE_SETS.items()}
    across = None
    if target is not None:
        across = across_size(
            table, measurements, target, law_models or [], max_params, MAIN[0], seed, trees
        )
    report = {
        "rows": len(table),
        "models": sorted(set(table.models.tolist())),
        "formats": sorted(set(table.formats.tolist())),
        "evaluations": {
            k: {"groups": v["groups"], "pooled": v["pooled"]} for k, v in evals.items()
        },
        "baselines": {
            k: {"groups": v["groups"], "pooled": v["pooled"]} for k, v in baselines.items()
        },
        "rankers": {k: {"groups": v["groups"], "pooled": v["pooled"]} for k, v in rankers.items()},
        "carriers": carriers,
        "importances": importances,
        "costs": costs,
        "noise": noise_floor(measurements),
        "across_size": across,
        "main": "/".join(MAIN),
    }
    (folder / "report.json").write_text(json.dumps(report, indent=1))
    write_dataset(table, main, folder / "dataset.csv")
    pngs = [_plot_heldout(table, main, folder / "predicted_vs_measured.png"),
            _plot_importances(importances, folder / "importances.png"),
            _plot_bits(measurements, folder / "delta_vs_bits.png")]  # fmt: skip
    (folder / "summary.md").write_text(markdown(report))
    report["files"] = [str(p) for p in pngs if p]
    return report


def write_dataset(table: Table, ev: dict, path: Path) -> Path:
    """One CSV row per measurement: model, format, method, fp32 NLL, measured ΔNLL, its
    held-out-model prediction and interval, then every feature."""
    import csv

    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "format", "method", "fp_nll", "delta_nll", "predicted",
                    "low", "high", *table.names])  # fmt: skip
        for i in range(len(table)):
            w.writerow([
                table.models[i], table.formats[i], table.methods[i], f"{table.fp_nll[i]:.6g}",
                f"{table.y[i]:.6g}", f"{ev['pred'][i]:.6g}", f"{ev['low'][i]:.6g}",
                f"{ev['high'][i]:.6g}", *(f"{v:.6g}" for v in table.X[i]),
            ])  # fmt: skip
    return path


def markdown(report: dict) -> str:
    """Tables: held-out models under the main predictor; every predictor's mean held-out
    Spearman/R²/MAE; importances; costs."""
    ev = report["evaluations"]
    main = ev[f"{report['main'].split('/')[0]}/{report['main'].split('/')[1]}/model"]
    lines = [
        "# Predicting the NLL increase of quantized models",
        "",
        f"{report['rows']} quantized measurements; {len(report['models'])} models; "
        f"{len(report['formats'])} formats; methods RTN and GPTQ. Target: ΔNLL = NLL − NLL(fp32)"
        " on held-out data (nats per token).",
        "",
        f"## Leave-one-model-out, {report['main']} (80% intervals)",
        "",
        "| held-out model | rows | Spearman | Spearman, ΔNLL ≥ 0.01 (rows) | R² | MAE |"
        " interval coverage |",
        "|---|---|---|---|---|---|---|",
    ]
    p = main["pooled"]
    for g, m in [*main["groups"].items(), ("all (pooled)", p)]:
        lines.append(
            f"| {g} | {m['n']} | {_fmt(m['spearman'])} | {_fmt(m['spearman_above_floor'])} "
            f"({m['n_above_floor']}) | {_fmt(m['r2'])} | {m['mae']:.4f} | {m['coverage']:.2f} |"
        )
    lines += [
        "",
        "## Every predictor and feature set",
        "",
        "Mean over held-out groups (and the minimum Spearman of any group).",
        "",
        "| predictor | features | held out | mean Spearman | min Spearman | mean R² | "
        "mean MAE | pooled Spearman |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, v in ev.items():
        kind, fs, by = key.split("/")
        gs = list(v["groups"].values())
        sp = [g["spearman"] for g in gs if np.isfinite(g["spearman"])]
        lines.append(
            f"| {kind} | {fs} | {by} | {_mean(sp)} | {_fmt(min(sp) if sp else None)} | "
            f"{_mean([g['r2'] for g in gs])} | {_mean([g['mae'] for g in gs], 4)} | "
            f"{_fmt(v['pooled']['spearman'])} |"
        )
    lines += _baseline_lines(report)
    lines += _noise_lines(report)
    lines += _across_lines(report)
    lines += _carrier_lines(report)
    lines += ["", "## Feature importances (random forest, all rows)", "",
              "| feature | importance |", "|---|---|"]  # fmt: skip
    lines += [f"| {k} | {v:.3f} |" for k, v in report["importances"].items()]
    lines += [
        "",
        "## Cost of the features against a real quantize-and-evaluate",
        "",
        "Seconds as measured during the collection (same processes and threads). First query:"
        " a new model's per-model features plus one format's; amortized: per (format, method)"
        " of the store.",
        "",
        "| features | model | per-model s | per-format s | real RTN s | real GPTQ s |"
        " first query / GPTQ | amortized / GPTQ |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fs, costs in report["costs"].items():
        for c in costs:
            lines.append(
                f"| {fs} | {c['model']} | {c['model_features_s']:.1f} | "
                f"{c['format_features_s']:.2f} | {c.get('real_rtn_s', float('nan')):.1f} | "
                f"{c.get('real_gptq_s', float('nan')):.1f} | "
                f"{100 * c.get('first_query_vs_gptq', float('nan')):.1f}% | "
                f"{100 * c.get('amortized_vs_gptq', float('nan')):.1f}% |"
            )
    return "\n".join(lines) + "\n"


def _noise_lines(report: dict) -> list[str]:
    noise = report.get("noise") or {}
    if not noise:
        return []
    lines = [
        "",
        "## Noise floor of the measured ΔNLL (two disjoint halves of the held-out data)",
        "",
        "Each row's ΔNLL on either half of the held-out text: the same weights scored on "
        "other text, so their difference is sampling noise alone. SE = rms(ΔA − ΔB)/2 is the "
        "standard error of a row's full-data ΔNLL; the halves' Spearman is how well the noise "
        "lets a ranking of the model's rows be measured at all.",
        "",
        r"| model | rows | SE of ΔNLL (nats) | median \|ΔA − ΔB\| | median \|ΔA − ΔB\| / ΔNLL |"
        " Spearman(ΔA, ΔB) |",
        "|---|---|---|---|---|---|",
    ]
    for m, n in noise.items():
        lines.append(
            f"| {m} | {n['rows']} | {n['se']:.4f} | {n['median_abs_diff']:.4f} | "
            f"{100 * n['relative_median']:.1f}% | {_fmt(n['split_half_spearman'])} |"
        )
    return lines


def _across_lines(report: dict) -> list[str]:
    a = report.get("across_size")
    if not a:
        return []
    law = a["law_params"]
    ints = ", ".join(f"{k} {v:+.2f}" for k, v in law["intercepts"].items())
    lines = [
        "",
        f"## Across size: predicting {a['target']} ({a['target_params'] / 1e9:.2f}B) from "
        "smaller models",
        "",
        f"Predictor ({report['main']}) trained on {', '.join(a['train_models'])}. Law "
        f"ΔNLL = exp(c_method)·2^(−β·bits)·(N/10⁸)^(−α) fitted on "
        f"{', '.join(a['law_models'])} ({law['rows']} rows above 0.01 nats): β = "
        f"{law['beta']:.3f}, α = {law['alpha']:.3f}, c: {ints}.",
        "",
        "| on the target's rows | Spearman | Spearman, ΔNLL ≥ 0.01 | R² | MAE (nats) |",
        "|---|---|---|---|---|",
    ]
    for name, key in (("predictor", "predictor"), ("precision law", "law")):
        m = a[key]
        lines.append(f"| {name} | {_fmt(m['spearman'])} | {_fmt(m['spearman_above_floor'])} | "
                     f"{_fmt(m['r2'])} | {m['mae']:.4f} |")  # fmt: skip
    return lines


def feature_carriers(table: Table, top: int = 4) -> dict[str, list[tuple[str, float]]]:
    """Per model: the features whose values order its rows most like the measured ΔNLL
    (|Spearman| within the model, descriptive: it reads the model's own measurements)."""
    out = {}
    for m in sorted(set(table.models.tolist())):
        idx = table.models == m
        rhos = []
        for j, name in enumerate(table.names):
            x = table.X[idx, j]
            if np.ptp(x) > 0:
                rhos.append((name, spearman(table.y[idx], x)))
        out[m] = sorted(rhos, key=lambda kv: -abs(kv[1]))[:top]
    return out


def _carrier_lines(report: dict) -> list[str]:
    if "carriers" not in report:
        return []
    lines = [
        "",
        "## Features that order each model's rows (Spearman with ΔNLL within the model)",
        "",
        "Descriptive (it reads the model's own measurements): what carries each model's ranking.",
        "",
        "| model | 1st | 2nd | 3rd | 4th |",
        "|---|---|---|---|---|",
    ]
    for m, feats in report["carriers"].items():
        cells = [f"{n} {r:+.3f}" for n, r in feats] + [""] * (4 - len(feats))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines


def _baseline_lines(report: dict) -> list[str]:
    """Per held-out model: the learned predictors' and rankers' Spearman beside one-feature
    rankings."""
    if "baselines" not in report:
        return []
    ev, base, rank = report["evaluations"], report["baselines"], report.get("rankers", {})
    learned = [k for k in ("rf/full/model", "rf/cheap/model", "linear/cheap/model") if k in ev]
    heads = learned + [f"ranker/{fs}" for fs in rank] + ["bits", "RTN SQNR", "quadratic"]
    lines = [
        "",
        "## Learned predictors against one-feature rankings (Spearman per held-out model)",
        "",
        "Rankings by one feature need no training: fewer bits per weight, lower RTN SQNR, or a "
        "larger quadratic estimate (½ Σ over layers of the mean Hessian diagonal, Hutchinson "
        "on the probe, × ‖ΔW_RTN‖²) means more loss. Within one model they already order most "
        "rows; a predictor is worth what it adds over them. The pairwise ranker (logistic on "
        "feature differences of row pairs of one training model, pairs within the noise gap "
        "left out) orders rows without predicting nats.",
        "",
        "| held-out model | " + " | ".join(heads) + " |",
        "|---" * (len(heads) + 1) + "|",
    ]
    for g in ev[learned[0]]["groups"]:
        cells = [_fmt(ev[k]["groups"][g]["spearman"]) for k in learned]
        cells += [_fmt(rank[fs]["groups"][g]["spearman"]) for fs in rank]
        cells += [_fmt(base[b]["groups"][g]["spearman"]) for b in BASELINES]
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    return lines


def _fmt(x, digits: int = 3) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _mean(xs, digits: int = 3) -> str:
    xs = [x for x in xs if x is not None and np.isfinite(x)]
    return _fmt(float(np.mean(xs)) if xs else None, digits)


def _plot_heldout(table: Table, ev: dict, path: Path) -> Path:
    models = sorted(set(table.models.tolist()))
    cols = min(4, len(models))
    rows = -(-len(models) // cols)
    with saved_figure(path, rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False) as (
        fig,
        axes,
    ):
        for ax, m in zip(axes.flat, models, strict=False):
            sel = table.models == m
            for meth, marker in (("rtn", "o"), ("gptq", "^")):
                s = sel & (table.methods == meth)
                ax.errorbar(
                    table.y[s], ev["pred"][s],
                    yerr=[ev["pred"][s] - ev["low"][s], ev["high"][s] - ev["pred"][s]],
                    fmt=marker, ms=4, alpha=0.7, elinewidth=0.6, label=meth,
                )  # fmt: skip
            lim = [
                min(table.y[sel].min(), ev["pred"][sel].min()),
                max(table.y[sel].max(), ev["pred"][sel].max()),
            ]
            ax.plot(lim, lim, "k--", lw=0.8)
            ax.set_xscale("symlog", linthresh=0.01)
            ax.set_yscale("symlog", linthresh=0.01)
            g = ev["groups"][m]
            ax.set_title(f"{m}: ρ={g['spearman']:.2f}", fontsize=9)
            ax.set_xlabel("measured ΔNLL", fontsize=8)
            ax.set_ylabel("predicted ΔNLL", fontsize=8)
            ax.tick_params(labelsize=7)
        for ax in list(axes.flat)[len(models) :]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=7)
        fig.suptitle("Leave-one-model-out: predicted vs measured NLL increase (80% intervals)")
    return path


def _plot_bits(measurements: list[dict], path: Path) -> Path | None:
    """ΔNLL against bits per weight, one panel per method, one colour per model (by size)."""
    fp = {r["model"]: r["nll"] for r in measurements if r["method"] == "none"}
    rows = [r for r in measurements if r["method"] != "none" and r["model"] in fp
            and r.get("nll") is not None and r.get("bits_per_weight")]  # fmt: skip
    if not rows:
        return None
    models = sorted({r["model"] for r in rows}, key=lambda m: next(
        r["params"] for r in rows if r["model"] == m))  # fmt: skip
    methods = sorted({r["method"] for r in rows})
    with saved_figure(path, 1, len(methods), figsize=(4.5 * len(methods), 3.6),
                      squeeze=False) as (_, axes):  # fmt: skip
        for ax, meth in zip(axes[0], methods, strict=True):
            for m in models:
                sel = [r for r in rows if r["model"] == m and r["method"] == meth]
                params = sel[0]["params"] if sel else 0
                ax.scatter([r["bits_per_weight"] for r in sel],
                           [max(r["nll"] - fp[m], 1e-4) for r in sel], s=12,
                           label=f"{m} ({params / 1e6:.0f}M)")  # fmt: skip
            ax.set_yscale("log")
            ax.set_xlabel("bits per weight (scales included)")
            ax.set_ylabel("ΔNLL (nats/token, floored at 1e-4)")
            ax.set_title(meth.upper(), fontsize=10)
        axes[0][0].legend(fontsize=7)
    return path


def _plot_importances(importances: dict[str, float], path: Path) -> Path:
    names = list(importances)[::-1]
    with saved_figure(path, figsize=(6, 0.28 * len(names) + 1)) as (_, ax):
        ax.barh(names, [importances[n] for n in names])
        ax.set_xlabel("impurity importance (random forest)")
    return path


__all__ = ["feature_costs", "markdown", "run_report", "write_dataset"]
