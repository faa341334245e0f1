"""Password sign-in for desktop use: argon2id hashes in the owners directory, and a small backoff.

A person may carry `password_hash` (made by `orderwatch alerts hash-password`) in the owners
directory; only such a person can sign in with a password (the form: signin_form.py). It answers the same for
an unknown person, a person without a hash and a wrong password, and spends the same work on each
(a hash is always verified). Failed tries are counted per person and per address in memory: after
a few, each further try waits longer (doubling, up to 15 minutes); a success clears the person's
count. The counts live in the worker's memory: a restart forgets them, and each worker counts its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

FREE_TRIES = 5  # failed tries before the backoff starts
MAX_WAIT = 15 * 60.0
_HASHER = PasswordHasher()  # argon2id with the library's current recommended costs
_DUMMY = _HASHER.hash("not anybody's password")  # verified for unknown people: the same work either way


def hash_password(password: str) -> str:
    """An argon2id hash of `password` for the owners directory's `password_hash`."""
    if len(password) < 8:
        raise ValueError("a password needs at least 8 characters")
    return _HASHER.hash(password)


def check(stored: str | None, password: str) -> bool:
    """True when `password` matches `stored`; a missing hash verifies a dummy one and is False."""
    try:
        return _HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@dataclass
class Backoff:
    """Failed tries per key (a person, an address) and until when the next try must wait."""

    free: int = FREE_TRIES
    failures: dict[str, int] = field(default_factory=dict)
    until: dict[str, float] = field(default_factory=dict)

    def wait(self, keys: tuple[str, ...], now: float) -> float:
        """Seconds left before any of `keys` may try again (0: go ahead)."""
        return max((self.until.get(k, 0.0) - now for k in keys), default=0.0) if keys else 0.0

    def failed(self, keys: tuple[str, ...], now: float) -> None:
        for k in keys:
            n = self.failures.get(k, 0) + 1
            self.failures[k] = n
            if n >= self.free:
                self.until[k] = now + min(MAX_WAIT, 2.0 ** (n - self.free + 1))
        if len(self.failures) > 10_000:  # a flood of made-up names must not grow memory for ever
            for k in [k for k in self.failures if self.until.get(k, 0.0) <= now]:
                self.failures.pop(k, None)
                self.until.pop(k, None)

    def succeeded(self, keys: tuple[str, ...]) -> None:
        for k in keys:
            self.failures.pop(k, None)
            self.until.pop(k, None)
