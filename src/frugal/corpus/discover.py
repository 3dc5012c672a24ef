"""Find a corpus's audio files: folders (recursively, by audio extension), manifests, globs
or single files, each with the path its outputs take under --out (the input tree mirrored)
and the identity that says whether a stored result still belongs to it (path, size, mtime)."""

from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from frugal.data.audio import PYAV_SUFFIXES

# what load_audio reads: soundfile's formats, and PyAV's containers
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg"} | PYAV_SUFFIXES)
MANIFEST_SUFFIXES = (".jsonl", ".csv")


@dataclass(frozen=True)
class CorpusFile:
    """One audio file: its resolved path, where its outputs go (relative to --out, without
    suffix), its size (bytes) and modification time (ns) when it was found."""

    path: Path
    rel: Path
    size: int
    mtime_ns: int

    def key(self, options_hash: str) -> str:
        """The resume key: the same file (path, size, mtime) under the same model and options."""
        ident = f"{self.path}\0{self.size}\0{self.mtime_ns}\0{options_hash}"
        return hashlib.sha256(ident.encode()).hexdigest()[:32]


def options_hash(options: dict) -> str:
    """A short hash of everything that changes a transcript (model, decoding, outputs)."""
    text = json.dumps(options, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _is_glob(spec: str) -> bool:
    return any(c in spec for c in "*?[")


def _manifest_paths(path: Path) -> list[Path]:
    """The `audio` column of a JSONL or CSV manifest, relative paths against its folder."""
    from frugal.data.datasets import manifest

    return [u.audio_path for u in manifest(path)]


def _glob_root(spec: str) -> Path:
    """The folder a glob's matches are mirrored from: its part before the first wildcard."""
    parts = Path(spec).parts
    plain = []
    for p in parts:
        if _is_glob(p):
            break
        plain.append(p)
    return Path(*plain) if plain else Path(".")


def _walk(root: Path, problems: list[tuple[str, str]]) -> list[Path]:
    """Audio files under `root`, recursively, in sorted order; unreadable folders noted."""
    found = []

    def note(exc: OSError) -> None:
        problems.append((str(exc.filename or root), f"cannot read folder ({exc.strerror})"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=note, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_SUFFIXES:
                found.append(Path(dirpath) / name)
    return found


def discover(specs: list[str | Path]) -> tuple[list[CorpusFile], list[tuple[str, str]]]:
    """The corpus named by `specs` (folders, .jsonl/.csv manifests, globs, files), each file
    once, and the problems found on the way as (what, one-line reason): a path that does not
    exist, a glob or folder with no audio, a folder that cannot be read, a file that cannot be
    stat'ed. With several inputs, outputs go under each input's name so they cannot collide."""
    picked: list[tuple[Path, Path]] = []  # (file, its output path without suffix)
    problems: list[tuple[str, str]] = []
    several = len(specs) > 1
    for spec in specs:
        text = str(spec)
        path = Path(text)
        if path.is_dir():
            files = _walk(path, problems)
            base = Path(path.resolve().name) if several else Path()
            picked += [(f, base / f.relative_to(path).with_suffix("")) for f in files]
            if not files:
                problems.append((text, "folder holds no audio files"))
        elif path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
            try:
                files = _manifest_paths(path)
            except (ValueError, OSError) as exc:
                problems.append((text, str(exc).splitlines()[0]))
                continue
            root = path.parent.resolve()
            for f in files:
                r = f.resolve()
                rel = r.relative_to(root) if r.is_relative_to(root) else Path(r.name)
                picked.append((f, (Path(path.stem) if several else Path()) / rel.with_suffix("")))
        elif _is_glob(text):
            root = _glob_root(text)
            files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not files:
                problems.append((text, "matches no file"))
            picked += [(f, f.relative_to(root).with_suffix("")) for f in files]
        elif path.exists():
            picked.append((path, Path(path.stem)))
        else:
            problems.append((text, "not found"))
    out: list[CorpusFile] = []
    seen: set[Path] = set()
    taken: set[Path] = set()
    for f, rel in picked:
        resolved = f.resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        try:
            st = resolved.stat()
        except OSError as exc:
            problems.append((str(f), f"cannot stat ({exc.strerror})"))
            continue
        unique, n = rel, 2
        while unique in taken:  # two inputs that would write the same output
            unique = rel.with_name(f"{rel.name}__{n}")
            n += 1
        taken.add(unique)
        out.append(CorpusFile(resolved, unique, st.st_size, st.st_mtime_ns))
    return out, problems


__all__ = ["AUDIO_SUFFIXES", "CorpusFile", "discover", "options_hash"]
