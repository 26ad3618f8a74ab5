"""The centre's store on SQLite and on a throw-away PostgreSQL cluster of the test session's own.

The PostgreSQL cluster is made with ``initdb`` in a temporary directory and listens only on a
Unix socket there (no TCP at all); when the tests run as root it runs as the ``postgres``
system user, because ``initdb`` refuses root. The PostgreSQL cases are skipped, with the
reason, only when no PostgreSQL server binaries (or, as root, no ``postgres`` user) exist.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from borderwatch.edge.store import (
    AlertActionError,
    AlertStatus,
    AlertStore,
    AsyncAlertStore,
    OperatorAction,
    StoreError,
    UnknownAlertError,
    migrate,
)
from borderwatch.edge.store.store import _running, engine_url
from borderwatch.edge.store.tables import metadata
from borderwatch.fusion.borders import BorderKind
from borderwatch.fusion.detections import TargetClass
from borderwatch.fusion.frames import LocalFrame
from borderwatch.fusion.outputs import AlertEvent, AlertKind, BorderAlert, TrackTable
from borderwatch.schema import (
    Alert,
    Publisher,
    Track,
    alert_from_core,
    new_msg_id,
    tracks_from_table,
)
from tests.conftest import free_port

EPOCH = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
PUBLISHER = Publisher(
    frame=LocalFrame(42.05, 19.1, 3.0),
    node_id="boat-2",
    epoch=EPOCH,
    sensor_ids=["radar-1", "thermal-1"],
    software_version="0.1.0",
    simulated=True,
    exercise=False,
)
RECEIVED = EPOCH + timedelta(minutes=5)

# ------------------------------------------------------------------------- PostgreSQL


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_cluster_owner(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[tuple[str, int]]:
    """(socket directory, port) of a PostgreSQL cluster made for this session."""
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no postgres user to run initdb as")
    workdir = tempfile.mkdtemp(prefix="bw-pg-")
    if os.geteuid() == 0:
        os.chown(workdir, owner.pw_uid, owner.pw_gid)
    data, port = os.path.join(workdir, "data"), free_port()
    pg_ctl = str(bindir / "pg_ctl")
    subprocess.run(
        _as_cluster_owner(
            [str(bindir / "initdb"), "-D", data, "-A", "trust", "-U", "bw", "--no-sync"]
        ),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {workdir} -c listen_addresses='' -c fsync=off"
    subprocess.run(
        _as_cluster_owner(
            [pg_ctl, "-D", data, "-o", options, "-l", f"{workdir}/log", "-w", "start"]
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield workdir, port
    finally:
        subprocess.run(
            _as_cluster_owner([pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(workdir, ignore_errors=True)


_database_counter = itertools.count()


def _fresh_postgres_database(server: tuple[str, int]) -> str:
    socket_dir, port = server
    name = f"store_{next(_database_counter)}"
    conninfo = f"host={socket_dir} port={port} user=bw dbname=postgres"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"postgresql://bw@/{name}?host={socket_dir}&port={port}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'centre.db'}"
    server: tuple[str, int] = request.getfixturevalue("postgres_server")
    return _fresh_postgres_database(server)


def migrate_url(store_url: str) -> str:
    """The SQLAlchemy URL the store uses for ``store_url``, to inspect the database directly."""
    return engine_url(store_url).render_as_string(hide_password=False)


@pytest.fixture
def store(store_url: str) -> Iterator[AlertStore]:
    with AlertStore.open(store_url) as s:
        yield s


# --------------------------------------------------------------------------- messages


def _core(alert_id: int, t: float, event: AlertEvent, reason: str = "") -> BorderAlert:
    return BorderAlert(
        t=t,
        alert_id=alert_id,
        track_id=40 + alert_id,
        kind=AlertKind.CROSSING,
        event=event,
        direction="left_to_right",
        border_kind=BorderKind.BLUE,
        segment=3,
        x=100.0 + t,
        y=-20.0,
        vx=1.0,
        vy=0.5,
        cov_xy=np.diag([4.0, 9.0]),
        p_cross=min(0.5 + 0.05 * t, 1.0),
        confidence=0.8,
        cls=TargetClass.BOAT,
        cls_conf=0.7,
        reason=reason,
        sensor_mask=0b01,
    )


def lifecycle(alert_id: int, times: tuple[float, ...] = (0.0, 4.0, 8.0, 12.0)) -> list[Alert]:
    """new, update…, end events of one alert, as the raising node publishes them."""
    events = [AlertEvent.NEW] + [AlertEvent.UPDATE] * (len(times) - 2) + [AlertEvent.END]
    out: list[Alert] = []
    for t, event in zip(times, events, strict=True):
        reason = "confirmed" if event is AlertEvent.END else ""
        previous = out[-1] if out else None
        out.append(alert_from_core(_core(alert_id, t, event, reason), PUBLISHER, previous=previous))
    return out


def tracks(t: float, ids: list[int]) -> list[Track]:
    n = len(ids)
    P = np.tile(np.diag([4.0, 4.0, 0.25, 0.25]), (n, 1, 1))
    x = np.array([[10.0 * i + t, 5.0 * i, 1.0, 0.0] for i in range(n)])
    table = replace(
        TrackTable.empty(t),
        track_id=np.array(ids, dtype=np.int64),
        x=x,
        P=P,
        mode_prob=np.ones((n, 1)),
        cls=np.full(n, int(TargetClass.PERSON), dtype=np.int64),
        cls_conf=np.full(n, 0.6),
        hits=np.full(n, 3, dtype=np.int64),
        first_t=np.zeros(n),
        last_update_t=np.full(n, t),
        sensor_mask=np.ones(n, dtype=np.int64),
        side=np.zeros(n, dtype=np.int64),
        border_segment=np.full(n, -1, dtype=np.int64),
        border_distance_m=np.full(n, np.nan),
    )
    return tracks_from_table(table, PUBLISHER)


# ------------------------------------------------------------------------- migrations


def test_migrations_build_the_schema_the_code_uses_from_an_empty_database(store_url: str):
    with AlertStore.open(store_url) as s:
        assert s.backend in store_url.split(":", 1)[0]
    engine = sa.create_engine(migrate_url(store_url))
    try:
        with engine.connect() as conn:
            assert migrate.current_revision(conn) == migrate.head_revision()
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
            assert diff == [], diff
            assert set(sa.inspect(conn).get_table_names()) >= {
                "alerts",
                "alert_events",
                "alert_actions",
                "track_points",
            }
    finally:
        engine.dispose()


def test_running_the_migrations_again_changes_nothing_and_keeps_the_data(store_url: str):
    alert = lifecycle(1)[0]
    with AlertStore.open(store_url) as s:
        assert s.record_alert(alert, RECEIVED)
    for _ in range(2):
        with AlertStore.open(store_url) as s:
            view = s.alert(alert.alert_id)
            assert view is not None
            assert view.latest == alert
            assert not s.record_alert(alert, RECEIVED)
    engine = sa.create_engine(migrate_url(store_url))
    try:
        with engine.begin() as conn:
            migrate.upgrade(conn)  # once more, on the open connection
            assert migrate.current_revision(conn) == migrate.head_revision()
            assert conn.execute(sa.text("SELECT count(*) FROM alert_events")).scalar_one() == 1
    finally:
        engine.dispose()


def test_a_database_from_a_newer_version_is_refused(store_url: str):
    AlertStore.open(store_url).close()
    engine = sa.create_engine(migrate_url(store_url))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = 'ffff9999'"))
    finally:
        engine.dispose()
    with pytest.raises(StoreError, match="ffff9999"):
        AlertStore.open(store_url)


@pytest.mark.parametrize(
    "url", ["mysql://user@localhost/db", "not a url", "sqlite:////nonexistent-dir/x/centre.db"]
)
def test_bad_or_unreachable_urls_are_store_errors(url: str):
    with pytest.raises(StoreError):
        AlertStore.open(url)


def test_a_postgresql_server_that_is_not_there_is_a_store_error(tmp_path: Path):
    with pytest.raises(StoreError, match="cannot open store"):
        AlertStore.open(f"postgresql://bw@/x?host={tmp_path}&port={free_port()}")


# ---------------------------------------------------------------------------- alerts


def test_the_same_message_twice_is_recorded_once(store: AlertStore):
    new, update, *_ = lifecycle(1)
    assert store.record_alert(new, RECEIVED)
    assert not store.record_alert(new, RECEIVED + timedelta(seconds=3))
    assert store.record_alert(update, RECEIVED)
    assert not store.record_alert(update, RECEIVED)
    view = store.alert(new.alert_id)
    assert view is not None
    assert view.event_count == 2
    assert view.latest == update
    assert view.first_received_at == RECEIVED
    assert [a.msg_id for a in store.alert_events(new.alert_id)] == [new.msg_id, update.msg_id]


def test_a_batch_is_one_transaction_in_which_only_repeats_are_undone(store: AlertStore):
    one, two = lifecycle(1), lifecycle(2)
    reused = lifecycle(3)[0].model_copy(update={"msg_id": one[0].msg_id})
    items = [(one[0], RECEIVED), (two[0], RECEIVED), (one[0], RECEIVED), (reused, RECEIVED)]
    items += [(e, RECEIVED) for e in one[1:]]
    assert store.record_alerts(items) == [True, True, False, False, True, True, True]
    view = store.alert(one[0].alert_id)
    assert view is not None
    assert (view.event_count, view.latest) == (4, one[-1])
    assert store.alert(reused.alert_id) is None  # its placeholder row undone with it
    assert [e.msg_id for e in store.alert_events(two[0].alert_id)] == [two[0].msg_id]
    assert store.record_alerts([]) == []


def test_a_reused_msg_id_under_another_alert_id_leaves_no_trace(store: AlertStore):
    first = lifecycle(1)[0]
    other = lifecycle(2)[0].model_copy(update={"msg_id": first.msg_id})
    assert store.record_alert(first, RECEIVED)
    assert not store.record_alert(other, RECEIVED)
    assert store.alert(other.alert_id) is None
    assert [v.alert_id for v in store.alerts()] == [first.alert_id]


def test_the_current_state_does_not_depend_on_arrival_order(store: AlertStore):
    events = lifecycle(0)
    expected = None
    for k, order in enumerate(itertools.permutations(range(len(events)))):
        # Each arrival order gets its own alert id, so every order is a fresh alert.
        alert_id = f"boat-2:{100 + k}"
        renamed = [
            e.model_copy(update={"alert_id": alert_id, "msg_id": new_msg_id()}) for e in events
        ]
        for i in order:
            assert store.record_alert(renamed[i], RECEIVED + timedelta(seconds=i))
        view = store.alert(alert_id)
        assert view is not None
        assert view.latest == renamed[-1]  # the end event, the latest in time
        assert view.ended
        assert view.first_time == events[0].time
        assert view.event_count == len(events)
        assert [e.msg_id for e in store.alert_events(alert_id)] == [e.msg_id for e in renamed]
        summary = (view.latest.event, view.first_time, view.event_count, view.status)
        assert expected in (None, summary)
        expected = summary


def test_an_event_at_the_same_time_orders_end_after_update(store: AlertStore):
    new, update, _, end = lifecycle(1, times=(0.0, 4.0, 8.0, 8.0))
    for alert in (end, update, new):
        store.record_alert(alert, RECEIVED)
    late_update = lifecycle(1, times=(0.0, 4.0, 8.0, 9.0))[2]  # same time as end, other msg
    late_update = late_update.model_copy(update={"time": end.time})
    store.record_alert(late_update, RECEIVED)
    view = store.alert(new.alert_id)
    assert view is not None
    assert view.latest.msg_id == end.msg_id


# --------------------------------------------------------------------------- operators


def test_operators_acknowledge_assign_and_close_with_who_and_when(store: AlertStore):
    for alert in lifecycle(1)[:2]:
        store.record_alert(alert, RECEIVED)
    alert_id = "boat-2:1"
    t0 = RECEIVED + timedelta(seconds=30)

    view = store.act(alert_id, "acknowledge", "ana", t0)
    assert (view.status, view.acknowledged_by, view.acknowledged_at) == (
        AlertStatus.ACKNOWLEDGED,
        "ana",
        t0,
    )
    view = store.act(alert_id, OperatorAction.ACKNOWLEDGE, "marko", t0 + timedelta(seconds=5))
    assert view.acknowledged_by == "ana"  # the first acknowledgement stands

    view = store.act(
        alert_id, "assign", "marko", t0 + timedelta(seconds=60), assignee="patrol-7", note="go"
    )
    assert (view.status, view.assignee, view.assigned_by) == (
        AlertStatus.ASSIGNED,
        "patrol-7",
        "marko",
    )
    assert [v.alert_id for v in store.alerts(open_only=True)] == [alert_id]

    closed_at = datetime(2026, 11, 23, 11, 30, tzinfo=UTC).astimezone()  # any zone in, UTC out
    view = store.act(alert_id, "close", "ana", closed_at, note="patrol found nobody")
    assert (view.status, view.closed_by, view.closed_at) == (AlertStatus.CLOSED, "ana", closed_at)
    assert view.closed_at is not None
    assert view.closed_at.tzinfo == UTC
    assert store.alerts(open_only=True) == []
    assert [v.alert_id for v in store.alerts()] == [alert_id]

    history = store.actions(alert_id)
    assert [(a.action, a.operator) for a in history] == [
        (OperatorAction.ACKNOWLEDGE, "ana"),
        (OperatorAction.ACKNOWLEDGE, "marko"),
        (OperatorAction.ASSIGN, "marko"),
        (OperatorAction.CLOSE, "ana"),
    ]
    assert history[2].note == "go"
    assert history[2].assignee == "patrol-7"

    with pytest.raises(AlertActionError, match="closed by ana"):
        store.act(alert_id, "acknowledge", "ivan", closed_at)
    assert len(store.actions(alert_id)) == 4


def test_assigning_an_unacknowledged_alert_acknowledges_it(store: AlertStore):
    store.record_alert(lifecycle(1)[0], RECEIVED)
    view = store.act("boat-2:1", "assign", "ana", RECEIVED, assignee="patrol-7")
    assert (view.acknowledged_by, view.acknowledged_at) == ("ana", RECEIVED)


def test_an_action_on_an_unknown_alert_is_a_clear_error_and_changes_nothing(store: AlertStore):
    store.record_alert(lifecycle(1)[0], RECEIVED)
    before = store.alerts()
    with pytest.raises(UnknownAlertError, match="boat-9:1") as info:
        store.act("boat-9:1", "acknowledge", "ana", RECEIVED)
    assert info.value.alert_id == "boat-9:1"
    assert store.actions("boat-9:1") == []
    assert store.alerts() == before


@pytest.mark.parametrize(
    ("action", "operator", "at", "assignee", "note"),
    [
        ("escalate", "ana", RECEIVED, None, ""),
        ("assign", "ana", RECEIVED, None, ""),
        ("acknowledge", "ana", RECEIVED, "patrol-7", ""),
        ("acknowledge", "  ", RECEIVED, None, ""),
        ("acknowledge", "x" * 65, RECEIVED, None, ""),
        ("acknowledge", "ana", datetime(2026, 11, 23, 9, 0), None, ""),  # naive
        ("close", "ana", RECEIVED, None, "n" * 501),
    ],
)
def test_bad_actions_are_refused_and_change_nothing(
    store: AlertStore, action, operator, at, assignee, note
):
    store.record_alert(lifecycle(1)[0], RECEIVED)
    before = store.alert("boat-2:1")
    with pytest.raises(AlertActionError):
        store.act("boat-2:1", action, operator, at, assignee=assignee, note=note)
    assert store.alert("boat-2:1") == before
    assert store.actions("boat-2:1") == []


def test_alerts_are_listed_newest_first_up_to_the_limit(store: AlertStore):
    for k in range(5):
        store.record_alert(lifecycle(k, times=(10.0 * k, 10.0 * k + 1))[0], RECEIVED)
    assert [v.alert_id for v in store.alerts(limit=3)] == ["boat-2:4", "boat-2:3", "boat-2:2"]
    with pytest.raises(StoreError):
        store.alerts(limit=0)


def test_concurrent_writers_from_threads_lose_no_event(store: AlertStore):
    events = [e for k in range(4) for e in lifecycle(k, times=(0.0, 1.0, 2.0, 3.0, 4.0, 5.0))]
    # Every event twice: threads race on the same rows and on the same msg_id.
    work = events + events[::-1]
    results: list[bool] = []
    lock = threading.Lock()

    def writer(part: list[Alert]) -> None:
        for alert in part:
            ok = store.record_alert(alert, RECEIVED)
            with lock:
                results.append(ok)

    threads = [threading.Thread(target=writer, args=(work[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(results) == len(events)
    for k in range(4):
        view = store.alert(f"boat-2:{k}")
        assert view is not None
        assert view.event_count == 6
        assert view.latest.event is AlertEvent.END


# ---------------------------------------------------------------------------- tracks


def test_track_histories_are_kept_in_time_order_without_duplicates(store: AlertStore):
    batches = [tracks(t, [1, 2]) for t in (2.0, 0.0, 1.0)]
    assert [store.record_tracks(b) for b in batches] == [2, 2, 2]
    assert store.record_tracks(batches[0] + tracks(3.0, [1])) == 1  # a re-delivered batch
    assert store.record_tracks([]) == 0

    history = store.track_history("boat-2:1")
    assert [(p.time - EPOCH).total_seconds() for p in history] == [0.0, 1.0, 2.0, 3.0]
    first = batches[1][0]
    assert history[0].msg_id == first.msg_id
    assert (history[0].lat_deg, history[0].lon_deg) == (
        first.position.lat_deg,
        first.position.lon_deg,
    )
    assert history[0].state_cov == first.state_cov
    assert history[0].class_label == "person"

    since = store.track_history("boat-2:2", since=EPOCH + timedelta(seconds=1))
    assert [(p.time - EPOCH).total_seconds() for p in since] == [1.0, 2.0]
    assert store.track_history("boat-2:99") == []

    assert store.prune_tracks(EPOCH + timedelta(seconds=2)) == 4
    assert len(store.track_history("boat-2:1")) == 2


# ----------------------------------------------------------------------------- asyncio


@pytest.mark.parametrize("process", [False, True], ids=["thread", "process"])
async def test_the_async_store_runs_calls_off_the_event_loop(store_url: str, process: bool):
    new, update, *_ = lifecycle(3)
    async with await AsyncAlertStore.open(store_url, process=process) as s:
        assert s.in_process is process
        assert await s.record_alert(new, RECEIVED)
        assert not await s.record_alert(new, RECEIVED)
        assert await s.record_alert(update, RECEIVED)
        assert await s.record_tracks(tracks(0.0, [1])) == 1
        view = await s.act(new.alert_id, "acknowledge", "ana", RECEIVED)
        assert view.status is AlertStatus.ACKNOWLEDGED
        assert [v.alert_id for v in await s.alerts(open_only=True)] == [new.alert_id]
        assert (await s.alert(new.alert_id)) == view
        assert len(await s.track_history("boat-2:1")) == 1
        with pytest.raises(UnknownAlertError) as unknown:
            await s.act("boat-2:77", "close", "ana", RECEIVED)
        assert unknown.value.alert_id == "boat-2:77"  # intact across the process boundary
        with pytest.raises(AlertActionError):
            await s.act(new.alert_id, "assign", "ana", RECEIVED)  # assign needs an assignee
        assert [e.msg_id for e in await s.alert_events(new.alert_id)] == [
            new.msg_id,
            update.msg_id,
        ]
        assert [a.operator for a in await s.actions(new.alert_id)] == ["ana"]


async def test_a_dead_store_process_costs_one_call_and_is_replaced(tmp_path: Path):
    new, update, *_ = lifecycle(3)
    url = f"sqlite:///{tmp_path / 'centre.db'}"
    async with await AsyncAlertStore.open(url, process=True) as s:
        assert await s.record_alert(new, RECEIVED)
        assert s._worker is not None
        assert s._worker._pool is not None
        for pid in list(s._worker._pool._processes):  # the store's process, killed outright
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(StoreError, match="store process died"):
            await s.record_alert(update, RECEIVED)
        # A new process reopens the same database: what was stored is there, and the call
        # that failed can be made again.
        assert await s.record_alert(update, RECEIVED)
        view = await s.alert(new.alert_id)
        assert view is not None
        assert view.latest.msg_id == update.msg_id


async def test_the_store_process_reports_a_database_it_cannot_open(tmp_path: Path):
    with pytest.raises(StoreError, match="cannot open store"):
        await AsyncAlertStore.open(f"sqlite:///{tmp_path / 'missing' / 'c.db'}", process=True)


_HOLDER = """
import asyncio, sys
from borderwatch.edge.store import AsyncAlertStore

async def main():
    s = await AsyncAlertStore.open(sys.argv[1], process=True)
    print(*s._worker._pool._processes, flush=True)
    await asyncio.sleep(600)

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_the_store_process_ends_when_its_centre_is_killed(tmp_path: Path):
    script = tmp_path / "holder.py"
    script.write_text(_HOLDER)
    holder = subprocess.Popen(
        [sys.executable, str(script), f"sqlite:///{tmp_path / 'c.db'}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        worker = int(holder.stdout.readline())
        os.kill(worker, 0)  # the store's process is running
        holder.kill()  # SIGKILL: the centre cannot clean up
        holder.wait()
        for _ in range(200):  # it notices within a second or two; 20 s is the limit
            if not _running(worker):
                break
            time.sleep(0.1)
        assert not _running(worker)
    finally:
        holder.kill()
