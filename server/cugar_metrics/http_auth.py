"""HTTP basic authentication for the metrics port, from a file of ``user:sha256hex`` lines.

Each line names a user and the SHA-256 (hex) of its password; blank lines and lines starting
with ``#`` are ignored. Make a line with ``printf '%s' "$PASSWORD" | sha256sum``. The digest
is unsalted, so passwords must be long random strings (a scraper's secret, not a person's
password). The file is re-read when it changes; a file that cannot be parsed is logged and
the previous users stay in force. Every user's name and digest is compared in constant time,
so a response time tells nothing about which part was wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from cugar_metrics.files import FileWatch

log = logging.getLogger("cugar_metrics.http_auth")

_LINE = re.compile(r"^([^:\s]+):([0-9a-fA-F]{64})$")


class AuthFileError(ValueError):
    """The users file cannot be read or parsed; the message names the line."""


def parse_users(text: str, path: str) -> tuple[tuple[bytes, bytes], ...]:
    """``user:sha256hex`` lines -> ((user, digest bytes), ...)."""
    users = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.fullmatch(line)
        if m is None:
            raise AuthFileError(
                f"{path}:{number}: expected user:sha256hex (64 hex digits of the password's "
                "SHA-256)"
            )
        users.append((m.group(1).encode(), bytes.fromhex(m.group(2))))
    if not users:
        raise AuthFileError(f"{path}: no user:sha256hex line; nobody could scrape")
    return tuple(users)


def read_users(path: str) -> tuple[tuple[bytes, bytes], ...]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise AuthFileError(f"cannot read {path}: {e}") from None
    return parse_users(text, path)


class BasicAuthUsers:
    """The users of a file, reloaded when the file changes (see `files.FileWatch`)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._watch = FileWatch(path)
        self._users = read_users(path)

    def _current(self) -> tuple[tuple[bytes, bytes], ...]:
        with self._lock:
            if self._watch.changed():
                try:
                    self._users = read_users(self.path)
                    log.info("metrics basic auth: %s reloaded", self.path)
                except AuthFileError as e:
                    log.warning("metrics basic auth: keeping the previous users: %s", e)
            return self._users

    def check(self, authorization: str | None) -> bool:
        """True if the ``Authorization`` header value holds a known user and password."""
        if not authorization:
            return False
        scheme, _, encoded = authorization.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        if not sep:
            return False
        digest = hashlib.sha256(password).digest()
        ok = False
        for known_user, known_digest in self._current():
            # Both comparisons always run, for every user: no early exit to time.
            same_user = hmac.compare_digest(user, known_user)
            same_digest = hmac.compare_digest(digest, known_digest)
            ok |= same_user & same_digest
        return ok


def require_basic_auth(
    app: Callable[..., Iterable[bytes]], users: BasicAuthUsers, realm: str = "cugar-metrics"
) -> Callable[..., Iterable[bytes]]:
    """WSGI middleware: 401 with ``WWW-Authenticate`` unless the request authenticates."""
    challenge = f'Basic realm="{realm}", charset="UTF-8"'

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if users.check(environ.get("HTTP_AUTHORIZATION")):
            return app(environ, start_response)
        start_response(
            "401 Unauthorized",
            [("Content-Type", "text/plain; charset=utf-8"), ("WWW-Authenticate", challenge)],
        )
        return [b"unauthorized: this port requires basic authentication\n"]

    return guarded


__all__ = ["AuthFileError", "BasicAuthUsers", "parse_users", "read_users", "require_basic_auth"]
