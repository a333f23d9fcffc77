"""Durable state of the daemon: SQLite (WAL) for metadata, content-addressed files for bytes.

Why this shape: an editor's painted masks and finished renders must survive `kill -9` and power
loss. Every blob is written to a temp file, fsynced, renamed into place and its folder fsynced
before the SQLite row that refers to it commits (synchronous=FULL), so an acknowledged object is
always complete and a crash leaves at most an unreferenced temp file. Blobs are named by sha256, so
identical bytes are stored once and corruption is detectable on read.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS assets (
    asset_id TEXT PRIMARY KEY, kind INTEGER NOT NULL, filename TEXT NOT NULL,
    size_bytes INTEGER NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
    frame_count INTEGER NOT NULL, fps REAL NOT NULL, source_path TEXT NOT NULL DEFAULT '',
    created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS imported_paths (path TEXT PRIMARY KEY, asset_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clips (
    clip_id TEXT PRIMARY KEY, asset_id TEXT NOT NULL, start_frame INTEGER NOT NULL,
    end_frame INTEGER NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL, fps REAL NOT NULL,
    created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS mask_versions (
    clip_id TEXT NOT NULL, version INTEGER NOT NULL, kind INTEGER NOT NULL,
    base_version INTEGER NOT NULL, job_id TEXT NOT NULL, note TEXT NOT NULL,
    frame_count INTEGER NOT NULL, created_ms INTEGER NOT NULL, PRIMARY KEY (clip_id, version));
CREATE TABLE IF NOT EXISTS mask_frames (
    clip_id TEXT NOT NULL, version INTEGER NOT NULL, frame_index INTEGER NOT NULL,
    blob TEXT NOT NULL, PRIMARY KEY (clip_id, version, frame_index));
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, kind INTEGER NOT NULL, state INTEGER NOT NULL, clip_id TEXT NOT NULL,
    queue_order INTEGER NOT NULL, request BLOB NOT NULL, created_ms INTEGER NOT NULL,
    started_ms INTEGER NOT NULL DEFAULT 0, ended_ms INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '', mask_version INTEGER NOT NULL DEFAULT 0,
    last_seq INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, queue_order);
CREATE TABLE IF NOT EXISTS job_results (
    job_id TEXT NOT NULL, frame_index INTEGER NOT NULL, frame_blob TEXT NOT NULL,
    mask_blob TEXT NOT NULL, PRIMARY KEY (job_id, frame_index));
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL, seq INTEGER NOT NULL, payload BLOB NOT NULL,
    superseded INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (job_id, seq));
CREATE TABLE IF NOT EXISTS previews (
    job_id TEXT NOT NULL, seq INTEGER NOT NULL, payload BLOB NOT NULL, PRIMARY KEY (job_id, seq));
"""
SCHEMA_VERSION = 1  # PRAGMA user_version of a database whose migrations have all run


class BlobCorrupt(Exception):
    """A stored blob no longer matches its name (disk corruption): maps to DATA_LOSS."""


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id() -> str:
    """Opaque, unguessable, sortable-enough ids for clips and jobs."""
    return f"{now_ms():x}{os.urandom(8).hex()}"


def _file_sha256(path: Path) -> str | None:
    """The sha256 of a file's bytes, read in chunks; None if it does not exist."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except FileNotFoundError:
        return None
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobWriter:
    """Streams bytes into a temp file while hashing; `commit` moves it into the store atomically.

    Used for chunked uploads and imports so large files never sit in memory.
    """

    def __init__(self, store: BlobStore):
        self._store = store
        fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix="w-")
        self._file = os.fdopen(fd, "wb")
        self._tmp = Path(name)
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def staged_path(self) -> Path:
        """The temp file with everything written so far (to probe it before committing)."""
        self._file.flush()
        return self._tmp

    def commit(self) -> str:
        """Fsync, rename to the content address, fsync the folder; returns the sha256."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        digest = self.hexdigest()
        self._store._install(self._tmp, digest)
        return digest

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._tmp.unlink(missing_ok=True)


class BlobStore:
    """Content-addressed files: `<root>/<sha[:2]>/<sha>`."""

    def __init__(self, root: Path):
        self.root = root
        self.tmp_dir = root / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._folders = threading.Lock()
        # digest → when this process last stored it: a row naming it may not have committed yet
        self._stored: dict[str, float] = {}
        for stale in self.tmp_dir.iterdir():  # leftovers of a crash: never referenced by the DB
            stale.unlink(missing_ok=True)

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def intact(self, digest: str) -> bool:
        """The blob exists and its bytes hash to its name."""
        return _file_sha256(self.path(digest)) == digest

    def stored_within(self, digest: str, seconds: float) -> bool:
        """Whether this process stored `digest` (or found it already stored) in the last `seconds`."""
        return time.monotonic() - self._stored.get(digest, float("-inf")) < seconds

    def _note(self, digest: str) -> None:
        now = time.monotonic()
        with self._folders:
            if len(self._stored) > 100_000:  # keep only what a pending row can still need
                self._stored = {d: t for d, t in self._stored.items() if now - t < 3600}
            self._stored[digest] = now

    def _install(self, tmp: Path, digest: str) -> None:
        """Renames a fsynced temp file to its address; a corrupt blob already there is replaced."""
        self._note(digest)
        final = self.path(digest)
        if self.intact(digest):
            tmp.unlink(missing_ok=True)
            return
        with self._folders:  # a second writer waits until the new folder's entry is durable too
            if not final.parent.is_dir():
                final.parent.mkdir()
                _fsync_dir(self.root)
        os.replace(tmp, final)
        _fsync_dir(final.parent)

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if self.intact(digest):
            self._note(digest)
            return digest
        w = self.writer()
        try:
            w.write(data)
            w.commit()
        except BaseException:
            w.discard()
            raise
        return digest

    def get(self, digest: str, verify: bool = True) -> bytes:
        data = self.path(digest).read_bytes()
        if verify and hashlib.sha256(data).hexdigest() != digest:
            raise BlobCorrupt(f"blob {digest[:12]} is corrupt on disk")
        return data


