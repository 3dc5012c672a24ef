"""Named offline text sources."""

import pytest

from frugal.data.text import TEXT_SOURCES, text_corpus


def test_named_sources_are_english_and_distinct():
    pydoc, sentences = text_corpus("pydoc"), text_corpus("sentences")
    assert len(pydoc) > 300_000 and "def " in pydoc  # technical text with code
    lines = sentences.splitlines()
    assert len(lines) == 175 and "def " not in sentences
    assert not set(lines) & set(pydoc.splitlines())
    assert set(TEXT_SOURCES) == {"pydoc", "sentences"}


def test_files_and_bad_names(tmp_path):
    (tmp_path / "a.txt").write_text("hello there")
    assert text_corpus(str(tmp_path / "a.txt")) == "hello there"
    (tmp_path / "e.txt").write_text(" \n")
    with pytest.raises(ValueError, match="empty"):
        text_corpus(str(tmp_path / "e.txt"))
    with pytest.raises(FileNotFoundError, match="named sources: pydoc, sentences"):
        text_corpus("wikitext")
