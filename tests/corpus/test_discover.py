"""Finding a corpus's files: nested folders, odd extensions, manifests, globs, problems; the
resume key."""

import json
import os
from pathlib import Path

from frugal.corpus import CorpusFile, discover, options_hash


def _tree(root: Path) -> None:
    for rel in (
        "a/x.wav",
        "a/b/y.FLAC",
        "a/b/c/z.mp3",
        "a/notes.txt",
        "a/.hidden.wav",
        "a/b/w.Opus",
    ):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"RIFF" + bytes(len(rel)))
    (root / "a/.cache").mkdir()
    (root / "a/.cache/q.wav").write_bytes(b"0")
    (root / "empty").mkdir()


def test_folder_recursive_by_audio_extension(tmp_path):
    _tree(tmp_path)
    files, problems = discover([tmp_path / "a"])
    assert problems == []
    assert [str(f.rel) for f in files] == ["x", "b/w", "b/y", "b/c/z"]
    assert all(f.path.is_absolute() and f.size > 0 and f.mtime_ns > 0 for f in files)


def test_several_inputs_manifest_glob_and_problems(tmp_path):
    _tree(tmp_path)
    man = tmp_path / "a" / "list.jsonl"
    man.write_text(
        "\n".join(json.dumps({"audio": a}) for a in ("x.wav", "b/y.FLAC", str(tmp_path / "o.wav")))
    )
    (tmp_path / "o.wav").write_bytes(b"1234")
    files, problems = discover(
        [man, str(tmp_path / "a" / "**" / "*.mp3"), tmp_path / "empty", tmp_path / "nope.wav"]
    )
    rels = [str(f.rel) for f in files]
    # the manifest's files under its name, the glob's relative to its fixed part
    assert rels == ["list/x", "list/b/y", "list/o", "b/c/z"]
    assert sorted(problems) == [
        (str(tmp_path / "empty"), "folder holds no audio files"),
        (str(tmp_path / "nope.wav"), "not found"),
    ]
    # the same file named twice is one file; two files that would share an output do not
    again, _ = discover([tmp_path / "a" / "x.wav", tmp_path / "a" / "x.wav", tmp_path / "o.wav"])
    assert [str(f.rel) for f in again] == ["x", "o"]
    (tmp_path / "x.flac").write_bytes(b"12")
    clash, _ = discover([tmp_path / "a" / "x.wav", tmp_path / "x.flac"])
    assert [str(f.rel) for f in clash] == ["x", "x__2"]
    nothing, problems = discover([str(tmp_path / "*.ogg")])
    assert nothing == [] and problems == [(str(tmp_path / "*.ogg"), "matches no file")]


def test_resume_key_follows_file_and_settings(tmp_path):
    p = tmp_path / "x.wav"
    p.write_bytes(b"1234")
    (f,), _ = discover([p])
    h = options_hash({"model": "tiny.en", "formats": ["txt"]})
    assert h == options_hash({"formats": ["txt"], "model": "tiny.en"})  # order-free
    assert f.key(h) == CorpusFile(f.path, Path("other"), f.size, f.mtime_ns).key(h)
    assert f.key(h) != f.key(options_hash({"model": "base", "formats": ["txt"]}))
    p.write_bytes(b"12345")  # size changes
    (g,), _ = discover([p])
    assert g.key(h) != f.key(h)
    os.utime(p, ns=(g.mtime_ns + 10**9, g.mtime_ns + 10**9))  # only the mtime changes
    (k,), _ = discover([p])
    assert k.size == g.size and k.key(h) != g.key(h)
