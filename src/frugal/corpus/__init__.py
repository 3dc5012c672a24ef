"""Transcribe a corpus: find its files, run them on any executor, resume from a results
table, write outputs atomically (see `run_corpus`)."""

from frugal.corpus.discover import AUDIO_SUFFIXES, CorpusFile, discover, options_hash
from frugal.corpus.run import (
    FORMATS,
    CorpusRun,
    CorpusSettings,
    ModelLoadError,
    run_corpus,
    transcribe_file,
)
from frugal.corpus.store import CorpusStore, FileResult, open_store

__all__ = [
    "AUDIO_SUFFIXES",
    "FORMATS",
    "CorpusFile",
    "CorpusRun",
    "CorpusSettings",
    "CorpusStore",
    "FileResult",
    "ModelLoadError",
    "discover",
    "open_store",
    "options_hash",
    "run_corpus",
    "transcribe_file",
]
