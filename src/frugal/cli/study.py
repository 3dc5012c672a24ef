"""`frugal study ...` and `frugal predict`: the PTQ-vs-QAT study, the prediction study's
collection and report, and predicting a quantized model's quality."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from frugal.cli.common import (
    DataOpt,
    ModelOpt,
    RayAddressOpt,
    ThreadsOpt,
    app,
    csv_list,
    err,
    fail,
    out,
    set_threads,
)

study_app = typer.Typer(no_args_is_help=True, help="Published-style studies.")
app.add_typer(study_app, name="study")


@study_app.command("ptq-vs-qat")
def study_ptq_vs_qat(
    model: ModelOpt = "tiny.en",
    formats: Annotated[str, typer.Option(help="comma-separated weight formats")] = (
        "mxint8,mxint6,mxint4,mxint3,mxfp4,int4_g128"
    ),
    budget: Annotated[
        int, typer.Option(help="calibration utterances or text windows, every method")
    ] = 128,
    data: DataOpt = "builtin",
    output: Annotated[Path | None, typer.Option("--out", "-o", help="results folder")] = None,
    methods: Annotated[str, typer.Option(help="comma-separated: rtn,gptq,qat")] = "rtn,gptq,qat",
    split: Annotated[
        str,
        typer.Option(help="speech: random (utterances), voice (held-out voices) or engine"),
    ] = "random",
    heldout_voices: Annotated[int, typer.Option(help="voices kept out (--split voice)")] = 4,
    calibration_text: Annotated[
        str, typer.Option(help="LMs: calibration text (pydoc, sentences or a file)")
    ] = "pydoc",
    heldout_text: Annotated[
        str, typer.Option(help="LMs: held-out text (pydoc, sentences or a file)")
    ] = "sentences",
    context: Annotated[int, typer.Option(help="LMs: tokens per window")] = 128,
    steps: Annotated[int, typer.Option(help="QAT optimizer steps (one batch each)")] = 32,
    lr: Annotated[float, typer.Option(help="QAT learning rate")] = 1e-4,
    learnable_scales: Annotated[bool, typer.Option(help="QAT: learn a scale per row")] = False,
    act_order: Annotated[bool, typer.Option(help="GPTQ act-order")] = False,
    heldout: Annotated[int | None, typer.Option(help="at most N held-out utterances")] = None,
    no_wer: Annotated[bool, typer.Option("--no-wer", help="skip WER (NLL only)")] = False,
    seed: int = 0,
    threads: ThreadsOpt = None,
) -> None:
    """RTN vs GPTQ vs QAT on the same calibration budget: global (held-out NLL, WER) and
    local (layer output MSE) objectives, their rank correlation, loss along the line from
    full precision; resumes from the results folder. The model is a Whisper or a causal LM
    (smollm2-135m, a folder), calibrated on one text and held out on another."""
    from frugal.quantize import GPTQConfig, QATConfig
    from frugal.study.ptq_vs_qat import StudyConfig, markdown_table, run_study, write_report

    try:
        cfg = StudyConfig(
            model=model,
            formats=list(csv_list(formats)),
            methods=list(csv_list(methods)),
            data=data,
            budget=budget,
            seed=seed,
            split=split,
            heldout_voices=heldout_voices,
            calibration_text=calibration_text,
            heldout_text=heldout_text,
            context=context,
            gptq=GPTQConfig(act_order=act_order),
            qat=QATConfig(steps=steps, lr=lr, learnable_scales=learnable_scales, seed=seed),
            heldout=heldout,
            wer=not no_wer,
            threads=threads,
        )
    except ValueError as exc:
        fail(str(exc))
    folder = output or Path("results") / "ptq_vs_qat" / Path(model).name
    try:
        rows = run_study(cfg, folder, log=lambda m: err.print(m, highlight=False))
    except (OSError, ValueError, ModuleNotFoundError) as exc:
        fail(str(exc))
    paths = write_report(rows, folder)
    out.print(markdown_table(rows), highlight=False)
    out.print(f"results: {paths['json']} (+ summary.md, PNGs)", highlight=False)


StoreOpt = Annotated[
    Path, typer.Option("--store", "-s", help="SQLite file of the prediction study")
]
DEFAULT_STORE = Path("results/predict/study.sqlite")


def _collect_defaults() -> tuple[str, str]:
    from frugal.study.collect import DEFAULT_FORMATS, DEFAULT_MODELS

    return ",".join(DEFAULT_MODELS), ",".join(DEFAULT_FORMATS)


@study_app.command("collect")
def study_collect(
    models: Annotated[
        str | None, typer.Option(help="comma-separated: tiny.en, base, zoo:<name>, folders")
    ] = None,
    formats: Annotated[str | None, typer.Option(help="comma-separated weight formats")] = None,
    methods: Annotated[str, typer.Option(help="comma-separated: rtn,gptq")] = "rtn,gptq",
    store: StoreOpt = DEFAULT_STORE,
    calibration: Annotated[int, typer.Option(help="calibration utterances / windows")] = 32,
    heldout: Annotated[int, typer.Option(help="held-out utterances (speech)")] = 16,
    heldout_tokens: Annotated[int, typer.Option(help="held-out tokens (text)")] = 16384,
    probe: Annotated[int, typer.Option(help="probe examples for landscape features")] = 4,
    data: DataOpt = "builtin",
    text: Annotated[list[Path] | None, typer.Option(help="text file(s) for folder LMs")] = None,
    zoo_dir: Annotated[Path, typer.Option(help="where zoo LMs are trained/kept")] = Path(
        "results/zoo"
    ),
    no_wer: Annotated[bool, typer.Option("--no-wer", help="skip WER (NLL only)")] = False,
    no_features: Annotated[bool, typer.Option("--no-features", help="measure only")] = False,
    workers: Annotated[int, typer.Option(help="worker processes (or Ray workers)")] = 1,
    threads: Annotated[int, typer.Option(help="torch threads per worker (0: cores/workers)")] = 0,
    retry_failed: Annotated[bool, typer.Option(help="re-run rows that failed before")] = False,
    seed: int = 0,
    ray_address: RayAddressOpt = None,
) -> None:
    """Measure (model, format, method) → held-out NLL and WER, plus the cheap features, into
    a SQLite store; rows land as they complete and a rerun resumes (models and formats may
    be added)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from frugal.study.collect import CollectConfig, collect
    from frugal.tasks.subjects import SubjectConfig

    dm, df = _collect_defaults()
    try:
        cfg = CollectConfig(
            models=csv_list(models or dm),
            formats=csv_list(formats or df),
            methods=csv_list(methods),
            subject=SubjectConfig(
                calibration=calibration,
                heldout=heldout,
                heldout_tokens=heldout_tokens,
                probe=probe,
                seed=seed,
                data=data,
                text=tuple(str(t) for t in text or ()),
                wer=not no_wer,
                zoo_dir=str(zoo_dir),
            ),
            with_features=not no_features,
            workers=workers,
            threads=threads,
        )
    except ValueError as exc:
        fail(str(exc))
    cols = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn())  # fmt: skip
    with Progress(*cols, console=err, transient=True) as bar:
        task = bar.add_task("collecting", total=None)
        try:
            counts = collect(
                cfg, store, log=lambda m: bar.console.print(m, highlight=False),
                retry_failed=retry_failed,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
                ray_address=ray_address,
            )  # fmt: skip
        except (OSError, ValueError) as exc:
            fail(str(exc))
    out.print(
        f"{counts['stored']} rows stored, {counts['failed']} failed, {counts['jobs']} jobs run;"
        f" store: {store}",
        highlight=False,
    )


