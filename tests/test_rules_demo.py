"""The demo shows the shipped rule packs at work: at least one alert of each family, with
its owner and a summary a buyer or a finance clerk would understand."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from orderwatch.broker import free_port
from tests.conftest import ORDERWATCH

pytestmark = pytest.mark.integration


def test_the_demo_shows_every_family_with_owner_and_summary(tmp_path: Path) -> None:
    res = subprocess.run(
        ORDERWATCH + ["demo", "--exit-when-idle", "--web-port", str(free_port()), "--datadir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=240, check=False,
    )
    out = res.stdout
    assert res.returncode == 0, out + res.stderr
    summary = out.split("=== orderwatch demo summary ===", 1)[1]
    expected = [
        "[delay] PO-2025-0042 owner=li.wei: PO PO-2025-0042 from 华东五金 Huadong Hardware is 12 days late",
        "[delay] SO-2025-0101 owner=amy.chen: SO SO-2025-0101 for 上海百货 Shanghai Stores is 2 days past the promised date",
        "[unapproved_change] PO-2025-0044 owner=li.wei: PO PO-2025-0044 was changed by zhou.kai, who is not allowed to (amount 6400 → 5800, unit_price 3.2 → 2.9)",
        "[unapproved_change] PO-2025-0049 owner=zhang.min: PO PO-2025-0049 to 深圳电子 Shenzhen Electronics is 64000 CNY, over the 50,000 limit, and not approved",
        "[payment] AR-2025-0301 owner=zhao.min: receivable invoice AR-2025-0301 (上海百货 Shanghai Stores, 86000 CNY) is 10 days overdue",
        "[payment] AP-2025-0088 owner=julia.braun: payable invoice AP-2025-0088 (Nordic Steel AB, 36400 EUR) is 5 days overdue",
        # Folded live from the orders and stock rows, repartitioned by SKU@warehouse and by customer.
        "[stock] BOLT-M8@SH1 owner=wang.fang: SO-2025-0103 needs BOLT-M8 at SH1 on",
        "[stock] CARTON-L@SH1 owner=wang.fang: CARTON-L at SH1: 800 on hand, below the safety stock of 1000",
        "[payment] 上海百货 Shanghai Stores owner=zhao.min: 上海百货 Shanghai Stores owes 106000 CNY past due on 2 invoices",
    ]
    lines = summary.splitlines()
    for line in expected:
        # Each alert's stored summary is its texts joined `中文 / English`: the English half is checked.
        head, _, text = line.partition(": ")
        assert any(head in got and text in got for got in lines), f"{line!r} not in:\n{summary}"
    assert "change records processed: 27" in summary
