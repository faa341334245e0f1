"""Password sign-in at a desk: the sign-in page's form and its POST (hashes and backoff: passwords.py).

The form is shown before there is any session, so it carries its own CSRF token: a random nonce in
a short-lived signed cookie of the sign-in page (`SameSite=Strict`), and its signature in the form.
Only people with a `password_hash` in the owners directory sign in this way; the session started is
the one a signed link starts.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets

from aiohttp import web

from console import i18n, links, passwords
from console.web import VIEWER, Console, _form, safe_back

COOKIE = "orderwatch_signin"
FORM_TTL = 3600  # seconds a sign-in form stays usable


def enabled(console: Console) -> bool:
    """The form is offered when the console can sign sessions and someone has a password."""
    return bool(console.secret) and any(p.password_hash for p in console.config.directory.people.values())


def page(console: Console, request: web.Request, status: int, *, error: str | None = None,
         next_page: str | None = None, person: str = "") -> web.Response:
    """The sign-in page; with the password form, a fresh form token (and its cookie)."""
    nonce = secrets.token_urlsafe(18) if enabled(console) else None
    token = links.sign(console.secret, "signin-form", nonce.encode()) if nonce else None
    response = console.render(request, "signin.html", status=status, reason=None, error=error, signin_csrf=token,
                              next_page=safe_back(next_page), person_given=person)
    if nonce is not None:
        value = links.seal({"n": nonce, "e": int(console.now() + FORM_TTL)}, console.secret, "signin-form")
        response.set_cookie(COOKIE, value, max_age=FORM_TTL, httponly=True, samesite="Strict",
                            secure=console._secure(request), path=links.SIGNIN_PATH)
    return response


def _token_ok(console: Console, request: web.Request, sent: str | None) -> bool:
    doc = links.unseal(request.cookies.get(COOKIE), console.secret, "signin-form")
    if doc is None or not isinstance(doc.get("e"), int) or doc["e"] <= console.now():
        return False
    expected = links.sign(console.secret, "signin-form", str(doc.get("n")).encode())
    return bool(sent) and hmac.compare_digest(expected, str(sent))


async def post(console: Console, request: web.Request) -> web.StreamResponse:
    """Check a person's password; the same answer for an unknown person, one without a password
    and a wrong password. A few failures make the next tries wait (per person and per address)."""
    form = await _form(request)
    t = i18n.texts(console.language(request))
    name, given, back = form.get("person", "").strip(), form.get("password", ""), form.get("next")
    if request.get(VIEWER) is not None:  # a machine with its token: nothing to sign in, as the GET
        raise web.HTTPSeeOther(safe_back(back))
    if not enabled(console) or not _token_ok(console, request, form.get("csrf")):
        # 401 as the sign-in page itself: without a session nothing under /console answers otherwise
        return page(console, request, 401, error=t("signin_stale"), next_page=back, person=name)
    keys = (f"person:{name.casefold()}", f"address:{request.remote}")
    wait = console.backoff.wait(keys, console.now())
    if wait > 0:
        seconds = int(wait + 0.999)
        response = page(console, request, 429, error=t("signin_wait").format(seconds=seconds), next_page=back,
                        person=name)
        response.headers["Retry-After"] = str(seconds)
        return response
    person = console.config.directory.person(name)
    stored = person.password_hash if person is not None else None
    if not await asyncio.to_thread(passwords.check, stored, given) or person is None:
        console.backoff.failed(keys, console.now())
        return page(console, request, 401, error=t("signin_wrong"), next_page=back, person=name)
    console.backoff.succeeded(keys[:1])
    return console.start_session(request, person.id, safe_back(back), 303)
