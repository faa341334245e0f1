"""The webhook connector over real HTTP, publishing to the real embedded broker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Self

import aiohttp
import pytest

from connectors.base import BookmarkStore
from connectors.mapping import FieldMapping, FieldSpec
from connectors.publisher import Publisher
from connectors.runner import ConnectorRunner
from connectors.webhook import WebhookConfig, WebhookConnector, sign
from orderwatch.broker import EmbeddedBroker, free_port
from tests.test_connectors_kit import flatten, make_topics, new_settings, read_topic

pytestmark = pytest.mark.integration
SECRET = "s3cret-用于签名"


def record(key: str, seq: int, **extra: Any) -> dict[str, Any]:
    return {"entity": "purchase_order", "key": key, "ts": "2025-03-05T10:00:00+08:00", "seq": seq,
            "fields": {"supplier": "华东五金", "qty": seq}, **extra}


async def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers or {}) as resp:
        return resp.status, await resp.json()


def signed(body: bytes) -> dict[str, str]:
    return {"X-Orderwatch-Signature": sign(SECRET, body), "Content-Type": "application/json"}


class Endpoint:
    """Webhook connectors run by a ConnectorRunner that publishes to a fresh set of topics."""

    def __init__(self, broker: EmbeddedBroker, tmp_path: Path, *configs: WebhookConfig) -> None:
        self.settings = new_settings(broker.url)
        self.bootstrap = broker.bootstrap
        self.connectors = [WebhookConnector(c) for c in configs]
        self.store = BookmarkStore(tmp_path / "bookmarks")
        self.publisher = Publisher(broker.bootstrap, self.settings.changes_topic, self.settings.deadletter_topic)
        self.runner = ConnectorRunner(list(self.connectors), self.publisher, self.store, interval=60)

    async def __aenter__(self) -> Self:
        await make_topics(self.bootstrap, self.settings)
        await self.publisher.start()
        await self.runner.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.stop()
        await self.publisher.stop()

    def url(self, index: int = 0) -> str:
        c = self.connectors[index]
        return f"http://127.0.0.1:{c.port}{c.config.path}"

    async def changes(self) -> list[dict[str, Any]]:
        return flatten(await read_topic(self.bootstrap, self.settings.changes_topic))

    async def dead(self) -> list[dict[str, Any]]:
        return await read_topic(self.bootstrap, self.settings.deadletter_topic)


def hmac_config(**options: Any) -> WebhookConfig:
    return WebhookConfig(id="erp-push", port=free_port(), auth="hmac", secret=SECRET, **options)


def test_signed_records_are_published_and_a_bad_signature_is_401(broker: EmbeddedBroker, tmp_path: Path) -> None:
    async def go() -> None:
        async with Endpoint(broker, tmp_path, hmac_config()) as ep:
            body = json.dumps(record("PO-1", 1)).encode()
            assert await post(ep.url(), body, signed(body)) == (200, {"accepted": 1, "duplicates": 0})
            status, answer = await post(ep.url(), body, {"X-Orderwatch-Signature": sign("wrong", body)})
            assert (status, answer["error"]) == (401, "X-Orderwatch-Signature does not match the body")
            status, answer = await post(ep.url(), body)
            assert status == 401 and answer["error"].startswith("missing X-Orderwatch-Signature header")
            tampered = body.replace(b'"qty": 1', b'"qty": 9')
            assert (await post(ep.url(), tampered, signed(body)))[0] == 401
            # The bare hex digest (no "sha256=" prefix) is accepted too.
            other = json.dumps(record("PO-2", 1)).encode()
            bare = {"X-Orderwatch-Signature": sign(SECRET, other).removeprefix("sha256=")}
            assert (await post(ep.url(), other, bare))[0] == 200
            published = sorted(await ep.changes(), key=lambda r: r["key"])
            assert [(r["source"], r["key"], r["seq"]) for r in published] == [
                ("erp-push", "PO-1", 1), ("erp-push", "PO-2", 1)]
            assert published[0]["ts"] == "2025-03-05T10:00:00+08:00"
            assert published[0]["fields"] == {"supplier": "华东五金", "qty": 1}

    asyncio.run(go())


def test_a_mixed_batch_accepts_the_good_records_and_reports_the_bad(broker: EmbeddedBroker, tmp_path: Path) -> None:
    async def go() -> None:
        async with Endpoint(broker, tmp_path, hmac_config(entity="purchase_order")) as ep:
            batch = [record("PO-1", 5), {**record("PO-2", 5), "ts": "yesterday"},
                     record("PO-3", 5), {**record("PO-4", 1), "source": "someone-else"},
                     "not an object", {**record("PO-5", 1), "entity": "invoice"}]
            body = json.dumps(batch).encode()
            status, answer = await post(ep.url(), body, signed(body))
            assert status == 400
            assert (answer["accepted"], answer["duplicates"]) == (2, 0)
            assert [(r["index"], r["field"]) for r in answer["rejected"]] == [
                (1, "ts"), (3, "source"), (4, "record"), (5, "entity")]
            assert answer["rejected"][0]["reason"] == "ts: not an ISO 8601 timestamp: 'yesterday'"
            # Sent again (the sender saw an error): the good ones are duplicates now.
            status, answer = await post(ep.url(), body, signed(body))
            assert (status, answer["accepted"], answer["duplicates"]) == (400, 0, 2)
            assert sorted(r["key"] for r in await ep.changes()) == ["PO-1", "PO-3"]
            dead = sorted(await ep.dead(), key=lambda d: d["at"])
            assert len(dead) == 8  # four bad records in each of the two requests
            assert dead[0]["source"] == "erp-push" and dead[0]["field"] == "ts"
            assert dead[0]["where"]["index"] == 1 and dead[0]["payload"]["key"] == "PO-2"
            # Not JSON at all.
            status, answer = await post(ep.url(), b"{oops", signed(b"{oops"))
            assert status == 400 and answer["error"].startswith("body is not JSON")
            # NaN is what some exporters write for an empty number; JSON has no such thing.
            nan = b'{"source": "erp", "entity": "purchase_order", "key": "PO-9", "ts": "2025-03-05T09:30:00+00:00",' \
                  b' "seq": 9, "fields": {"qty": NaN}}'
            status, answer = await post(ep.url(), nan, signed(nan))
            assert (status, answer["error"]) == (400, "body is not JSON: NaN is not a JSON number")
            assert "PO-9" not in [r["key"] for r in await ep.changes()]

    asyncio.run(go())


def test_a_body_over_the_limit_is_413(broker: EmbeddedBroker, tmp_path: Path) -> None:
    async def go() -> None:
        async with Endpoint(broker, tmp_path, hmac_config(max_bytes=2048)) as ep:
            big = json.dumps([record(f"PO-{n}", n) for n in range(40)]).encode()
            assert len(big) > 2048
            status, answer = await post(ep.url(), big, signed(big))
            assert (status, answer) == (413, {"error": "body over 2048 bytes"})

            async def chunks() -> Any:  # no Content-Length: the limit holds while reading
                for i in range(0, len(big), 512):
                    yield big[i : i + 512]

            async with aiohttp.ClientSession() as http, http.post(ep.url(), data=chunks(), headers=signed(big)) as resp:
                assert resp.status == 413
            small = json.dumps(record("PO-1", 1)).encode()
            assert (await post(ep.url(), small, signed(small)))[0] == 200
            assert len(await ep.changes()) == 1

    asyncio.run(go())


def test_a_body_arriving_in_pieces_is_read_whole(broker: EmbeddedBroker, tmp_path: Path) -> None:
    async def send_slowly(port: int, head: dict[str, str], body: bytes, pause: float = 0.2) -> tuple[int, Any]:
        """POST over a link where the body arrives in two halves, as over a slow network."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        lines = ["POST /ingest HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
                 *(f"{k}: {v}" for k, v in head.items())]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body[: len(body) // 2])
        await writer.drain()
        await asyncio.sleep(pause)
        writer.write(body[len(body) // 2 :])
        await writer.drain()
        answer = await reader.read()
        writer.close()
        status_line, _, rest = answer.partition(b"\r\n")
        return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])

    async def go() -> None:
        async with Endpoint(broker, tmp_path, hmac_config(max_bytes=4096)) as ep:
            port = ep.connectors[0].port
            body = json.dumps([record(f"PO-{n}", 1) for n in range(10)]).encode()
            assert len(body) < 4096
            head = {**signed(body), "Content-Length": str(len(body))}
            assert await send_slowly(port, head, body) == (200, {"accepted": 10, "duplicates": 0})
            big = json.dumps([record(f"PO-{n}", 2) for n in range(40)]).encode()
            assert len(big) > 4096
            chunked = b"".join(b"%x\r\n%s\r\n" % (len(big[i : i + 1000]), big[i : i + 1000])
                               for i in range(0, len(big), 1000)) + b"0\r\n\r\n"
            head = {**signed(big), "Transfer-Encoding": "chunked"}
            assert await send_slowly(port, head, chunked) == (413, {"error": "body over 4096 bytes"})
            assert len(await ep.changes()) == 10

    asyncio.run(go())


def test_bearer_tokens_and_mapped_rows(broker: EmbeddedBroker, tmp_path: Path) -> None:
    rows = WebhookConfig(
        id="mes-push", port=free_port(), path="/rows", auth="bearer", token="t0ken", entity="sales_order",
        key=("单号",), seq="版本", op="动作", ts="时间", actor="操作人",
        mapping=FieldMapping((FieldSpec("customer", "客户"), FieldSpec("promised_date", "交期", "date"))),
    )

    async def go() -> None:
        async with Endpoint(broker, tmp_path, rows) as ep:
            row = {"单号": "SO-7", "版本": 3, "时间": "2025/3/5 9:30", "客户": "北方钢材", "交期": "2025年3月20日",
                   "操作人": "王芳"}
            body = json.dumps(row, ensure_ascii=False).encode()
            status, answer = await post(ep.url(), body, {"Authorization": "Bearer nope"})
            assert (status, answer["error"]) == (401, "missing or wrong bearer token (Authorization: Bearer …)")
            assert (await post(ep.url(), body, {"Authorization": "Bearer t0ken"}))[0] == 200
            gone = json.dumps({"单号": "SO-7", "版本": 4, "动作": "delete"}).encode()
            assert (await post(ep.url(), gone, {"Authorization": "Bearer t0ken"}))[0] == 200
            bad = json.dumps({"单号": "SO-8", "客户": "x"}).encode()
            status, answer = await post(ep.url(), bad, {"Authorization": "Bearer t0ken"})
            assert status == 400 and answer["rejected"][0]["field"] == "版本"
            upsert, delete = await ep.changes()
            assert upsert == {"source": "mes-push", "entity": "sales_order", "key": "SO-7", "op": "upsert",
                              "ts": "2025-03-05T09:30:00+00:00", "seq": 3,
                              "fields": {"customer": "北方钢材", "promised_date": "2025-03-20"}, "changed": None,
                              "actor": "王芳"}
            assert (delete["op"], delete["seq"], delete["fields"]) == ("delete", 4, {})

    asyncio.run(go())


def test_accepted_means_published_and_a_broker_failure_is_503(broker: EmbeddedBroker, tmp_path: Path) -> None:
    async def go() -> None:
        async with Endpoint(broker, tmp_path, hmac_config()) as ep:
            body = json.dumps(record("PO-1", 1)).encode()
            assert (await post(ep.url(), body, signed(body)))[0] == 200
            saved = ep.store.load("erp-push")
            assert saved == {"last": {"purchase_order:PO-1": 1}}  # bookmarked once published
            await ep.publisher.stop()  # the broker connection is gone
            later = json.dumps(record("PO-1", 2)).encode()
            status, answer = await post(ep.url(), later, signed(later))
            assert status == 503 and answer["error"].startswith("could not publish, send again")
            assert ep.store.load("erp-push") == saved  # nothing was taken for accepted
            ep.publisher = Publisher(broker.bootstrap, ep.settings.changes_topic, ep.settings.deadletter_topic)

    asyncio.run(go())


def test_poison_bodies_are_400_with_the_reason_and_the_good_records_go_through(broker: EmbeddedBroker,
                                                                             tmp_path: Path) -> None:
    good = json.dumps(record("PO-OK", 1))
    deep = '{"a":' * 300 + "1" + "}" * 300
    deep_reason = "nested more than 32 levels deep (objects and arrays, the record being the first): over the limit"
    cursor_reason = ("seq: an integer cursor must fit in 64 bits (at most 18446744073709551615); "
                     "send a larger one as a string")
    # (body, the reasons of the rejected records or of the whole body, accepted)
    cases: list[tuple[bytes, list[tuple[int, str | None, str]] | str, int]] = [
        (('{"a":' * 2000 + "1" + "}" * 2000).encode(),
         "body is not JSON: nested more than 1024 levels deep, over the limit (32 for a record)", 0),
        (f'[{json.dumps(record("PO-D", 1))[:-1]}, "fields": {{"x": {deep}}}}}, {good}]'.encode(),
         [(0, "fields", f"fields: {deep_reason}")], 1),
        (f'[{json.dumps(record("PO-S", 2**100))}, {good}]'.encode(), [(0, "seq", cursor_reason)], 0),
        (f'[{{"key": "PO-X", "payload": {deep}}}, {good}]'.encode(), [(0, "payload", f"payload: {deep_reason}")], 0),
        (b'[' + json.dumps(record("PO-U", 1)).replace("PO-U", "\\ud800").encode() + b"]",
         [(0, "key", "key: holds text that is not valid Unicode (an unpaired UTF-16 surrogate such as \\ud800)")], 0),
        (f'[{json.dumps(record("PO-N", 1))[:-1]}, "qty": NaN, "n": {2**100}}}]'.encode(),
         "body is not JSON: NaN is not a JSON number", 0),
        (f'[{json.dumps(record("PO-I", 1))[:-1]}, "qty": 1e400}}]'.encode(),
         "body is not JSON: 1e400 is beyond the range of numbers that can be kept (about ±1.8e308)", 0),
        (b"[" + b", ".join([b"{}"] * 10_001) + b"]", "10001 records, over the limit of 10000 per request", 0),
        (b'{"key": "PO-\xff"}', "body is not JSON: ", 0),
    ]

    async def go() -> None:
        async with Endpoint(broker, tmp_path, hmac_config(entity="purchase_order")) as ep:
            for body, expected, accepted in cases:
                status, answer = await post(ep.url(), body, signed(body))
                assert status == 400, (body[:80], answer)
                if isinstance(expected, str):
                    assert answer["error"].startswith(expected) and answer["accepted"] == 0
                else:
                    assert [(r["index"], r["field"], r["reason"]) for r in answer["rejected"]] == expected
                    assert answer["accepted"] == accepted  # PO-OK once; a duplicate afterwards
            assert [r["key"] for r in await ep.changes()] == ["PO-OK"]
            dead = await ep.dead()  # the rejected records, each with its reason, payload safe to read
            by_field = {d["field"]: d for d in dead}
            assert sorted(by_field) == ["fields", "key", "payload", "seq"] and len(dead) == 4
            assert by_field["seq"]["payload"]["key"] == "PO-S"
            assert by_field["key"]["payload"]["key"] == "\\ud800"
            # The endpoint goes on.
            later = json.dumps(record("PO-LATER", 1)).encode()
            assert (await post(ep.url(), later, signed(later)))[0] == 200

    asyncio.run(go())
