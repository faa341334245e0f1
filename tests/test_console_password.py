"""Password sign-in for desktop use, over real HTTP: the hash made by `orderwatch alerts hash-password`
goes into the owners directory; the sign-in page's form starts the same session a signed link does.

Refusals say the same for an unknown person, a wrong password and a person without a password;
a POST without the form's token is refused; repeated failures make the next tries wait.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orderwatch.yamlsrc import SourceError
from tests.alerts_helpers import config
from tests.test_console import (
    ALERTS,
    PO1,
    Browser,
    Site,
    keys,
    serve,
    site,  # noqa: F401  (the fixture: the same site without passwords)
)

PASSWORD = "雨天 tea at 4pm, please"


def hash_of(password: str) -> str:
    """`orderwatch alerts hash-password` with the password on its standard input (as a script pipes it)."""
    done = subprocess.run([sys.executable, "-m", "orderwatch.cli", "alerts", "hash-password"], input=password + "\n",
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout
    return done.stdout.strip()


@pytest.fixture(scope="module")
def li_wei_hash() -> str:
    return hash_of(PASSWORD)


@pytest.fixture
def desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, li_wei_hash: str) -> Iterator[Site]:
    """The console of tests/test_console.py where li.wei (only) has a password."""
    text = ALERTS.replace("li.wei: {name: 李伟,", f"li.wei: {{password_hash: '{li_wei_hash}', name: 李伟,")
    assert text != ALERTS
    yield from serve(tmp_path, monkeypatch, text)


def form_token(page: str) -> str:
    found = re.search(r'action="/console/signin"[^>]*>.*?name="csrf" value="([^"]+)"', page, re.DOTALL)
    assert found, "the sign-in page has no password form"
    return found.group(1)


def refusal(page: str) -> str:
    found = re.search(r'<p class="reason" role="alert">(.*?)</p>', page, re.DOTALL)
    assert found, "the page says nothing about the refusal"
    return found.group(1)


def try_password(browser: Browser, person: str, password: str, next_page: str = "/console/") -> object:
    page = browser.get("/console/signin")
    assert page.status == 401
    return browser.post("/console/signin", {"person": person, "password": password, "next": next_page,
                                            "csrf": form_token(page.text)})


def test_the_right_password_starts_a_session_like_a_link(desk: Site) -> None:
    browser = Browser(desk.base)
    reply = try_password(browser, "li.wei", PASSWORD, f"/console/alerts/{PO1.fingerprint}")
    assert reply.status == 303 and reply.location == f"/console/alerts/{PO1.fingerprint}"  # type: ignore[attr-defined]
    cookie = next(c for c in browser.set_cookie if c.startswith("orderwatch_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert sorted(keys(browser.get("/console/?format=json").json())) == ["PO-1", "PO-3", "SKU-9@WH1"]
    page = browser.get(f"/console/alerts/{PO1.fingerprint}").text
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    acked = browser.post(f"/console/alerts/{PO1.fingerprint}/ack", {"comment": "from my desk", "csrf": token})
    assert acked.status == 303
    assert desk.store.get(PO1.fingerprint).acked_by == "li.wei"
    # The id in any case (as aliases and e-mail addresses are matched); a link elsewhere is not followed.
    other = Browser(desk.base)
    reply = try_password(other, "LI.WEI", PASSWORD, "https://evil.example/")
    assert reply.status == 303 and reply.location == "/console/"  # type: ignore[attr-defined]


def test_wrong_password_unknown_person_and_no_password_get_the_same_answer(desk: Site) -> None:
    answers = []
    for person, password in (("li.wei", "not my password"), ("li.wei", ""), ("nobody-at-all", PASSWORD),
                             ("chen.jie", PASSWORD), ("chen.jie", "")):
        browser = Browser(desk.base)
        reply = try_password(browser, person, password)
        assert reply.status == 401, (person, reply.status)  # type: ignore[attr-defined]
        assert not any(c.startswith("orderwatch_session=") for c in browser.set_cookie)
        assert browser.get("/console/?format=json", html=False).status == 401
        answers.append(refusal(reply.text))  # type: ignore[attr-defined]
    assert set(answers) == {"Wrong name or password."}


def test_a_person_without_a_password_cannot_sign_in_by_password(desk: Site) -> None:
    """chen.jie has no password_hash: whatever is typed, no session; her link still works."""
    for password in ("", PASSWORD, "$argon2id$", "None"):
        reply = try_password(Browser(desk.base), "chen.jie", password)
        assert reply.status == 401  # type: ignore[attr-defined]
    assert desk.signed_in("chen.jie").get("/console/?format=json").status == 200


def test_a_post_without_the_forms_token_is_refused(desk: Site) -> None:
    browser = Browser(desk.base)
    right = {"person": "li.wei", "password": PASSWORD}
    first = browser.post("/console/signin", right)  # no form seen, no token
    assert first.status == 401 and refusal(first.text) == "This form has expired: it was reloaded, try again."
    token = form_token(browser.get("/console/signin").text)
    for sent in ({}, {"csrf": ""}, {"csrf": token[:-1] + ("A" if token[-1] != "A" else "B")}):
        reply = browser.post("/console/signin", {**right, **sent})
        assert reply.status == 401 and "expired" in refusal(reply.text), sent
    # The token of somebody else's form (another browser's cookie) does not help either.
    stranger = Browser(desk.base)
    theirs = form_token(stranger.get("/console/signin").text)
    browser.cookies.pop("orderwatch_signin", None)
    assert browser.post("/console/signin", {**right, "csrf": theirs}).status == 401
    assert not any(c.startswith("orderwatch_session=") for c in browser.set_cookie)
    # A session does not stand in for the form's token either.
    linked = desk.signed_in("li.wei")
    assert linked.post("/console/signin", right).status == 401
    assert "expired" in refusal(linked.post("/console/signin", right).text)


def test_repeated_failures_make_the_next_tries_wait(desk: Site) -> None:
    browser = Browser(desk.base)
    for _ in range(5):
        assert try_password(browser, "li.wei", "guess").status == 401  # type: ignore[attr-defined]
    reply = try_password(browser, "li.wei", PASSWORD)  # even the right password waits now
    assert reply.status == 429 and int(reply.headers["Retry-After"]) > 0  # type: ignore[attr-defined]
    assert "Too many tries" in refusal(reply.text)  # type: ignore[attr-defined]
    # The address is counted too: another name from the same address waits as well.
    assert try_password(browser, "chen.jie", "guess").status == 429  # type: ignore[attr-defined]
    desk.clock.advance(int(reply.headers["Retry-After"]))  # type: ignore[attr-defined]
    assert try_password(browser, "li.wei", PASSWORD).status == 303  # type: ignore[attr-defined]


def test_the_sign_in_page_has_no_password_form_when_nobody_has_a_password(site: Site) -> None:  # noqa: F811
    page = Browser(site.base).get("/console/signin")
    assert page.status == 401 and 'type="password"' not in page.text
    reply = Browser(site.base).post("/console/signin", {"person": "li.wei", "password": "x", "csrf": "x"})
    assert reply.status == 401 and 'type="password"' not in reply.text


def test_the_page_speaks_chinese_for_the_form_and_the_refusal(desk: Site) -> None:
    browser = Browser(desk.base)
    page = browser.get("/console/signin?lang=zh")
    assert "用密码登录" in page.text
    reply = browser.post("/console/signin", {"person": "li.wei", "password": "x", "csrf": form_token(page.text)})
    assert refusal(reply.text) == "账号或密码错误。"


def test_a_password_written_in_clear_is_refused_by_the_alerts_check() -> None:
    with pytest.raises(SourceError) as info:
        config("owners:\n  people:\n    li.wei: {name: 李伟, password_hash: hunter2hunter2}\n")
    (pos, message), = info.value.problems
    assert "alerts.yaml:3" in str(pos) and "not an argon2 hash" in message and "hash-password" in message


def test_hash_password_refuses_a_short_password() -> None:
    done = subprocess.run([sys.executable, "-m", "orderwatch.cli", "alerts", "hash-password"], input="short\n",
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1 and "at least 8 characters" in done.stderr and not done.stdout
