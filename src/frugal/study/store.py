"""SQLite store of a quantization-prediction study: measurements (model, format, method) →
NLL/WER and costs, and features (model[, format]) → value and cost. Every row is committed
the moment it completes, so an interrupted collection loses only the work in flight."""

from __future__ import annotations

import json
import time

from frugal.sqlite_file import SQLiteFile

SCHEMA = """
CREATE TABLE IF NOT EXISTS measurements (
    model TEXT NOT NULL, format TEXT NOT NULL, method TEXT NOT NULL,
    family TEXT, nll REAL, wer REAL, bits_per_weight REAL, params INTEGER,
    seconds_quantize REAL, seconds_eval REAL, record TEXT, error TEXT, created REAL,
    PRIMARY KEY (model, format, method));
CREATE TABLE IF NOT EXISTS features (
    model TEXT NOT NULL, format TEXT NOT NULL, name TEXT NOT NULL,
    value REAL, seconds REAL, created REAL,
    PRIMARY KEY (model, format, name));
"""

FP = ("fp32", "none")  # (format, method) of a model's full-precision row
MEASURE_COLUMNS = (
    "model", "format", "method", "family", "nll", "wer", "bits_per_weight", "params",
    "seconds_quantize", "seconds_eval", "record", "error",
)  # fmt: skip


class StudyDB(SQLiteFile):
    """One study's SQLite file: measurements and features (plus meta)."""

    SCHEMA = SCHEMA
    KIND = "frugal study database"

    # measurements
    def add_measurement(self, row: dict) -> None:
        values = [row.get(c) for c in MEASURE_COLUMNS]
        values[MEASURE_COLUMNS.index("record")] = json.dumps(row.get("record") or {})
        with self.con:
            self.con.execute(
                f"INSERT OR REPLACE INTO measurements ({', '.join(MEASURE_COLUMNS)}, created) "
                f"VALUES ({', '.join('?' * len(MEASURE_COLUMNS))}, ?)",
                (*values, time.time()),
            )

    def measurements(self, include_errors: bool = False) -> list[dict]:
        cur = self.con.execute(
            f"SELECT {', '.join(MEASURE_COLUMNS)} FROM measurements ORDER BY model, format, method"
        )
        rows = [dict(zip(MEASURE_COLUMNS, r, strict=True)) for r in cur]
        for r in rows:
            r["record"] = json.loads(r["record"] or "{}")
        return rows if include_errors else [r for r in rows if r["error"] is None]

    def done(self, retry_failed: bool = False) -> set[tuple[str, str, str]]:
        """(model, format, method) already measured (failures too unless retried)."""
        q = "SELECT model, format, method FROM measurements"
        if retry_failed:
            q += " WHERE error IS NULL"
        return {tuple(r) for r in self.con.execute(q)}

    # features
    def add_features(self, model: str, fmt: str, feats: dict) -> None:
        """feats: name → object with .value and .seconds."""
        now = time.time()
        with self.con:
            self.con.executemany(
                "INSERT OR REPLACE INTO features VALUES (?, ?, ?, ?, ?, ?)",
                [(model, fmt, k, float(f.value), float(f.seconds), now) for k, f in feats.items()],
            )

    def features(self) -> dict[tuple[str, str], dict[str, tuple[float, float]]]:
        """(model, format or "") → {name: (value, seconds)}."""
        out: dict[tuple[str, str], dict[str, tuple[float, float]]] = {}
        for m, f, n, v, s in self.con.execute(
            "SELECT model, format, name, value, seconds FROM features"
        ):
            out.setdefault((m, f), {})[n] = (v, s)
        return out

    def has_features(self, model: str, fmt: str) -> bool:
        q = "SELECT 1 FROM features WHERE model=? AND format=? LIMIT 1"
        return self.con.execute(q, (model, fmt)).fetchone() is not None


__all__ = ["FP", "StudyDB"]
