"""frugal's command line: thin wrappers that parse, call one library function, render. One
module per command group; each registers its commands on `app` when imported."""

from frugal.cli import asr, catalogue, flexpoint, lm, quantize, search, sparsify, study  # noqa: F401
from frugal.cli.common import app


def main() -> None:  # pragma: no cover
    app()


__all__ = ["app", "main"]