@study_app.command("predict-report")
def study_predict_report(
    store: Annotated[
        list[Path] | None,
        typer.Option(
            help="study store(s) (SQLite); repeat to pool several: a model in more "
            "than one keeps the first store's rows"
        ),
    ] = None,
    output: Annotated[Path, typer.Option("--out", "-o", help="report folder")] = Path(
        "results/predict/report"
    ),
    target: Annotated[
        str | None,
        typer.Option(
            help="across size: predict this model's rows from smaller models only "
            "(the precision law is fitted on the first store's other models)"
        ),
    ] = None,
    max_params: Annotated[
        float | None,
        typer.Option(
            help="across size: train on models with at most this many "
            "parameters (default: every model smaller than --target)"
        ),
    ] = None,
    trees: Annotated[int, typer.Option(help="trees of the forests / boosting stages")] = 200,
    seed: int = 0,
) -> None:
    """Leave-one-model-out and leave-one-format-out accuracy of every predictor (R²,
    Spearman, MAE, interval coverage), the noise floor of each model's ΔNLL, plots, feature
    importances and feature costs; with --target, prediction across model size."""
    from frugal.predict.report import merge_stores, run_report
    from frugal.study.store import StudyDB

    loaded = []
    for path in store or [DEFAULT_STORE]:
        if not path.is_file():
            fail(f"{path}: no such study store (run `frugal study collect`)")
        with StudyDB(path) as db:
            loaded.append((db.measurements(), db.features()))
    rows, feats, first = merge_stores(loaded)
    if target is not None and target not in first:
        fail(f"--target {target}: not a model of {(store or [DEFAULT_STORE])[0]}")
    try:
        report = run_report(rows, feats, output, seed, trees, target, first, max_params)
    except ValueError as exc:
        fail(str(exc))
    out.print((output / "summary.md").read_text(), highlight=False)
    out.print(f"report: {output} ({', '.join(Path(f).name for f in report['files'])})")


