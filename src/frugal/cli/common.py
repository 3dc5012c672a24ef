"""What every command shares: the app, the consoles, the common options, and one-line
errors."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="frugal's command line: thin wrappers that parse, call one library function, render.",
)
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from frugal import __version__

        out.print(f"frugal {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="frugal's version, then exit"
        ),
    ] = False,
) -> None:
    """frugal's command line: thin wrappers that parse, call one library function, render.
    `frugal doctor` shows what this installation runs on."""


ModelOpt = Annotated[
    str, typer.Option("--model", "-m", help="tiny.en, base, small, a folder or a hub id")
]
DataOpt = Annotated[str, typer.Option("--data", "-d", help="builtin, a folder or a manifest")]
LimitOpt = Annotated[int | None, typer.Option(help="first N utterances only")]
MethodOpt = Annotated[str, typer.Option(help="decoder: lean (ours) or generate (transformers)")]
ThreadsOpt = Annotated[int | None, typer.Option(help="torch CPU threads (default: torch's)")]
SparsifyOpt = Annotated[
    str | None,
    typer.Option(
        help="encoder sparsification: layer=0,sparsity=0.1[,padding_frames=128,rule=audio,"
        "score=attention,guard=on], a JSON object, or a search's best.json"
    ),
]


def set_threads(n: int | None) -> None:
    if n is not None:
        import torch

        torch.set_num_threads(n)


def fail(msg: str) -> None:
    err.print(f"[red]error:[/red] {escape(msg)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def sparse_encoder_option(spec: str | None):
    if spec is None:
        return None
    from frugal.sparsify import SparsifyConfig, sparse_encoder

    try:
        return sparse_encoder(SparsifyConfig.parse(spec))
    except (ValueError, TypeError, OSError) as exc:
        fail(f"--sparsify {spec!r}: {exc}")


def check_sparsify(asr, encoder) -> None:
    if encoder is not None:
        from frugal.sparsify import check_config

        try:
            check_config(asr, encoder.config)
        except ValueError as exc:
            fail(str(exc))


RayAddressOpt = Annotated[
    str | None,
    typer.Option(help="run on Ray: auto, ray://host:port, or local (pip install frugal\\[ray])"),
]
KernelsOpt = Annotated[
    str,
    typer.Option(
        help="quantized folders: native (int8 encoder weights on the int8 kernel) or "
        "simulated (fp32 values on the format's grid)"
    ),
]


def load_whisper_or_fail(model: str, kernels: str = "native"):
    from frugal.models import load_whisper

    try:
        with err.status(f"loading {model}"):
            return load_whisper(model, kernels=kernels)
    except (OSError, ValueError, ModuleNotFoundError) as exc:
        fail(str(exc))


def csv_list(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())
