"""A durable outbox: messages waiting for the broker, kept in SQLite until it acknowledges them.

A patrol boat loses its radio link for minutes at a time, and its node may be killed or lose
power at any moment. Every alert and track summary is therefore first written here, and
deleted only after the broker's PUBACK (:meth:`Outbox.ack`). Delivery is at least once, in the
order the messages were put: a message whose acknowledgement was lost is sent again, and
receivers drop the repeat by its ``msg_id``.

Rules:

* **Order.** Alerts (rows without a coalescing key) go first: :meth:`peek` returns every waiting
  alert before any track summary. Within each class, rows are delivered by their sequence
  number (``seq``), the order of :meth:`put`. An alert is not held behind a thousand track
  summaries of the same second, nor, after an outage, behind the picture of every track; a
  receiver that meets an alert for a track it has not yet seen has the alert's own ``before``
  / ``after`` states.
* **Coalescing.** A row may carry a coalescing key (a track id). Putting a row with a key
  deletes the waiting rows with the same key first, and the new row goes to the end of the
  queue: while the link is down, only a track's latest summary is kept, so the outbox holds one
  row per track instead of one per track and interval. Rows without a key (alerts) are never
  replaced or dropped.
* **Bound.** Keyed rows are capped (``max_keyed_rows``); beyond it the oldest keyed rows are
  dropped and counted in :attr:`OutboxStats.dropped`.
* **Durability.** The database runs in WAL mode. A row put with ``durable=True`` (alerts) is
  committed with ``synchronous=FULL``: it survives a power cut. Other rows are committed with
  ``synchronous=NORMAL``: they survive the process being killed, and a power cut may lose the
  last ones (a later summary of the track replaces them anyway).
* **Corruption.** Each row carries the CRC-32 of its payload. A row that fails its checks (a
  flipped bit, a column of the wrong type) is moved to the ``quarantine`` table, logged and
  counted, and the queue goes on. A file that is not a readable SQLite database is renamed
  aside (``*.corrupt-<time>``) and a new outbox is started.
* **One owner.** An exclusive lock on ``<path>.lock`` keeps a second process from draining
  the same outbox (the lock is released by the kernel when the process dies, even by SIGKILL).

The class is synchronous and does no network I/O; its calls take microseconds to a few
milliseconds (a ``durable`` commit waits for the disk).
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import re
import sqlite3
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from borderwatch.closing import Closing
from borderwatch.errors import BorderwatchError

log = logging.getLogger(__name__)

#: Layout version of the database (``PRAGMA user_version``).
SCHEMA_VERSION: Final = 1

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id       TEXT    NOT NULL,
    topic        TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    crc          INTEGER NOT NULL,
    retain       INTEGER NOT NULL,
    time_s       REAL    NOT NULL,
    coalesce_key TEXT
);
CREATE INDEX IF NOT EXISTS outbox_key ON outbox (coalesce_key) WHERE coalesce_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS outbox_time ON outbox (time_s);
CREATE INDEX IF NOT EXISTS outbox_unkeyed ON outbox (seq) WHERE coalesce_key IS NULL;
CREATE TABLE IF NOT EXISTS quarantine (
    seq            INTEGER PRIMARY KEY,
    reason         TEXT NOT NULL,
    row_repr       TEXT NOT NULL,
    quarantined_at REAL NOT NULL
);
"""

_COLUMNS: Final = "seq, msg_id, topic, payload, crc, retain, time_s, coalesce_key"
_ULID: Final = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")


