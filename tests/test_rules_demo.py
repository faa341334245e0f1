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
        # Each in its owner's language (the demo's owners directory), amounts with their currency.
        "[delay] PO-2025-0042 owner=li.wei (李伟): 采购单 PO-2025-0042(华东五金 Huadong Hardware)已逾期 12 天",
        "[delay] SO-2025-0101 owner=amy.chen (陈艾米 Amy Chen): 销售单 SO-2025-0101(上海百货 Shanghai Stores)承诺",
        ("[unapproved_change] PO-2025-0044 owner=li.wei (李伟): 采购单 PO-2025-0044 被无权修改的 zhou.kai 改了"
        "(金额 ¥6,400.00 → ¥5,800.00、单价 ¥3.20 → ¥2.90)"),
        ("[unapproved_change] PO-2025-0049 owner=zhang.min (张敏): 采购单 PO-2025-0049(深圳电子 Shenzhen Electronics)"
        "金额 ¥64,000.00,超过 50,000 的审批限额,还没有审批"),
        ("[payment] AR-2025-0301 owner=zhao.min (赵敏): 发票 AR-2025-0301(应收,上海百货 Shanghai Stores,¥86,000.00)"
        "已逾期 10 天"),
        ("[payment] AP-2025-0088 owner=julia.braun (Julia Braun): payable invoice AP-2025-0088 (Nordic Steel AB, "
        "€36,400.00) is 5 days overdue"),
        # Folded live from the orders and stock rows, repartitioned by SKU@warehouse and by customer.
        "[stock] BOLT-M8@SH1 owner=wang.fang (王芳): SO-2025-0103 需要 SH1 仓的 BOLT-M8",
        "[stock] CARTON-L@SH1 owner=wang.fang (王芳): SH1 仓 CARTON-L 现有 800,低于安全库存 1,000",
        "[payment] 上海百货 Shanghai Stores owner=zhao.min (赵敏): 上海百货 Shanghai Stores 有 2 张发票逾期未付,共 ¥106,000.00",
        # The branch office's sheet, with dates written the way branch sheets write them.
        "[delay] SZ-PO-0101 owner=wang.fang (王芳): 采购单 SZ-PO-0101(宁波紧固件有限公司)已逾期",
    ]
    lines = summary.splitlines()
    for line in expected:
        head, _, text = line.partition(": ")
        assert any(head in got and text in got for got in lines), f"{line!r} not in:\n{summary}"
    assert "change records processed: 27" in summary
