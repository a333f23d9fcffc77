"""Per-job event log: gap-free sequence numbers, stored in SQLite, followed live by Watch streams.

Why persist every event: a client that drops off mid-render (laptop lid, studio restart) must be
able to re-attach with `from_seq` and get exactly the events it missed, even after a daemon restart.
Result-frame events are stored without their pictures (those live once, as blobs in `job_results`)
and are filled in when streamed. Preview and provisional-mask events live in a table of their own
while their job runs and are dropped when it ends: the results replace them, a daemon that kept
every preview of every job would grow without bound, and dropping them is one DELETE instead of a
rewrite of the job's log.
A Watch whose `from_seq` names a dropped preview continues at the next event held.

Resuming a job starts a new attempt: the previous attempt's terminal event is marked `superseded`
and no longer streamed, so only the current attempt's terminal event ends a Watch.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable

from engine.daemon.storage import Storage, now_ms
from protos.recast.v1 import engine_pb2 as pb

HELD_WHILE_RUNNING = ("preview", "provisional_mask")  # kinds dropped when their job ends: results replace them


class EventLog:
    """Appends and reads job events; `wait` blocks until a job has an event after a given seq."""

    def __init__(self, storage: Storage):
        self._db = storage.db
        self._cond = threading.Condition()
        self._last: dict[str, int] = {}
        self._closed = False

    def append(
        self,
        job_id: str,
        field: str,
        message,  # noqa: ANN001 - one of the JobEvent oneof message types
        also: Callable[[sqlite3.Connection], None] | None = None,
    ) -> pb.JobEvent:
        """Stores one event; `also` runs first in the same transaction (a state change, a new job).
        Previews go to their own table (see the module's docstring)."""
        with self._cond:
            with self._db.transaction() as conn:
                if also is not None:  # first: it may create the job row or fill in `message`
                    also(conn)
                row = conn.execute("SELECT last_seq FROM jobs WHERE job_id=?", (job_id,)).fetchone()
                seq = int(row["last_seq"]) + 1
                event = pb.JobEvent(seq=seq, job_id=job_id, time_unix_ms=now_ms())
                getattr(event, field).CopyFrom(message)
                table = "previews" if field in HELD_WHILE_RUNNING else "events"
                conn.execute(f"INSERT INTO {table} (job_id, seq, payload) VALUES (?,?,?)",
                             (job_id, seq, event.SerializeToString()))
                conn.execute("UPDATE jobs SET last_seq=? WHERE job_id=?", (seq, job_id))
            self._last[job_id] = seq
            self._cond.notify_all()
        return event

    @staticmethod
    def drop_previews(conn: sqlite3.Connection, job_id: str) -> None:
        """Runs inside the transaction that ends the job."""
        conn.execute("DELETE FROM previews WHERE job_id=?", (job_id,))

    @staticmethod
    def supersede_last(conn: sqlite3.Connection, job_id: str) -> None:
        """Marks the job's newest event, the terminal event of an ended attempt, as superseded.
        Runs inside the transaction that resumes the job, before its new `queued` event."""
        conn.execute(
            "UPDATE events SET superseded=1 WHERE job_id=? AND seq=(SELECT last_seq FROM jobs WHERE job_id=?)",
            (job_id, job_id),
        )

    def last_seq(self, job_id: str) -> int:
        with self._cond:
            if job_id not in self._last:
                row = self._db.query_one("SELECT last_seq FROM jobs WHERE job_id=?", (job_id,))
                self._last[job_id] = int(row.last_seq) if row else 0
            return self._last[job_id]

    def read(self, job_id: str, from_seq: int, limit: int = 32) -> list[pb.JobEvent]:
        """Held events with seq ≥ from_seq, oldest first, at most `limit` (bounded memory); previews
        of a running job included, superseded terminal events left out."""
        start = max(1, from_seq)
        rows = self._db.query(
            "SELECT seq, payload FROM events WHERE job_id=? AND seq>=? AND superseded=0 "
            "UNION ALL SELECT seq, payload FROM previews WHERE job_id=? AND seq>=? ORDER BY seq LIMIT ?",
            (job_id, start, job_id, start, limit),
        )
        return [pb.JobEvent.FromString(r.payload) for r in rows]

    def wait(self, job_id: str, after_seq: int, timeout: float) -> bool:
        """True once the job has an event with seq > after_seq; False on timeout or close."""
        self.last_seq(job_id)
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._last.get(job_id, 0) > after_seq, timeout)
            return self._last.get(job_id, 0) > after_seq

    def wake_all(self) -> None:
        """Lets waiting streams re-check their own stop conditions (client gone, shutdown)."""
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
