"""The alert store on SQLite and on the real PostgreSQL server: migrations, idempotence, people's actions.

A v1 store is built by the v1 code itself (tests/legacy_store_v1.py, frozen)
and then opened by the current code.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from alerts.migrations import SchemaTooNew
from alerts.schema import SCHEMA_VERSION
from alerts.store import AlertStore
from tests import legacy_store_v1
from tests.alerts_helpers import BACKENDS, HOUR, T0, database, event


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database(request.param, tmp_path) as url:
        yield url


def _schema(url: str) -> dict[str, object]:
    engine = sa.create_engine(url)
    try:
        insp = sa.inspect(engine)
        out: dict[str, object] = {}
        for table in sorted(t for t in insp.get_table_names() if t.startswith("ow_")):
            out[table] = sorted((c["name"], type(c["type"]).__name__, c["nullable"]) for c in insp.get_columns(table))
            out[table + ":indexes"] = sorted((i["name"], tuple(i["column_names"])) for i in insp.get_indexes(table))
        return out
    finally:
        engine.dispose()


def test_a_v1_store_is_upgraded_in_place_keeping_its_alerts(store_url: str) -> None:
    old = legacy_store_v1.AlertStore(store_url)
    fired, resolved = event("PO-1"), event("PO-2")
    old.apply([fired, resolved, event("PO-2", "resolved", at=T0 + HOUR)])
    old.close()

    store = AlertStore(store_url)
    assert store.migrated_from == 1
    alerts = {a.key: a for a in store.list()}
    assert (alerts["PO-1"].state, alerts["PO-2"].state) == ("firing", "resolved")
    assert alerts["PO-1"].labels == {"family": "delay", "supplier": "Acme Bearings"}
    assert [h[0] for h in store.history(resolved.fingerprint)] == ["firing", "resolved"]
    # The upgraded store does everything a new one does.
    assert store.apply([fired]) == []  # a replay of what v1 stored changes nothing
    assert store.acknowledge([fired.fingerprint], "li.wei", "calling the supplier") == [fired.fingerprint]
    assert store.get(fired.fingerprint).acked_by == "li.wei"
    store.close()
    assert AlertStore(store_url).migrated_from == SCHEMA_VERSION  # opening again migrates nothing


def test_an_upgraded_store_has_exactly_the_schema_of_a_new_one(store_url: str, tmp_path) -> None:
    legacy_store_v1.AlertStore(store_url).close()
    AlertStore(store_url).close()
    if store_url.startswith("sqlite"):
        fresh = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
        AlertStore(fresh).close()
    else:
        fresh = store_url.replace("ow_test", "ow_fresh")
        schema = fresh.rsplit("%3D", 1)[1]
        admin = sa.create_engine(fresh.split("?")[0])
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        AlertStore(fresh).close()
    try:
        assert _schema(store_url) == _schema(fresh)
    finally:
        if not store_url.startswith("sqlite"):
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def test_a_store_from_a_newer_orderwatch_is_refused(store_url: str) -> None:
    AlertStore(store_url).close()
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE ow_meta SET value = '99' WHERE name = 'schema_version'"))
    engine.dispose()
    with pytest.raises(SchemaTooNew, match="schema version 99"):
        AlertStore(store_url)


def test_workers_opening_an_old_store_together_migrate_it_once(store_url: str) -> None:
    legacy_store_v1.AlertStore(store_url).close()
    errors: list[BaseException] = []
    found: list[int | None] = []

    def open_store() -> None:
        try:
            s = AlertStore(store_url)
            found.append(s.migrated_from)
            s.close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(found, key=str) == [1, SCHEMA_VERSION, SCHEMA_VERSION, SCHEMA_VERSION]


def test_transitions_are_idempotent_and_stale_ones_are_ignored(store_url: str) -> None:
    store = AlertStore(store_url)
    fire = event("PO-1")
    resolve = event("PO-1", "resolved", at=T0 + HOUR, since=T0)
    assert store.apply([fire]) == [fire]
    assert store.apply([fire]) == []  # replay
    assert store.apply([resolve, fire]) == [resolve]  # the late copy of the firing event is stale
    refire = event("PO-1", at=T0 + 2 * HOUR)  # a new episode
    assert store.apply([refire]) == [refire]
    assert [h[0] for h in store.history(fire.fingerprint)] == ["firing", "resolved", "firing"]
    assert store.get(fire.fingerprint).starts_at == datetime.fromtimestamp(T0 + 2 * HOUR, UTC)


def test_acknowledgement_survives_the_engine_repeating_itself(store_url: str) -> None:
    store = AlertStore(store_url)
    fire = event("PO-1")
    store.apply([fire])
    at = datetime.fromtimestamp(T0 + 600, UTC)
    assert store.acknowledge([fire.fingerprint], "li.wei", "supplier promised Friday", at) == [fire.fingerprint]
    assert store.acknowledge([fire.fingerprint], "li.wei", None, at) == []  # already acknowledged
    # The same episode with a new summary (the engine re-rendered it) keeps the acknowledgement.
    later = event("PO-1", at=T0 + HOUR, since=T0, severity="critical")
    assert store.apply([later]) == [later]
    a = store.get(fire.fingerprint)
    assert (a.state, a.severity, a.acked_by, a.ack_comment) == ("acknowledged", "critical", "li.wei",
                                                                "supplier promised Friday")
    entries = store.events(fire.fingerprint)
    assert [(e.state, e.actor, e.comment) for e in entries] == [
        ("firing", "engine", None), ("acknowledged", "li.wei", "supplier promised Friday"), ("updated", "engine", None)]
    assert entries[1].at == at
    # Resolution ends the episode; the next one starts unacknowledged.
    store.apply([event("PO-1", "resolved", at=T0 + 2 * HOUR, since=T0)])
    store.apply([event("PO-1", at=T0 + 3 * HOUR)])
    a = store.get(fire.fingerprint)
    assert (a.state, a.acked_by, a.escalation_level) == ("firing", None, 0)


def test_an_open_alert_fired_again_by_a_rebuilt_engine_keeps_its_episode(store_url: str) -> None:
    # After the broker restarted empty the engine starts from nothing and fires again, with a new `since`.
    store = AlertStore(store_url)
    fire = event("PO-1")
    store.apply([fire])
    store.acknowledge([fire.fingerprint], "li.wei", "supplier promised Friday", datetime.fromtimestamp(T0 + 60, UTC))
    again = event("PO-1", at=T0 + HOUR)  # since = T0 + HOUR
    assert store.apply([again]) == [again]
    assert store.apply([again]) == []  # replay
    a = store.get(fire.fingerprint)
    assert (a.state, a.acked_by, a.starts_at) == ("acknowledged", "li.wei", datetime.fromtimestamp(T0, UTC))
    assert a.last_change == datetime.fromtimestamp(T0 + HOUR, UTC)  # confirmed after the reset
    assert [h[0] for h in store.history(fire.fingerprint)] == ["firing", "acknowledged", "updated"]


def test_a_person_resolving_by_hand_closes_the_episode(store_url: str) -> None:
    store = AlertStore(store_url)
    fire = event("PO-1")
    store.apply([fire])
    assert store.resolve([fire.fingerprint], "wang.fang", "goods arrived, ERP not updated yet") == [fire.fingerprint]
    a = store.get(fire.fingerprint)
    assert (a.state, a.resolved_by) == ("resolved", "wang.fang")
    # The engine still sees the same episode: it does not reopen what a person closed…
    assert store.apply([event("PO-1", at=T0 + HOUR, since=T0, severity="critical")]) == []
    # …but a new episode does.
    new = event("PO-1", at=T0 + 5 * HOUR)
    assert store.apply([new]) == [new]
    assert store.get(fire.fingerprint).state == "firing"


def test_a_batch_of_thousands_is_applied_in_one_go(store_url: str) -> None:
    store = AlertStore(store_url)
    events = [event(f"PO-{i}") for i in range(3000)]
    assert len(store.apply(events)) == 3000
    assert store.apply(events) == []
    assert len(store.list(state="firing")) == 3000
    found, missing = store.resolve_ids([events[0].fingerprint[:8], "zzzz"])
    assert found == [events[0].fingerprint] and missing == ["zzzz"]


def test_texts_and_values_come_back_as_they_were_stored(store_url: str) -> None:
    # JSON columns are written by orjson, and by the json module where orjson refuses a value.
    store = AlertStore(store_url)
    facts = {"texts": {"summary": {"zh": "采购单 {key}（{supplier}）已逾期", "en": "PO {key} is late"}},
             "values": {"supplier": "华东五金 \"Huadong\"", "amount": 1234.5, "qty": 7}}
    plain = replace(event("PO-1"), labels={"supplier": "深圳电子"}, facts=facts)
    huge = replace(event("PO-2"), facts={"values": {"seq": 2**70, "note": "过大的整数"}})
    assert len(store.apply([plain, huge])) == 2
    kept = {a.key: a for a in store.list()}
    assert kept["PO-1"].facts == facts and kept["PO-1"].labels == {"supplier": "深圳电子"}
    assert kept["PO-2"].facts == {"values": {"seq": 2**70, "note": "过大的整数"}}
    (entry,) = store.events(plain.fingerprint)
    assert entry.detail == {"summary": "PO PO-1 is 9 days late", "severity": "warning"}


def test_history_times_are_utc(store_url: str) -> None:
    store = AlertStore(store_url)
    store.apply([event("PO-1")])
    (entry,) = store.events(event("PO-1").fingerprint)
    assert entry.at.utcoffset() == timedelta(0)
