"""`frugal sparsify search`: encoder sparsification search, with its table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from frugal.cli.common import (
    DataOpt,
    ModelOpt,
    ThreadsOpt,
    app,
    err,
    fail,
    load_whisper_or_fail,
    out,
    set_threads,
)

sparsify_app = typer.Typer(no_args_is_help=True, help="Whisper encoder sparsification.")
app.add_typer(sparsify_app, name="sparsify")


@sparsify_app.command("search")
def sparsify_search(
    model: ModelOpt = "tiny.en",
    data: DataOpt = "builtin",
    limit: Annotated[int | None, typer.Option(help="at most N short clips")] = None,
    seed: Annotated[int | None, typer.Option(help="with --limit: a seeded random sample")] = None,
    long_data: Annotated[
        str | None,
        typer.Option(
            help="long recordings (≤ 30 s) for the long stratum, used as they are; "
            "default: --data's utterances joined into 20-30 s clips"
        ),
    ] = None,
    long_limit: Annotated[int | None, typer.Option(help="at most N long clips")] = None,
    strata: Annotated[str, typer.Option(help="short, long, or both")] = "short,long",
    max_wer_increase: Annotated[
        float, typer.Option(help="WER budget over dense on every stratum, points")
    ] = 1.0,
    layers: Annotated[str | None, typer.Option(help="encoder layers, e.g. 0,1,2 (all)")] = None,
    sparsities: Annotated[str, typer.Option(help="coarse grid")] = "0,0.1,0.2,0.3,0.4,0.5,0.6",
    score: Annotated[str, typer.Option(help="frame score of the search")] = "attention",
    rule: Annotated[str, typer.Option(help="keep rule: audio (length-aware) or frames")] = "audio",
    padding_frames: Annotated[
        int, typer.Option(help="rule audio: padding frames kept at most")
    ] = 128,
    baselines: Annotated[
        str, typer.Option(help="scores compared at the winner's setting")
    ] = "attention_cumulative,key_norm,stride,random",
    output: Annotated[
        Path, typer.Option("--out", "-o", help="folder: store, PNG, best.json")
    ] = Path("results/sparsify"),
    warmup: Annotated[
        int, typer.Option(help="untimed decodes before each timed point (0: time the first)")
    ] = 1,
    threads: ThreadsOpt = None,
) -> None:
    """Every (layer, sparsity) measured against dense on short and 20-30 s clips; the budget
    holds on each; resumes from --out's store."""
    from frugal.data import load_dataset
    from frugal.data.datasets import join_utterances
    from frugal.sparsify import SparsifyConfig
    from frugal.sparsify.search import run_search

    set_threads(threads)
    try:
        ds = load_dataset(data, cache=True)
        wanted = [s.strip() for s in strata.split(",") if s.strip()]
        if not wanted or set(wanted) - {"short", "long"}:
            raise ValueError(f"--strata takes short and/or long, not {strata!r}")
        if warmup < 0:
            raise ValueError(f"--warmup takes 0 or more, not {warmup}")
        sets = {}
        if "short" in wanted:
            sets["short"] = ds.take(limit, seed=seed) if limit is not None else ds
        if "long" in wanted:
            longs = load_dataset(long_data) if long_data else join_utterances(ds, 20.0, 30.0)
            sets["long"] = longs.take(long_limit, seed=seed) if long_limit else longs
        layer_list = [int(v) for v in layers.split(",")] if layers else None
        grid = [float(v) for v in sparsities.split(",")]
        base_list = [b for b in baselines.split(",") if b]
        base = SparsifyConfig(0, 0.0, score=score, rule=rule, padding_frames=padding_frames)
    except (OSError, ValueError) as exc:
        fail(str(exc))
    asr = load_whisper_or_fail(model)
    with err.status("searching") as status:
        try:
            result = run_search(
                asr,
                sets,
                output,
                max_wer_increase,
                layer_list,
                grid,
                base,
                base_list,
                warmup=warmup,
                progress=lambda msg: status.update(f"measuring {msg}"),
            )
        except KeyboardInterrupt:
            err.print(
                f"interrupted: measured points are kept in {output / 'search.sqlite'}; "
                "run the same command to resume"
            )
            raise typer.Exit(130) from None
        except ValueError as exc:
            fail(str(exc))
    out.print(_sparsify_table(result))
    if result.best is None:
        out.print(f"no setting within {max_wer_increase} pt of dense on every stratum")
    else:
        out.print(
            f"best within {max_wer_increase:g} pt: {result.guarded.config} (guard: "
            + ", ".join(
                f"{s} {result.compare(result.guarded, s)['guarded']} windows" for s in result.strata
            )
            + ")",
            highlight=False,
        )
        for name, c in result.confirm.items():
            out.print(
                f"  {name}: interleaved re-timing with the guard, dense {c['dense_ms']:.0f} ms, "
                f"sparse {c['sparse_ms']:.0f} ms, {c['speedup']:.2f}x end to end, encoder "
                f"{c['encoder_speedup']:.2f}x",
                highlight=False,
            )
    out.print(
        f"store {output / 'search.sqlite'}, plot {output / 'search.png'}, best "
        f"{output / 'best.json'}",
        highlight=False,
    )


def _sparsify_table(result) -> Table:
    table = Table(
        "kind",
        "stratum",
        "layer",
        "sparsity",
        "score",
        "WER %",
        "Δ pt [95% CI]",
        "e2e ms",
        "enc ms",
        "speed-up",
        "enc speed-up",
        "guarded",
    )
    for r in result.table_rows():
        table.add_row(
            r["kind"],
            r["stratum"],
            str(r["layer"] if r["layer"] is not None else "-"),
            f"{r['sparsity']:.3g}" if r["sparsity"] is not None else "-",
            r["score"],
            f"{r['wer_pct']:.2f}",
            f"{r['wer_delta_pt']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]",
            f"{r['e2e_ms']:.0f}",
            f"{r['encoder_ms']:.0f}",
            f"{r['speedup']:.2f}x",
            f"{r['encoder_speedup']:.2f}x",
            f"{r['guarded']}/{r['windows']}" if r["kind"] == "guarded" else "-",
        )
    return table
