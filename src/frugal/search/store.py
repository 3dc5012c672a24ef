"""A search's measurements in SQLite: one row per configuration (its canonical key, the
config, objectives, seconds, error), committed the moment it completes; measurements at a
lower fidelity (fewer utterances) in a second table, so a multi-fidelity search keeps every
level. Reopening a search by name resumes it; a config already stored is never measured
again; `kill -9` loses only the measurements in flight."""

from __future__ import annotations

import json
import sqlite3
import time

from frugal.sqlite_file import SQLiteFile

SCHEMA = """
CREATE TABLE IF NOT EXISTS evals (
    id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, config TEXT NOT NULL,
    objectives TEXT, seconds REAL, error TEXT, round INTEGER, created REAL);
CREATE TABLE IF NOT EXISTS partial (
    id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, fidelity INTEGER NOT NULL,
    config TEXT NOT NULL, objectives TEXT, seconds REAL, error TEXT, round INTEGER,
    created REAL, UNIQUE (key, fidelity));
"""


class SearchStore(SQLiteFile):
    """Measurements of one search, in order of completion."""

    SCHEMA = SCHEMA
    KIND = "frugal search store"

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
        return self._insert("evals", {"key": key}, config, objectives, seconds, error, round_)

    def add_partial(
        self,
        key: str,
        fidelity: int,
        config: dict,
        objectives: list[float] | None,
        seconds: float,
        error: str | None = None,
        round_: int = 0,
    ) -> bool:
        """Store one lower-fidelity measurement; False when (key, fidelity) is there."""
        ident = {"key": key, "fidelity": fidelity}
        return self._insert("partial", ident, config, objectives, seconds, error, round_)

    def _insert(self, table, ident, config, objectives, seconds, error, round_) -> bool:
        row = ident | {"config": json.dumps(config), "objectives": _json_or_none(objectives),
                       "seconds": seconds, "error": error, "round": round_,
                       "created": time.time()}  # fmt: skip
        sql = f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})"
        try:
            with self.con:
                self.con.execute(sql, tuple(row.values()))
        except sqlite3.IntegrityError:
            return False
        return True

    def partial_rows(self) -> list[dict]:
        """Every lower-fidelity measurement in completion order."""
        cur = self.con.execute(
            "SELECT id, key, fidelity, config, objectives, seconds, error, round FROM partial"
            " ORDER BY id"
        )
        return [
            {
                "id": i,
                "key": k,
                "fidelity": fi,
                "config": json.loads(c),
                "objectives": None if o is None else json.loads(o),
                "seconds": s,
                "error": e,
                "round": r,
            }
            for i, k, fi, c, o, s, e, r in cur
        ]

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

    def __contains__(self, key: str) -> bool:
        """Whether a full measurement of `key` is stored (read now, not cached)."""
        return self.con.execute("SELECT 1 FROM evals WHERE key=?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        return self.con.execute("SELECT count(*) FROM evals").fetchone()[0]


def _json_or_none(x) -> str | None:
    return None if x is None else json.dumps(x)


__all__ = ["SearchStore"]
