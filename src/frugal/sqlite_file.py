"""Resumable results on disk: a small SQLite file with a JSON key-value `meta` table, in WAL
mode (readers never block the writer), opened with a one-line error when it is not what it
should be, and bound to the config that produced its rows (`claim`): a rerun with the same
config resumes, one that would change the rows is refused with one message. `RowStore` adds
a table of JSON rows by key, with a one-time import of the JSONL files earlier versions
wrote."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"


class ConfigMismatchError(ValueError):
    """A stored result was produced with other settings than the ones asked for now."""


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

    def claim(
        self,
        config: Mapping,
        keys: Iterable[str],
        upgrade: Callable[[dict], dict] | None = None,
        grow: Iterable[str] = (),
        hint: str = "use another output",
    ) -> dict:
        """Bind the file to `config` and return the config now stored. A new file records it
        (and the package versions); a stored one, brought to today's shape by `upgrade`
        (fields it predates take their defaults), must agree on every key in `keys`, else
        ConfigMismatchError. Sequence-valued
        keys in `grow` are merged, so a rerun may add models or formats to a study."""
        from frugal.provenance import versions

        config = dict(config)
        old = self.get_meta("config")
        if old is not None:
            old = upgrade(old) if upgrade else old
            for k in keys:
                was = old.get(k)
                if _plain(was) != _plain(config.get(k)):
                    raise ConfigMismatchError(
                        f"{self.path} holds a {self.KIND} made with {k}={was!r}, "
                        f"not {config.get(k)!r}; {hint}"
                    )
            for k in grow:
                have = list(old.get(k) or ())
                config[k] = have + [x for x in config.get(k) or () if x not in have]
        self.set_meta("config", config)
        self.set_meta("versions", versions())
        return config


def _plain(x):
    """A value as JSON would give it back (tuples are lists), for comparing with stored ones."""
    return json.loads(json.dumps(x, sort_keys=True))


ROWS = """
CREATE TABLE IF NOT EXISTS rows (
    id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, row TEXT NOT NULL,
    created REAL);
"""


class RowStore(SQLiteFile):
    """JSON rows by key, in the order they were first stored; each committed on its own, so
    an interrupted run loses only the row in flight."""

    SCHEMA = ROWS

    def put(self, key: str, row: dict) -> None:
        """Store `row` under `key` (replacing one stored before, in its place)."""
        with self.con:
            self.con.execute(
                "INSERT INTO rows (key, row, created) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET row=excluded.row, created=excluded.created",
                (key, json.dumps(row), time.time()),
            )

    def get(self, key: str) -> dict | None:
        hit = self.con.execute("SELECT row FROM rows WHERE key=?", (key,)).fetchone()
        return json.loads(hit[0]) if hit else None

    def rows(self) -> list[dict]:
        return [json.loads(r) for (r,) in self.con.execute("SELECT row FROM rows ORDER BY id")]

    def __len__(self) -> int:
        return self.con.execute("SELECT count(*) FROM rows").fetchone()[0]

    def import_jsonl(
        self, path: Path, config_of: Callable[[dict], dict], key_of: Callable[[dict], str]
    ) -> int:
        """Once, into an empty store: a JSONL file of earlier versions (line 1 the header,
        then one row per line; a line torn by a kill is dropped). The header's config (by
        `config_of`) becomes the stored one; rows and config land in one transaction, so a
        kill mid-import leaves the store empty and the next open imports again. Returns the
        rows imported."""
        if self.get_meta("config") is not None or len(self) or not path.is_file():
            return 0
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        try:
            head = json.loads(lines[0])
        except (IndexError, json.JSONDecodeError):
            raise ValueError(f"{path}: no header line; not a frugal results file") from None
        rows = []
        for line in lines[1:]:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        imported = {"path": str(path), "rows": len(rows), **head}
        meta = {"config": config_of(head), "imported_from": imported}
        now = time.time()
        with self.con:
            self.con.executemany(
                "INSERT OR REPLACE INTO rows (key, row, created) VALUES (?, ?, ?)",
                [(key_of(row), json.dumps(row), now) for row in rows],
            )
            self.con.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [(k, json.dumps(v, sort_keys=True)) for k, v in meta.items()],
            )
        return len(rows)


__all__ = ["ConfigMismatchError", "RowStore", "SQLiteFile"]
