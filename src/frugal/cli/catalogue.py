"""`frugal models`, `frugal formats` and `frugal doctor`: what frugal loads by name, its number
formats, and what this installation runs on."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from frugal.cli.common import (
    app,
    out,
)


@app.command()
def models() -> None:
    """List the Whisper checkpoints and causal LMs that frugal can load by name."""
    from frugal.models import CHECKPOINTS
    from frugal.models.packaged_lm import PACKAGED_LMS

    table = Table("Whisper", "installed", "description", "install")
    for c in CHECKPOINTS.values():
        table.add_row(c.name, c.status(), c.description, escape(c.install))
    out.print(table)
    lms = Table("causal LM", "family", "parameters", "installed", "weights stored as", "install")
    for m in PACKAGED_LMS.values():
        lms.add_row(m.name, m.family, m.parameters, m.status(), m.stored_as, escape(m.install))
    out.print(lms)
    out.print(
        "LMs are dequantized from their GGUF file: the reference every LM result compares "
        "against sits on those grids. Also: a faster-whisper folder (model.bin), a "
        "transformers folder, or a hub id."
    )


@app.command()
def formats() -> None:
    """List number formats with their bits per element (shared scales included)."""
    import json
    from pathlib import Path

    import frugal

    # computed from the formats and stored (frugal.formats.catalogue): read by path, since
    # importing frugal.formats would import torch
    path = Path(frugal.__file__).parent / "formats" / "catalogue.json"
    catalogue = json.loads(path.read_text())
    table = Table("name", "bits/element", "kind", "stored", "runs on (CPU)")
    for row in catalogue["rows"]:
        table.add_row(
            row["name"],
            f"{row['bits']:g}",
            row["kind"],
            row["stored"],
            row["kernel"] or "simulated (fp32 on the grid)",
        )
    out.print(table)
    out.print(f"Grammar: {catalogue['grammar']}", highlight=False)


@app.command()
def doctor(
    as_json: Annotated[
        bool, typer.Option("--json", help="one JSON object instead of tables")
    ] = False,
) -> None:
    """Versions, threads, the CPU capabilities torch uses, installed models and extras, native
    kernels: what to paste into a bug report."""
    from frugal.doctor import collect

    report = collect()
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
        return
    for section, rows in report.sections.items():
        table = Table(title=section, title_justify="left", show_header=False)
        table.add_column(style="bold")
        table.add_column()
        for key, value in rows:
            table.add_row(escape(key), escape(value))
        out.print(table)
