"""A search's measurements in SQLite: one row per configuration (its canonical key, the
config, objectives, seconds, error), committed the moment it completes. Reopening a search by
name resumes it; a config already stored is never measured again; `kill -9` loses only the
measurements in flight."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evals (
    id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, config TEXT NOT NULL,
    objectives TEXT, seconds REAL, error TEXT, round INTEGER, created REAL);
"""


class SearchStore:
    """Measurements of one search, in order of completion."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = sqlite3.connect(self.path, timeout=60)
            self.con.execute("PRAGMA journal_mode=WAL")
            self.con.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{self.path}: not a frugal search store ({exc})") from None

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> SearchStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get_meta(self, key: str):
        row = self.con.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value) -> None:
        with self.con:
            self.con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def add(
        self,
        key: str,
        config: dict,
        objectives: list[float] | None,
        seconds: float,
        error: str | None = None,
        round_: int = 0,
    ) -> bool:
        """Store one measurement; False (and nothing written) when the key is already there."""
        try:
            with self.con:
                self.con.execute(
                    "INSERT INTO evals (key, config, objectives, seconds, error, round, created)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (key, json.dumps(config), _json_or_none(objectives), seconds, error, round_,
                     time.time()),
                )  # fmt: skip
        except sqlite3.IntegrityError:
            return False
        return True

    def keys(self) -> set[str]:
        return {k for (k,) in self.con.execute("SELECT key FROM evals")}

    def rows(self) -> list[dict]:
        """Every measurement in completion order (failures included, objectives None)."""
        cur = self.con.execute(
            "SELECT id, key, config, objectives, seconds, error, round FROM evals ORDER BY id"
        )
        return [
            {
                "id": i,
                "key": k,
                "config": json.loads(c),
                "objectives": None if o is None else json.loads(o),
                "seconds": s,
                "error": e,
                "round": r,
            }
            for i, k, c, o, s, e, r in cur
        ]

    def __len__(self) -> int:
        return self.con.execute("SELECT count(*) FROM evals").fetchone()[0]


def _json_or_none(x) -> str | None:
    return None if x is None else json.dumps(x)


__all__ = ["SearchStore"]
