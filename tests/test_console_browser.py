"""The console in a real browser (Debian's chromium, driven through chromedriver by Selenium).

A person opens their signed link on a phone-sized screen, sees their alert on "my exceptions"
in their language, acknowledges it with a comment, and the store records it under them.
The screenshots of the console are taken by these tests (`shoot`): set
ORDERWATCH_SCREENSHOTS=docs/screenshots to write them where the README shows them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import ci
from tests.test_console import PO1, PO2, Site, site  # noqa: F401  (the fixture)
from tests.test_console_password import PASSWORD, desk, li_wei_hash  # noqa: F401  (the fixtures)

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if not (CHROMIUM and DRIVER) and not ci():
    pytest.skip("apt-get install chromium chromium-driver (.ci/run does)", allow_module_level=True)


@pytest.fixture
def phone() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=375,740"):
        options.add_argument(arg)
    # A phone: 375 CSS pixels wide, touch, a phone's user agent.
    options.add_experimental_option("mobileEmulation", {
        "deviceMetrics": {"width": 375, "height": 740, "pixelRatio": 2.0, "touch": True},
        "userAgent": "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36",
    })
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=str(DRIVER)))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def no_horizontal_scroll(driver: Any) -> bool:
    width = driver.execute_script("return document.documentElement.scrollWidth")
    viewport = driver.execute_script("return window.innerWidth")
    return bool(width <= viewport)


def shoot(driver: Any, name: str, tmp_path: Path) -> Path:
    """A screenshot of the whole page at the phone's width (the emulated screen made as tall as it),
    into $ORDERWATCH_SCREENSHOTS when set (the README's docs/screenshots), else the test's folder."""
    folder = Path(os.environ.get("ORDERWATCH_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    metrics = {"width": 375, "deviceScaleFactor": 2, "mobile": True}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": min(height, 6000)})
    path = folder / name
    driver.save_screenshot(str(path))
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": 740})
    return path


def test_open_the_link_see_the_alert_and_acknowledge_it_on_a_phone(site: Site, phone: Any,  # noqa: F811
                                                                    tmp_path: Path) -> None:
    wait = WebDriverWait(phone, 20)
    phone.get(site.link("li.wei"))
    wait.until(ec.presence_of_element_located((By.ID, "live")))
    assert phone.current_url.endswith("/console/")
    assert "我的异常" in phone.find_element(By.TAG_NAME, "h1").text  # li.wei reads Chinese
    card = phone.find_element(By.ID, f"a-{PO1.fingerprint}")
    assert "PO-1" in card.text and not phone.find_elements(By.ID, f"a-{PO2.fingerprint}")
    assert no_horizontal_scroll(phone), "my exceptions scrolls sideways at 375px"
    assert shoot(phone, "console-mine-zh.png", tmp_path).stat().st_size > 10_000

    card.find_element(By.TAG_NAME, "summary").click()
    card.find_element(By.NAME, "comment").send_keys("已联系供应商，周五到货")
    card.find_element(By.CSS_SELECTOR, "button[value=ack]").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "p.done")))
    assert "已确认" in phone.find_element(By.CSS_SELECTOR, "p.done").text
    stored = site.store.get(PO1.fingerprint)
    assert (stored.state, stored.acked_by, stored.ack_comment) == ("acknowledged", "li.wei", "已联系供应商，周五到货")
    card = phone.find_element(By.ID, f"a-{PO1.fingerprint}")
    assert "已确认" in card.text and "li.wei" in card.text

    # The alert's page, in English after switching, still fits the phone.
    phone.find_element(By.CSS_SELECTOR, f"#a-{PO1.fingerprint} a.title").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "ol.history")))
    phone.find_element(By.CSS_SELECTOR, "a.lang").click()
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "ol.history"), "acknowledged"))
    assert "li.wei" in phone.find_element(By.CSS_SELECTOR, "ol.history").text
    assert no_horizontal_scroll(phone), "the alert page scrolls sideways at 375px"

    # My exceptions in English (the choice is remembered), the acknowledged alert marked as such.
    phone.find_element(By.CSS_SELECTOR, "a.brand").click()
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "My exceptions"))
    assert "acknowledged" in phone.find_element(By.ID, f"a-{PO1.fingerprint}").text
    assert no_horizontal_scroll(phone), "my exceptions in English scrolls sideways at 375px"
    assert shoot(phone, "console-mine-en.png", tmp_path).stat().st_size > 10_000


def test_the_list_updates_without_a_reload(site: Site, phone: Any) -> None:  # noqa: F811
    phone.get(site.link("li.wei"))
    WebDriverWait(phone, 20).until(ec.presence_of_element_located((By.ID, "live")))
    marker = phone.execute_script("document.body.dataset.loaded = 'once'; return document.body.dataset.loaded")
    site.store.resolve([PO1.fingerprint], "chen.jie", "arrived", site.clock.dt)
    # The script polls every 15 s and when the page becomes visible again: make it look now.
    phone.execute_script("document.dispatchEvent(new Event('visibilitychange'));")
    WebDriverWait(phone, 40).until(lambda d: not d.find_elements(By.ID, f"a-{PO1.fingerprint}"))
    assert marker == phone.execute_script("return document.body.dataset.loaded"), "the page was reloaded"


def test_sign_in_with_a_password_in_the_browser(desk: Site, phone: Any) -> None:  # noqa: F811
    """The sign-in page's form in a real browser: a wrong password is refused, the right one lands on
    the page that was asked for (its cookies, SameSite and paths, as a browser keeps them)."""
    wait = WebDriverWait(phone, 20)
    phone.get(f"{desk.base}/console/alerts/{PO1.fingerprint}")  # no session: to the sign-in page
    wait.until(ec.presence_of_element_located((By.ID, "password")))
    phone.find_element(By.ID, "person").send_keys("li.wei")
    phone.find_element(By.ID, "password").send_keys("not it")
    phone.find_element(By.CSS_SELECTOR, "form.password button").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "p.reason")))
    assert "Wrong name or password." in phone.find_element(By.CSS_SELECTOR, "p.reason").text
    assert no_horizontal_scroll(phone), "the sign-in page scrolls sideways at 375px"
    phone.find_element(By.ID, "password").send_keys(PASSWORD)
    phone.find_element(By.CSS_SELECTOR, "form.password button").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "ol.history")))
    assert phone.current_url.endswith(f"/console/alerts/{PO1.fingerprint}")
    assert "李伟" in phone.find_element(By.CSS_SELECTOR, "header.bar").text