class OutboxError(BorderwatchError):
    """The outbox cannot be opened or used (locked by another process, unreadable, newer)."""


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One waiting message.

    Attributes:
        seq: position in the queue (increasing; never reused).
        msg_id: the message's ULID (receivers de-duplicate on it).
        topic: MQTT topic to publish to.
        payload: bytes to publish (empty clears a retained topic).
        retain: publish with the retain flag.
        time: the message's own time (UTC), for the backlog's age.
        coalesce_key: key a later row replaces this one by (a track id), or None.
    """

    seq: int
    msg_id: str
    topic: str
    payload: bytes
    retain: bool
    time: datetime
    coalesce_key: str | None = None


@dataclass(frozen=True, slots=True)
class Pending:
    """A message to put: what :meth:`Outbox.put` stores, without its sequence number."""

    msg_id: str
    topic: str
    payload: bytes
    retain: bool
    time: datetime


@dataclass(slots=True)
class OutboxStats:
    """Counters since the outbox was opened."""

    put: int = 0
    acked: int = 0
    coalesced: int = 0
    dropped: int = 0
    quarantined: int = 0


class Outbox(Closing):
    """The durable queue of one node's outbound messages (see the module docstring).

    Args:
        path: the SQLite file (created with its folder when missing).
        max_keyed_rows: most rows with a coalescing key kept; the oldest beyond it are dropped.
    """

    def __init__(self, path: str | Path, *, max_keyed_rows: int = 100_000) -> None:
        self.path = Path(path)
        self.max_keyed_rows = max_keyed_rows
        self.stats = OutboxStats()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock(self.path)
        try:
            self._db = _open(self.path)
            rows, keyed = self._db.execute(
                "SELECT count(*), count(coalesce_key) FROM outbox"
            ).fetchone()
        except BaseException:
            os.close(self._lock_fd)
            raise
        # Kept in memory: counting rows on every put would scan the table.
        self._rows: int = rows
        self._keyed: int = keyed

    # ----------------------------------------------------------------------------- writing

    def put(
        self, items: Pending | list[Pending], *, coalesce_key: str | None = None, durable: bool
    ) -> list[int]:
        """Append messages in one transaction; return their sequence numbers.

        With ``coalesce_key``, waiting rows with that key are deleted first and every new row
        carries the key. ``durable`` commits with ``synchronous=FULL`` (survives a power cut).
        """
        batch = [items] if isinstance(items, Pending) else items
        return self.put_groups([(coalesce_key, batch)], durable=durable)

    def put_groups(
        self, groups: Sequence[tuple[str | None, Sequence[Pending]]], *, durable: bool
    ) -> list[int]:
        """Append several groups of messages in ONE transaction, in order; return their
        sequence numbers.

        Each group is what one :meth:`put` call takes: its coalescing key (or None) and its
        messages. One commit for a whole tracker step's track summaries costs about what one
        summary's did.
        """
        db = self._db
        db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        seqs: list[int] = []
        replaced = dropped = added_keyed = added = 0
        with _transaction(db):
            for coalesce_key, batch in groups:
                if coalesce_key is not None:
                    replaced += db.execute(
                        "DELETE FROM outbox WHERE coalesce_key = ?", (coalesce_key,)
                    ).rowcount
                    added_keyed += len(batch)
                added += len(batch)
                seqs.extend(self._insert(batch, coalesce_key))
            excess = self._keyed - replaced + added_keyed - self.max_keyed_rows
            if added_keyed and excess > 0:
                dropped = db.execute(
                    "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox "
                    "WHERE coalesce_key IS NOT NULL ORDER BY seq LIMIT ?)",
                    (excess,),
                ).rowcount
        # Counters change only once the transaction is committed. Only keyed rows are ever
        # replaced or dropped.
        self._rows += added - replaced - dropped
        self._keyed += added_keyed - replaced - dropped
        self.stats.put += added
        self.stats.coalesced += replaced
        if dropped:
            self._note_dropped(dropped)
        return seqs

    def _insert(self, batch: Sequence[Pending], coalesce_key: str | None) -> list[int]:
        seqs: list[int] = []
        for item in batch:
            cursor = self._db.execute(
                "INSERT INTO outbox (msg_id, topic, payload, crc, retain, time_s, "
                "coalesce_key) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    item.msg_id,
                    item.topic,
                    item.payload,
                    zlib.crc32(item.payload),
                    int(item.retain),
                    item.time.timestamp(),
                    coalesce_key,
                ),
            )
            assert cursor.lastrowid is not None
            seqs.append(cursor.lastrowid)
        return seqs

    def _note_dropped(self, dropped: int) -> None:
        before, self.stats.dropped = self.stats.dropped, self.stats.dropped + dropped
        # Once, then every thousandth: a long outage must not flood the log.
        if before == 0 or before // 1000 != self.stats.dropped // 1000:
            log.error(
                "outbox holds more than %d track summaries: %d oldest dropped so far",
                self.max_keyed_rows,
                self.stats.dropped,
            )

    def ack(self, item: OutboxItem) -> None:
        """Delete a row the broker acknowledged (no-op when it was replaced meanwhile)."""
        self.ack_many([item])

    def ack_many(self, items: Sequence[OutboxItem]) -> None:
        """Delete rows the broker acknowledged, in one transaction (replaced ones: no-op)."""
        if not items:
            return
        # A lost delete only means one more duplicate after a power cut: NORMAL is enough.
        self._db.execute("PRAGMA synchronous = NORMAL")
        rows = keyed = 0
        with _transaction(self._db):
            for item in items:
                deleted = self._db.execute("DELETE FROM outbox WHERE seq = ?", (item.seq,)).rowcount
                rows += deleted
                keyed += deleted if item.coalesce_key is not None else 0
        self._forget(rows, keyed)
        self.stats.acked += rows

    def _forget(self, rows: int, keyed: int) -> None:
        self._rows -= rows
        self._keyed -= keyed

    # ----------------------------------------------------------------------------- reading

    def peek(self, limit: int) -> list[OutboxItem]:
        """The next ``limit`` messages to send: the oldest alerts, then the oldest track
        summaries (see *Order* in the module docstring); corrupt rows are quarantined."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE coalesce_key IS NULL ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        if len(rows) < limit:
            rows += self._db.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE coalesce_key IS NOT NULL "
                "ORDER BY seq LIMIT ?",
                (limit - len(rows),),
            ).fetchall()
        items: list[OutboxItem] = []
        for row in rows:
            item, problem = _item(row)
            if item is not None:
                items.append(item)
            else:
                self._quarantine(row, problem)
        return items

    def _quarantine(self, row: tuple[object, ...], reason: str) -> None:
        seq = row[0]
        log.error("outbox row %s is corrupt (%s): moved to quarantine", seq, reason)
        with _transaction(self._db):
            self._db.execute(
                "INSERT OR REPLACE INTO quarantine (seq, reason, row_repr, quarantined_at) "
                "VALUES (?, ?, ?, ?)",
                (seq, reason, repr(row)[:10_000], time.time()),
            )
            deleted = self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,)).rowcount
        self._forget(deleted, deleted if row[7] is not None else 0)
        self.stats.quarantined += 1

    def backlog(self) -> tuple[int, datetime | None]:
        """Messages waiting, and the time of the oldest of them (None when empty)."""
        if self._rows == 0:
            return 0, None
        (oldest,) = self._db.execute("SELECT min(time_s) FROM outbox").fetchone()
        when = (
            datetime.fromtimestamp(oldest, UTC)
            if isinstance(oldest, int | float) and math.isfinite(oldest)
            else None
        )
        return self._rows, when

    def __len__(self) -> int:
        return self._rows

    def quarantined(self) -> list[tuple[int, str]]:
        """``(seq, reason)`` of every quarantined row, oldest first."""
        return [
            (int(seq), str(reason))
            for seq, reason in self._db.execute("SELECT seq, reason FROM quarantine ORDER BY seq")
        ]

    # ----------------------------------------------------------------------------- life

    def close(self) -> None:
        """Checkpoint and close the database, and release the lock."""
        if self._lock_fd < 0:
            return
        try:
            self._db.close()
        finally:
            os.close(self._lock_fd)
            self._lock_fd = -1


