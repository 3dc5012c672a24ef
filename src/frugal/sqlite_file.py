"""A small SQLite file with a JSON key-value `meta` table, in WAL mode (readers never block
the writer), opened with a one-line error when it is not what it should be."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"


class SQLiteFile:
    """Subclasses set SCHEMA (their tables) and KIND (what the file is, for errors)."""

    SCHEMA = ""
    KIND = "frugal database"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = sqlite3.connect(str(path), timeout=60)
            self.con.execute("PRAGMA journal_mode=WAL")
            self.con.executescript(META + self.SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{self.path}: not a {self.KIND} ({exc})") from None

    def close(self) -> None:
        self.con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get_meta(self, key: str):
        """The JSON value stored under `key`, or None."""
        row = self.con.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value) -> None:
        with self.con:
            self.con.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                (key, json.dumps(value, sort_keys=True)),
            )


__all__ = ["SQLiteFile"]
