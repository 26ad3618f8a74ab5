"""The durable outbox: order, at-least-once, coalescing, bounds, reopening and corruption."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from borderwatch.edge.outbox import Outbox, OutboxError, OutboxItem, Pending
from borderwatch.schema import new_msg_id

T0 = datetime(2025, 6, 14, 1, 0, 0, tzinfo=UTC)


def pending(n: int, topic: str = "borderwatch/v1/alert", *, retain: bool = False) -> Pending:
    """A message whose payload says which one it is."""
    return Pending(new_msg_id(), topic, f'{{"n": {n}}}'.encode(), retain, T0 + timedelta(seconds=n))


def payloads(items: list[OutboxItem]) -> list[bytes]:
    return [i.payload for i in items]


def put_alerts(box: Outbox, numbers: range) -> list[Pending]:
    made = [pending(n) for n in numbers]
    for p in made:
        box.put(p, durable=True)
    return made


def test_delivers_in_put_order_and_forgets_only_acknowledged(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3") as box:
        made = put_alerts(box, range(6))
        first = box.peek(4)
        assert [i.msg_id for i in first] == [p.msg_id for p in made[:4]]
        box.ack(first[1])  # acknowledgements may arrive out of order
        box.ack(first[0])
        assert [i.msg_id for i in box.peek(10)] == [p.msg_id for p in made[2:]]
        assert box.stats.acked == 2


def test_unacknowledged_messages_are_offered_again_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    with Outbox(path) as box:
        made = put_alerts(box, range(3))
        box.peek(3)  # sent, but the broker never acknowledged
    with Outbox(path) as box:
        again = box.peek(10)
        assert [i.msg_id for i in again] == [p.msg_id for p in made]
        assert [(i.topic, i.retain, i.time) for i in again] == [
            (p.topic, p.retain, p.time) for p in made
        ]
        assert len(box) == 3


def test_ack_of_a_replaced_row_is_harmless(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3") as box:
        box.put(pending(1, "t/a"), coalesce_key="boat-1:1", durable=False)
        (in_flight,) = box.peek(1)
        box.put(pending(2, "t/a"), coalesce_key="boat-1:1", durable=False)
        box.ack(in_flight)
        assert payloads(box.peek(5)) == [b'{"n": 2}']
        assert len(box) == 1


def test_track_summaries_coalesce_to_the_latest_at_the_end_of_the_queue(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3") as box:
        box.put(pending(0, "track/a"), coalesce_key="boat-1:1", durable=False)
        box.put(pending(1, "track/b"), coalesce_key="boat-1:2", durable=False)
        box.put(pending(2), durable=True)
        box.put(pending(3, "track/a"), coalesce_key="boat-1:1", durable=False)
        # The alert first; then the summaries, track a's latest behind track b's.
        assert payloads(box.peek(10)) == [b'{"n": 2}', b'{"n": 1}', b'{"n": 3}']
        assert box.stats.coalesced == 1
        assert len(box) == 3


def test_alerts_go_ahead_of_waiting_track_summaries_in_their_own_order(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3") as box:
        for k in range(40):
            box.put(pending(k, f"track/{k}"), coalesce_key=f"boat-1:{k}", durable=False)
        made = put_alerts(box, range(100, 103))
        window = box.peek(5)
        assert [i.msg_id for i in window[:3]] == [p.msg_id for p in made]
        assert payloads(window[3:]) == [b'{"n": 0}', b'{"n": 1}']
        box.ack_many(window)
        late = put_alerts(box, range(200, 202))
        # An alert put after a window went out overtakes the summaries still waiting.
        assert [i.msg_id for i in box.peek(3)[:2]] == [p.msg_id for p in late]
        assert payloads(box.peek(3)[2:]) == [b'{"n": 2}']


def test_alerts_are_never_coalesced(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3", max_keyed_rows=10) as box:
        made = put_alerts(box, range(50))
        for k in range(30):  # far more tracks than the bound
            box.put(pending(100 + k, f"track/{k}"), coalesce_key=f"boat-1:{k}", durable=False)
        alerts = [i for i in box.peek(1000) if i.coalesce_key is None]
        assert [i.msg_id for i in alerts] == [p.msg_id for p in made]
        assert box.stats.dropped == 20
        assert len(box) == 60


def test_a_step_of_tracks_in_one_transaction_is_what_one_put_each_would_be(
    tmp_path: Path,
) -> None:
    one_by_one, together = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    first = [(f"boat-1:{k}", [pending(k, f"track/{k}")]) for k in range(8)]
    # The second step: track 3 twice over two topics, a new track, and one already waiting.
    second = [
        ("boat-1:3", [pending(20, "track/3"), pending(21, "track/3/x")]),
        ("boat-1:9", [pending(22, "track/9")]),
        ("boat-1:0", [pending(23, "track/0")]),
    ]
    with Outbox(one_by_one, max_keyed_rows=6) as box:
        put_alerts(box, range(100, 102))
        for step in (first, second):
            for key, rows in step:
                box.put(rows, coalesce_key=key, durable=False)
        expected = payloads(box.peek(100)), len(box), box.stats
    with Outbox(together, max_keyed_rows=6) as box:
        put_alerts(box, range(100, 102))
        for step in (first, second):
            box.put_groups(step, durable=False)
        assert (payloads(box.peek(100)), len(box), box.stats) == expected
        # Alerts first and kept; the bound counted and only tracks dropped.
        assert payloads(box.peek(2)) == [b'{"n": 100}', b'{"n": 101}']
        assert box.stats.dropped > 0
    with Outbox(together) as box:  # the counts kept in memory agree with the file
        assert len(box) == expected[1]


def test_acknowledgements_of_a_window_in_one_transaction(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3") as box:
        put_alerts(box, range(5))
        box.put(pending(9, "track/a"), coalesce_key="boat-1:1", durable=False)
        window = box.peek(6)
        box.put(pending(10, "track/a"), coalesce_key="boat-1:1", durable=False)  # replaces
        box.ack_many([window[3], window[0], window[5]])  # the replaced row: a no-op
        box.ack_many([])
        assert payloads(box.peek(10)) == [b'{"n": 1}', b'{"n": 2}', b'{"n": 4}', b'{"n": 10}']
        assert (len(box), box.stats.acked) == (4, 2)


def test_track_bound_drops_the_oldest_summaries(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3", max_keyed_rows=10) as box:
        for k in range(15):
            box.put(pending(k, f"track/{k}"), coalesce_key=f"boat-1:{k}", durable=False)
        assert payloads(box.peek(100)) == [f'{{"n": {k}}}'.encode() for k in range(5, 15)]


def test_an_ended_track_keeps_both_rows_and_is_replaced_as_one(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3") as box:
        end = [pending(1, "track/a"), Pending(new_msg_id(), "track/a", b"", True, T0)]
        box.put(end, coalesce_key="boat-1:1", durable=False)
        assert [(i.payload, i.retain) for i in box.peek(5)] == [(b'{"n": 1}', False), (b"", True)]
        box.put(pending(2, "track/a"), coalesce_key="boat-1:1", durable=False)
        assert payloads(box.peek(5)) == [b'{"n": 2}']


def test_backlog_counts_and_dates_the_oldest_message(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3") as box:
        assert box.backlog() == (0, None)
        box.put(pending(7), durable=True)
        box.put(pending(3), durable=True)
        assert box.backlog() == (2, T0 + timedelta(seconds=3))
        for item in box.peek(5):
            box.ack(item)
        assert box.backlog() == (0, None)


def test_a_second_process_cannot_open_the_same_outbox(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3"), pytest.raises(OutboxError, match="in use"):
        Outbox(tmp_path / "o.sqlite3")
    Outbox(tmp_path / "o.sqlite3").close()  # released on close


def test_corrupt_rows_are_quarantined_and_the_queue_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    with Outbox(path) as box:
        made = put_alerts(box, range(6))
        seqs = [i.seq for i in box.peek(6)]
        with sqlite3.connect(path) as raw:
            # A flipped bit, a wrong type, a bad id, an impossible flag, a text payload.
            raw.execute(
                "UPDATE outbox SET payload = X'7B226E223A2039397D' WHERE seq = ?", seqs[0:1]
            )
            raw.execute("UPDATE outbox SET time_s = 'yesterday' WHERE seq = ?", seqs[1:2])
            raw.execute("UPDATE outbox SET msg_id = 'not-a-ulid' WHERE seq = ?", seqs[2:3])
            raw.execute("UPDATE outbox SET retain = 7 WHERE seq = ?", seqs[3:4])
            raw.execute("UPDATE outbox SET payload = 'text' WHERE seq = ?", seqs[4:5])
        good = box.peek(10)
        assert [i.msg_id for i in good] == [made[5].msg_id]
        assert box.stats.quarantined == 5
        reasons = dict(box.quarantined())
        assert reasons[seqs[0]] == "payload CRC-32 mismatch"
        assert "time_s" in reasons[seqs[1]]
        assert "ULID" in reasons[seqs[2]]
        assert "retain" in reasons[seqs[3]]
        assert "payload is str" in reasons[seqs[4]]
        assert len(box) == 1


def test_a_file_that_is_not_a_database_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    path.write_bytes(b"\x00garbage from a failing SD card\xff" * 200)
    with Outbox(path) as box:
        assert box.backlog() == (0, None)
        box.put(pending(1), durable=True)
        assert len(box.peek(5)) == 1
    aside = list(tmp_path.glob("o.sqlite3.corrupt-*"))
    assert len(aside) == 1
    assert aside[0].read_bytes().startswith(b"\x00garbage")


def test_an_outbox_of_a_newer_layout_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA user_version = 99")
    with pytest.raises(OutboxError, match="newer"):
        Outbox(path)


KILL_SCRIPT = """
import os, signal, sys
from datetime import UTC, datetime
from borderwatch.edge.outbox import Outbox, Pending
box = Outbox(sys.argv[1])
for n in range(int(sys.argv[2])):
    box.put(Pending(sys.argv[3 + n], "borderwatch/v1/alert", b"{}", False,
                    datetime.now(UTC)), durable=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_messages_survive_the_process_being_killed(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    ids = [new_msg_id() for _ in range(20)]
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(path), str(len(ids)), *ids],
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == -9, proc.stderr
    with Outbox(path) as box:  # the lock died with the process
        assert [i.msg_id for i in box.peek(100)] == ids


# One operation of the property test: put an alert, put a track summary for key k, or
# acknowledge the first n waiting messages.
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("alert"), st.integers(0, 0)),
        st.tuples(st.just("track"), st.integers(0, 4)),
        st.tuples(st.just("ack"), st.integers(1, 3)),
        st.tuples(st.just("reopen"), st.integers(0, 0)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(ops=OPS)
def test_outbox_behaves_like_an_ordered_list_with_replacement(ops: list[tuple[str, int]]) -> None:
    # (coalescing key, payload) in put order; delivered: alerts first, each class in put order.
    model: list[tuple[str | None, bytes]] = []

    def delivery() -> list[tuple[str | None, bytes]]:
        return sorted(model, key=lambda m: m[0] is not None)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "o.sqlite3"
        box = Outbox(path)
        try:
            for i, (op, arg) in enumerate(ops):
                if op == "alert":
                    box.put(pending(i), durable=True)
                    model.append((None, pending(i).payload))
                elif op == "track":
                    key = f"boat-1:{arg}"
                    box.put(pending(i, f"track/{arg}"), coalesce_key=key, durable=False)
                    model = [m for m in model if m[0] != key] + [(key, pending(i).payload)]
                elif op == "ack":
                    for item in box.peek(arg):
                        box.ack(item)
                    sent = delivery()[:arg]
                    model = [m for m in model if m not in sent]
                else:
                    box.close()
                    box = Outbox(path)
                assert [(i.coalesce_key, i.payload) for i in box.peek(100)] == delivery()
                assert box.backlog()[0] == len(model)
        finally:
            box.close()
