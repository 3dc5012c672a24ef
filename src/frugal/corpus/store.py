"""The corpus's results table: one SQLite file under --out (`results.sqlite`), one row per
audio file and settings, committed as each file finishes, so a killed run loses only the
files in flight. A data engineer queries it with any SQLite client, e.g.

    SELECT status, count(*), sum(duration_s) / 3600 FROM files GROUP BY status;
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from frugal.corpus.discover import CorpusFile
from frugal.sqlite_file import SQLiteFile

FILES = """
CREATE TABLE IF NOT EXISTS files (
    key TEXT PRIMARY KEY,       -- sha256 of path, size, mtime and the settings' hash
    path TEXT NOT NULL,         -- the audio file, resolved
    rel TEXT NOT NULL,          -- its outputs under --out, without suffix
    size INTEGER NOT NULL,      -- bytes
    mtime_ns INTEGER NOT NULL,
    status TEXT NOT NULL,       -- done | failed
    duration_s REAL,            -- audio seconds
    language TEXT,
    windows INTEGER,
    fallbacks INTEGER,
    wall_s REAL,                -- seconds the worker spent on the file, loading included
    rtf REAL,                   -- wall_s / duration_s
    outputs TEXT,               -- JSON list of the files written, relative to --out
    error TEXT,                 -- one line, for failed files
    worker TEXT,                -- host:pid that ran it
    finished REAL               -- unix time
);
CREATE INDEX IF NOT EXISTS files_status ON files (status);
"""


@dataclass
class FileResult:
    """What a worker reports for one file: a transcript's figures or its error."""

    status: str
    duration_s: float | None = None
    language: str | None = None
    windows: int | None = None
    fallbacks: int | None = None
    wall_s: float = 0.0
    error: str | None = None
    worker: str = ""
    outputs: list[str] = field(default_factory=list)
    fatal: bool = False  # the model could not load: the run stops (not stored)


class CorpusStore(SQLiteFile):
    """Rows of `files` by resume key (see `CorpusFile.key`)."""

    SCHEMA = FILES
    KIND = "frugal corpus results table"

    def done_keys(self) -> set[str]:
        return {k for (k,) in self.con.execute("SELECT key FROM files WHERE status='done'")}

    def put(self, f: CorpusFile, key: str, r: FileResult) -> None:
        """Record one file's result (replacing an earlier attempt), committed at once."""
        rtf = r.wall_s / r.duration_s if r.duration_s else None
        with self.con:
            self.con.execute(
                "INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    key,
                    str(f.path),
                    str(f.rel),
                    f.size,
                    f.mtime_ns,
                    r.status,
                    r.duration_s,
                    r.language,
                    r.windows,
                    r.fallbacks,
                    r.wall_s,
                    rtf,
                    json.dumps(r.outputs),
                    r.error,
                    r.worker,
                    time.time(),
                ),
            )

    def rows(self) -> list[dict]:
        cur = self.con.execute("SELECT * FROM files ORDER BY finished")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    def summary(self) -> dict:
        """Files and audio hours by status."""
        out = {}
        for status, n, secs in self.con.execute(
            "SELECT status, count(*), coalesce(sum(duration_s), 0) FROM files GROUP BY status"
        ):
            out[status] = {"files": n, "audio_h": secs / 3600}
        return out


def open_store(out_dir: Path, settings: dict) -> CorpusStore:
    """The table under `out_dir`, bound to `settings` (model, decoding, outputs): a rerun with
    the same settings resumes; other settings into the same folder are refused in one line
    (their outputs would overwrite these)."""
    store = CorpusStore(out_dir / "results.sqlite")
    try:
        store.claim(settings, keys=sorted(settings), hint="use another --out for other settings")
    except ValueError:
        store.close()
        raise
    return store


__all__ = ["CorpusStore", "FileResult", "open_store"]
