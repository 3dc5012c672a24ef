"""`frugal search`, `search-report`, `search-export`: predictor-guided multi-objective search."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from frugal.cli.common import (
    RayAddressOpt,
    app,
    err,
    fail,
    out,
)


@app.command()
def search(
    problem: Annotated[
        str,
        typer.Option(
            help="zdt1, mixed-precision, whisper-joint, whisper-joint-nll or whisper-subnet"
        ),
    ] = "zdt1",
    algorithm: Annotated[str, typer.Option(help="random, nsga2 or linas")] = "linas",
    budget: Annotated[
        float, typer.Option(help="real measurements in total (full equivalents with --halving)")
    ] = 200,
    workers: Annotated[int, typer.Option(help="measurement processes (or Ray workers)")] = 1,
    name: Annotated[str, typer.Option(help="the search's name (resumes when it exists)")] = "run1",
    ray_address: RayAddressOpt = None,
    folder: Annotated[Path, typer.Option("--dir", help="where searches live")] = Path(
        "results/search"
    ),
    batch: Annotated[int, typer.Option(help="configurations per round")] = 20,
    generations: Annotated[
        int, typer.Option(help="LINAS: NSGA-II generations on predictors")
    ] = 250,
    predictor: Annotated[
        str,
        typer.Option(
            help="LINAS surrogate: auto, ridge, svr, stack; with spread: gp, ensemble, forest"
        ),
    ] = "auto",
    selection: Annotated[
        str, typer.Option(help="LINAS batch: front (predicted front) or ehvi (expected HV gain)")
    ] = "front",
    limit: Annotated[
        list[str] | None,
        typer.Option(help="upper limit on an objective, e.g. wer=15 (repeatable)"),
    ] = None,
    halving: Annotated[
        int, typer.Option(help="successive halving over the problem's fidelities with this eta")
    ] = 0,
    seed: int = 0,
) -> None:
    """Multi-objective search with live progress (measurements, hypervolume); every
    measurement is stored as it completes, so rerunning the same --name resumes."""
    from rich.progress import BarColumn, Progress, TextColumn

    from frugal.search.session import SearchConfig, run_named

    limits = {}
    for item in limit or []:
        key, sep, value = item.partition("=")
        try:
            limits[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            fail(f"--limit {item!r}: expected objective=number, e.g. wer=15")
    cfg = SearchConfig(problem, algorithm, budget, batch, seed, generations, predictor,
                       selection, limits, halving)  # fmt: skip
    cols = (TextColumn("{task.description}"), BarColumn(),
            TextColumn("{task.completed:.4g}/{task.total:.4g}"),
            TextColumn("{task.fields[hv]}"))  # fmt: skip
    with Progress(*cols, console=err, transient=True) as bar:
        task = bar.add_task("measured", total=budget, hv="")

        def show(p) -> None:
            hv = "" if p.hypervolume is None else f"HV {p.hypervolume:.4g}"
            bar.update(
                task, completed=p.measured, hv=hv + (f", {p.failed} failed" * bool(p.failed))
            )

        try:
            res = run_named(cfg, name, folder, workers, show, ray_address)
        except ValueError as exc:
            fail(str(exc))
    hv = "—" if res["hypervolume"] is None else f"{res['hypervolume']:.6g}"
    out.print(
        f"{res['measured']} measurements ({res['failed']} failed); hypervolume {hv} "
        f"(reference point {res['reference_point']}); files in {res['folder']}",
        highlight=False,
    )


@app.command("search-export")
def search_export(
    name: Annotated[str, typer.Argument(help="the stored search's name")],
    storage: Annotated[str, typer.Option(help="an Optuna storage URL")] = "sqlite:///optuna.db",
    study_name: Annotated[
        str | None, typer.Option(help="the new study's name (default: the search's)")
    ] = None,
    folder: Annotated[Path, typer.Option("--dir", help="where searches live")] = Path(
        "results/search"
    ),
) -> None:
    """Write a stored search into an Optuna storage as a new study, for optuna-dashboard and
    Optuna's plots (pip install 'frugal\\[optuna]')."""
    from frugal.search.session import export_named

    try:
        study, n = export_named(name, storage, study_name, folder)
    except (ValueError, ImportError) as exc:
        fail(str(exc))
    out.print(f"{n} trials written to study {study!r} in {storage}", highlight=False)


@app.command("search-report")
def search_report(
    folder: Annotated[Path, typer.Option("--dir", help="where searches live")] = Path(
        "results/search"
    ),
) -> None:
    """Hypervolume against measurements of every stored search, one plot per problem, so
    algorithms run under different --name values can be compared."""
    from frugal.search.session import compare_named

    try:
        paths = compare_named(folder)
    except ValueError as exc:
        fail(str(exc))
    for p in paths:
        out.print(str(p), highlight=False)