# --------------------------------------------------------------------------------- helpers


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK when the block raises."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _item(row: tuple[object, ...]) -> tuple[OutboxItem | None, str]:
    """The row as an item, or None and why it cannot be trusted."""
    seq, msg_id, topic, payload, crc, retain, time_s, key = row
    if not isinstance(payload, bytes):
        return None, f"payload is {type(payload).__name__}, not bytes"
    if crc != zlib.crc32(payload):
        return None, "payload CRC-32 mismatch"
    if not isinstance(msg_id, str) or _ULID.fullmatch(msg_id) is None:
        return None, "msg_id is not a ULID"
    if not isinstance(topic, str) or not topic or "+" in topic or "#" in topic:
        return None, "topic is not a publishable topic name"
    if retain not in (0, 1):
        return None, "retain is not 0 or 1"
    if not isinstance(time_s, int | float) or not math.isfinite(time_s):
        return None, "time_s is not a finite number"
    if key is not None and not isinstance(key, str):
        return None, "coalesce_key is not text"
    assert isinstance(seq, int)
    try:
        when = datetime.fromtimestamp(time_s, UTC)
    except (OverflowError, OSError, ValueError):
        return None, "time_s is out of range"
    return OutboxItem(seq, msg_id, topic, payload, bool(retain), when, key), ""


def _lock(path: Path) -> int:
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OutboxError(f"{path}: the outbox is in use by another process") from None
    return fd


def _open(path: Path) -> sqlite3.Connection:
    """Open (or create) the database; a file that is not a usable database is moved aside."""
    try:
        return _connect(path)
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) and not path.exists():
            raise OutboxError(f"{path}: cannot open the outbox: {exc}") from exc
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        log.error("outbox %s is unreadable (%s); moved to %s, starting empty", path, exc, aside)
        for suffix in ("", "-wal", "-shm"):
            old = Path(f"{path}{suffix}")
            if old.exists():
                old.rename(f"{aside}{suffix}")
        return _connect(path)


def _connect(path: Path) -> sqlite3.Connection:
    # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE), so a commit happens exactly
    # where the code says, which is what the durability rules depend on.
    db = sqlite3.connect(path, isolation_level=None)
    try:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise OutboxError(
                f"{path}: outbox layout version {version} is newer than this software's "
                f"({SCHEMA_VERSION})"
            )
        (check,) = db.execute("PRAGMA quick_check").fetchone()
        if check != "ok":
            raise sqlite3.DatabaseError(f"quick_check: {check}")
        db.execute("PRAGMA journal_mode = WAL")
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        db.close()
        raise
    return db