@dataclass(frozen=True)
class Row:
    """A plain mapping of one SQLite row (sqlite3.Row is tied to its cursor's lifetime)."""

    data: dict

    def __getattr__(self, name: str):
        try:
            return self.data[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


class Database:
    """One SQLite connection shared by the daemon's threads behind a lock.

    Why one connection: writes are small and serialized anyway, and a single connection makes the
    ordering of commits (blob first, row second) easy to reason about.
    """

    def __init__(self, path: Path, timeout: float = 30.0):
        self.path = path
        # timeout: how long a write waits for another connection's lock before it fails
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=timeout)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(SCHEMA)
            self._migrate()

    def _migrate(self) -> None:
        """Brings a database written by an older daemon up to SCHEMA_VERSION, in one transaction."""
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version >= SCHEMA_VERSION:
            return
        with self.transaction() as conn:
            if version < 1:
                _migrate_events_v1(conn)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT; rolls back on any exception, a failed COMMIT included (an open
        transaction left behind would make every later BEGIN fail)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:  # SQLite may have rolled back already (SQLITE_FULL, I/O error)
                    self._conn.execute("ROLLBACK")
                raise

    def query(self, sql: str, params: tuple = ()) -> list[Row]:
        with self._lock:
            return [Row(dict(r)) for r in self._conn.execute(sql, params).fetchall()]

    def query_one(self, sql: str, params: tuple = ()) -> Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def execute(self, sql: str, params: tuple = ()) -> int:
        """One statement in its own transaction; returns the number of changed rows."""
        with self.transaction() as conn:
            return conn.execute(sql, params).rowcount

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _migrate_events_v1(conn: sqlite3.Connection) -> None:
    """Version 1: previews move out of `events` into `previews` (kept only while their job runs),
    and an earlier attempt's terminal event is marked `superseded` (it no longer ends a Watch)."""
    from protos.job_states import TERMINAL_EVENTS
    from protos.recast.v1 import engine_pb2 as pb

    if "superseded" not in {r["name"] for r in conn.execute("PRAGMA table_info(events)")}:
        conn.execute("ALTER TABLE events ADD COLUMN superseded INTEGER NOT NULL DEFAULT 0")
    previews: list[tuple[str, int]] = []
    superseded: list[tuple[str, int]] = []
    open_terminal: dict[str, int] = {}  # job → its newest terminal event so far
    for row in conn.execute("SELECT job_id, seq, payload FROM events ORDER BY job_id, seq").fetchall():
        job, seq = row["job_id"], row["seq"]
        kind = pb.JobEvent.FromString(row["payload"]).WhichOneof("event")
        if kind == "preview":
            previews.append((job, seq))
            continue
        if job in open_terminal:  # something followed that terminal event: the job was resumed
            superseded.append((job, open_terminal.pop(job)))
        if kind in TERMINAL_EVENTS:
            open_terminal[job] = seq
    conn.executemany("DELETE FROM events WHERE job_id=? AND seq=?", previews)
    conn.executemany("UPDATE events SET superseded=1 WHERE job_id=? AND seq=?", superseded)


class Storage:
    """The data folder: `engine.db` plus `blobs/`. Folder mode 0700: it holds the user's media."""

    def __init__(self, root: Path, db_timeout: float = 30.0):
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)  # the daemon checks an existing one is private
        self.blobs = BlobStore(root / "blobs")
        self.db = Database(root / "engine.db", timeout=db_timeout)

    def close(self) -> None:
        self.db.close()

    # --- masks -------------------------------------------------------------------------------

    def add_mask_version(
        self,
        clip_id: str,
        kind: int,
        frame_blobs: dict[int, str],
        base_version: int = 0,
        job_id: str = "",
        note: str = "",
    ) -> int:
        """Stores a new version (blobs must already be in the store); returns its number.

        The version number is allocated inside the same transaction that writes the rows, so two
        concurrent saves can never get the same number or overwrite each other.
        """
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT COALESCE(MAX(version), 0) AS v FROM mask_versions WHERE clip_id=?", (clip_id,)
            ).fetchone()
            version = int(row["v"]) + 1
            conn.execute(
                "INSERT INTO mask_versions VALUES (?,?,?,?,?,?,?,?)",
                (clip_id, version, kind, base_version, job_id, note, len(frame_blobs), now_ms()),
            )
            conn.executemany(
                "INSERT INTO mask_frames VALUES (?,?,?,?)",
                [(clip_id, version, i, b) for i, b in sorted(frame_blobs.items())],
            )
        return version

    def mask_blobs(self, clip_id: str, version: int) -> dict[int, str]:
        rows = self.db.query(
            "SELECT frame_index, blob FROM mask_frames WHERE clip_id=? AND version=? ORDER BY frame_index",
            (clip_id, version),
        )
        return {r.frame_index: r.blob for r in rows}

    def latest_mask_version(self, clip_id: str) -> int:
        row = self.db.query_one("SELECT COALESCE(MAX(version), 0) AS v FROM mask_versions WHERE clip_id=?", (clip_id,))
        return int(row.v) if row else 0
