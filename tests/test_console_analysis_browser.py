"""The analysis and team pages in a real browser on a phone-sized screen, in Chinese and English.

The purchasing manager opens her signed link, goes to the analysis page from the bar, sees the
rates, the ageing, the weekly chart (an SVG the width of the screen) without scrolling sideways,
switches to English, and downloads nothing she did not ask for. The screenshots are taken here:
set ORDERWATCH_SCREENSHOTS=docs/screenshots to write them where the README shows them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.test_console_analysis import DemoSite, demo_site  # noqa: F401  (the fixture)
from tests.test_console_browser import (  # noqa: F401  (the fixture; skips without chromium)
    no_horizontal_scroll,
    phone,
    shoot,
)


def test_the_analysis_page_on_a_phone_in_chinese_and_english(demo_site: DemoSite, phone: Any,  # noqa: F811
                                                             tmp_path: Path) -> None:
    wait = WebDriverWait(phone, 20)
    phone.get(demo_site.link("wang.fang"))
    wait.until(ec.presence_of_element_located((By.ID, "live")))
    phone.find_element(By.CSS_SELECTOR, "nav.pages a[href='/console/analysis']").click()
    wait.until(ec.presence_of_element_located((By.ID, "rates")))
    assert "归档与分析" in phone.find_element(By.TAG_NAME, "h1").text  # wang.fang reads Chinese
    total = phone.find_element(By.ID, "total-accurate").text
    # Her team's orders: li.wei's PO-2025-0042 (late) and PO-2025-0044 (changed by zhou.kai).
    assert "准确率" in total and "0/2" in total
    chart = phone.find_element(By.CSS_SELECTOR, "#weekly svg.chart")
    assert 300 <= chart.size["width"] <= 375
    assert no_horizontal_scroll(phone), "the analysis page scrolls sideways at 375px"
    assert shoot(phone, "console-analysis-zh.png", tmp_path).stat().st_size > 10_000

    phone.find_element(By.CSS_SELECTOR, "a.lang").click()
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Analysis"))
    assert "Accurate" in phone.find_element(By.ID, "total-accurate").text
    assert "Overdue receivables and payables" in phone.page_source
    assert no_horizontal_scroll(phone), "the English analysis page scrolls sideways at 375px"
    assert shoot(phone, "console-analysis-en.png", tmp_path).stat().st_size > 10_000

    phone.find_element(By.CSS_SELECTOR, "nav.pages a[href='/console/team']").click()
    wait.until(ec.presence_of_element_located((By.ID, "by-owner")))
    assert "李伟" in phone.find_element(By.ID, "by-owner").text
    assert no_horizontal_scroll(phone), "the team page scrolls sideways at 375px"
    shoot(phone, "console-team-en.png", tmp_path)

    # The finance clerk's page has the ageing table, with amounts: it still fits.
    phone.get(demo_site.link("zhao.min", "/console/analysis?lang=en"))
    wait.until(ec.presence_of_element_located((By.ID, "ageing")))
    assert "106,000" in phone.find_element(By.ID, "ageing").text
    assert no_horizontal_scroll(phone), "the ageing table makes the page scroll sideways at 375px"