@app.command()
def predict(
    model: ModelOpt = "tiny.en",
    fmt: Annotated[str, typer.Option("--format", "-f", help="weight format")] = "mxint4",
    method: Annotated[str, typer.Option(help="rtn or gptq")] = "gptq",
    store: StoreOpt = DEFAULT_STORE,
    kind: Annotated[str, typer.Option(help="predictor: rf, gb or linear")] = "rf",
    features: Annotated[str, typer.Option(help="feature set: cheap or full")] = "full",
    coverage: Annotated[float, typer.Option(help="interval coverage")] = 0.8,
    measure: Annotated[
        bool, typer.Option(help="also quantize and evaluate for real, and compare")
    ] = False,
    threads: ThreadsOpt = None,
) -> None:
    """Predict the held-out NLL increase of quantizing MODEL to FORMAT with METHOD, from a
    predictor trained on every other model of the store; --measure checks it for real."""
    from frugal.study.query import Query, predict_one

    set_threads(threads)
    q = Query(model, fmt, method, kind, features, coverage, measure)
    try:
        r = predict_one(q, store, log=lambda m: err.print(m, highlight=False))
    except (OSError, ValueError, KeyError) as exc:
        fail(str(exc).strip("'\""))
    lo, hi = r["interval"]
    s = r["seconds"]
    pred_s = s["model_features"] + s["format_features"] + s["predict"]
    line = (
        f"{r['model']} {r['format']} {r['method']}: predicted ΔNLL {r['predicted_delta_nll']:+.4f}"
    )
    line += f" [{lo:+.4f}, {hi:+.4f}] ({100 * r['coverage']:.0f}% interval)"
    if r["fp_nll"] is not None:
        line += f", NLL {r['fp_nll'] + r['predicted_delta_nll']:.4f}"
    out.print(line, highlight=False)
    out.print(
        f"prediction: {pred_s:.1f} s (model features {s['model_features']:.1f} s, format "
        f"features {s['format_features']:.1f} s; model load {s['load']:.1f} s not counted)",
        highlight=False,
    )
    if measure:
        real_s = s["quantize"] + s["evaluate"]
        out.print(
            f"measured: ΔNLL {r['measured_delta_nll']:+.4f}, NLL {r['measured_nll']:.4f}"
            + (f", WER {r['measured_wer']:.2f}" if r.get("measured_wer") is not None else "")
            + f" ({'inside' if r['inside_interval'] else 'OUTSIDE'} the interval) in "
            f"{real_s:.1f} s (quantize {s['quantize']:.1f} s + evaluate {s['evaluate']:.1f} s);"
            f" prediction cost {100 * r['cost_ratio']:.1f}% of it",
            highlight=False,
        )
