"""The stored format catalogue `frugal formats` reads is what the formats compute."""

import json
from pathlib import Path

import frugal
from frugal.formats import catalogue


def test_stored_catalogue_equals_the_formats():
    stored = json.loads(catalogue.FILE.read_text())
    assert stored == json.loads(
        json.dumps(catalogue.compute())
    )  # rerun: python -m frugal.formats.catalogue
    # the command reads it by this path (importing frugal.formats would import torch)
    assert Path(frugal.__file__).parent / "formats" / "catalogue.json" == catalogue.FILE
    names = [r["name"] for r in stored["rows"]]
    assert "int8_pc" in names and "mxfp4" in names and len(names) == len(set(names))
