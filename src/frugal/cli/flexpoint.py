"""`frugal flexpoint demo`: Flexpoint training experiments."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from frugal.cli.common import (
    ThreadsOpt,
    app,
    err,
    out,
    set_threads,
)

flexpoint_app = typer.Typer(no_args_is_help=True, help="Flexpoint (flexN+M) experiments.")
app.add_typer(flexpoint_app, name="flexpoint")


@flexpoint_app.command("demo")
def flexpoint_demo(
    output: Annotated[Path, typer.Option("--out", "-o", help="folder for PNG and JSON")] = Path(
        "results/flexpoint"
    ),
    seeds: Annotated[int, typer.Option(help="seeds per task and mode")] = 2,
    cnn_steps: int = 600,
    sort_steps: int = 1500,
    threads: ThreadsOpt = None,
) -> None:
    """Train a digits CNN and a sorting transformer in fp32, flex16+5 and fixed16_f8."""
    from rich.progress import Progress

    from frugal.train.flexpoint_demo import MODES, run_demo

    set_threads(threads)
    total = len(MODES) * seeds * (cnn_steps + sort_steps)
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("training", total=total)
        result = run_demo(output, seeds, cnn_steps, sort_steps, progress=lambda: bar.advance(task))
    table = Table("task", "mode", "seeds", "val acc", "val loss", "s/run", "Autoflex overflows")
    for r in result["summary"]:
        table.add_row(
            r["task"],
            r["mode"],
            str(r["seeds"]),
            f"{r['val_acc_mean']:.4f} ± {r['val_acc_std']:.4f}",
            f"{r['val_loss_mean']:.4f} ± {r['val_loss_std']:.4f}",
            f"{r['seconds_mean']:.1f}",
            str(r["overflows"]),
        )
    out.print(table)
    out.print(
        f"curves: {result['png']}\nresults: {output / 'flexpoint_results.json'}", highlight=False
    )
