"""The run manifest: one SQLite file in the output folder with every case's status and provenance.

SQLite commits are atomic, so a killed run leaves a consistent manifest that the next run resumes from.
"""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["Manifest", "MANIFEST_NAME"]

MANIFEST_NAME = "manifest.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    case_id TEXT PRIMARY KEY,
    input_path TEXT NOT NULL,
    input_hash TEXT,
    status TEXT NOT NULL,          -- running | done | failed | skipped
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_utc TEXT,
    finished_utc TEXT,
    seconds_read REAL,
    seconds_predict REAL,
    seconds_write REAL,
    outputs TEXT,                  -- JSON {name: path}
    provenance TEXT                -- JSON {medseg_version, weights_sha256, config_hash, ...}
);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_utc TEXT,
    provenance TEXT
);
"""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class Manifest:
    """Per-case records of a batch run, kept in ``<output>/manifest.sqlite``.

    Only the coordinating process writes to it (workers return results), so
    there is a single writer; every update is its own transaction.

    Examples
    --------
    >>> import tempfile
    >>> m = Manifest(tempfile.mkdtemp())
    >>> m.start("ct_001", input_path="ct_001.nii.gz", input_hash="ab")
    >>> m.finish("ct_001", status="done", outputs={"labels": "labels/ct_001.nii.gz"})
    >>> m.get("ct_001")["status"], m.get("ct_001")["attempts"]
    ('done', 1)
    """

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / MANIFEST_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        with self._db:
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def begin_run(self, provenance: Mapping[str, Any]) -> int:
        """Record the start of a run with its provenance; returns the run id."""
        with self._db:
            cursor = self._db.execute("INSERT INTO runs (started_utc, provenance) VALUES (?, ?)",
                                      (_now(), json.dumps(dict(provenance), default=str)))
        return int(cursor.lastrowid)

    def get(self, case_id: str) -> dict[str, Any] | None:
        """The case's record (JSON columns decoded), or ``None``."""
        row = self._db.execute("SELECT * FROM cases WHERE case_id = ?", (case_id,)).fetchone()
        if row is None:
            return None
        record = dict(row)
        for key in ("outputs", "provenance"):
            record[key] = json.loads(record[key]) if record[key] else {}
        return record

    def start(self, case_id: str, *, input_path: str, input_hash: str | None) -> None:
        """Mark a case running (a new attempt)."""
        with self._db:
            self._db.execute(
                """INSERT INTO cases (case_id, input_path, input_hash, status, attempts, started_utc)
                   VALUES (?, ?, ?, 'running', 1, ?)
                   ON CONFLICT(case_id) DO UPDATE SET input_path=excluded.input_path,
                     input_hash=excluded.input_hash, status='running', error=NULL,
                     attempts=cases.attempts + 1, started_utc=excluded.started_utc,
                     finished_utc=NULL""",
                (case_id, str(input_path), input_hash, _now()),
            )

    def finish(
        self,
        case_id: str,
        *,
        status: str,
        error: str | None = None,
        timings: Mapping[str, float] | None = None,
        outputs: Mapping[str, Any] | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a case's outcome (``done`` or ``failed``) with timings and outputs."""
        timings = dict(timings or {})
        with self._db:
            self._db.execute(
                """UPDATE cases SET status=?, error=?, finished_utc=?, seconds_read=?,
                     seconds_predict=?, seconds_write=?, outputs=?, provenance=?
                   WHERE case_id=?""",
                (status, error, _now(), timings.get("read"), timings.get("predict"),
                 timings.get("write"), json.dumps(dict(outputs or {}), default=str),
                 json.dumps(dict(provenance or {}), default=str), case_id),
            )

    def record_skipped(self, case_id: str, *, input_path: str, reason: str) -> None:
        """Record an input that is not processed (filtered out, not an image), with the reason."""
        with self._db:
            self._db.execute(
                """INSERT INTO cases (case_id, input_path, status, error, finished_utc)
                   VALUES (?, ?, 'skipped', ?, ?)
                   ON CONFLICT(case_id) DO UPDATE SET status='skipped', error=excluded.error,
                     finished_utc=excluded.finished_utc
                   WHERE cases.status != 'done'""",
                (case_id, str(input_path), reason, _now()),
            )

    def table(self) -> pd.DataFrame:
        """All case records as a DataFrame (one row per case)."""
        return pd.read_sql_query("SELECT * FROM cases ORDER BY case_id", self._db)
