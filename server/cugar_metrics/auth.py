"""API keys: the keys file, hashing, reload, and who may call what. No gRPC here.

A key is `cgm_` followed by 32 random bytes in URL-safe base64 (256 bits). The keys file
stores only each key's SHA-256: a key has far too much entropy to guess, so a fast hash is
enough and no salt or slow hash is needed. A presented key is hashed, looked up by its hash,
and the stored hash is compared with `hmac.compare_digest`; the lookup can only reveal
timing about the hash, which says nothing usable about any key.

The keys file (JSON, written atomically; a new file gets mode 0600, an existing one keeps its
owner, group and mode):

    {"version": 1, "keys": [{"id": "3f9c0a1b2c4d", "name": "sales-agent", "role": "recorder",
      "sha256": "<64 hex>", "created_time": "2025-01-01T00:00:00Z", "revoked": false,
      "revoked_time": null, "rate_limit": null}]}

`id` is the first 12 hex digits of the hash: a public name for one key, so an agent can hold
two keys while one is rotated out. `rate_limit` (optional, `RATE[/UNIT][:BURST]`) overrides
the role's limit for that key.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import stat
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal

from cugar_metrics.files import FileWatch, write_atomically
from cugar_metrics.ratelimit import RateLimit, parse_rate

log = logging.getLogger("cugar_metrics.auth")

ROLES: Final = ("recorder", "reader", "admin")
KEY_PREFIX: Final = "cgm_"
FILE_VERSION: Final = 1
NAME_PATTERN: Final = r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$"
_name = re.compile(NAME_PATTERN).fullmatch
_hex64 = re.compile(r"^[0-9a-f]{64}$").fullmatch

#: ErrorInfo reasons of refused calls; the metric label is the lower-case form.
MISSING_CREDENTIALS: Final = "MISSING_CREDENTIALS"
MALFORMED_CREDENTIALS: Final = "MALFORMED_CREDENTIALS"
UNKNOWN_KEY: Final = "UNKNOWN_KEY"
REVOKED_KEY: Final = "REVOKED_KEY"
ROLE_NOT_ALLOWED: Final = "ROLE_NOT_ALLOWED"
FAILURE_REASONS: Final = (
    MISSING_CREDENTIALS,
    MALFORMED_CREDENTIALS,
    UNKNOWN_KEY,
    REVOKED_KEY,
    ROLE_NOT_ALLOWED,
)

#: The authenticated agent of the RPC being handled (None when auth is off), for the servicer:
#: execution ids are remembered per agent, so one agent cannot shadow another's ids.
current_agent: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "cugar_metrics_agent", default=None
)

METRICS_SERVICE: Final = "cugar.metrics.v1.MetricsService"
HEALTH_SERVICE: Final = "grpc.health.v1.Health"
_REFLECTION_PREFIX: Final = "grpc.reflection."
#: The MetricsService methods each role may call; admin may call every method.
ROLE_METHODS: Final[Mapping[str, frozenset[str]]] = {
    "recorder": frozenset({"RecordExecution", "RecordExecutions"}),
    "reader": frozenset({"GetDashboard", "WatchDashboard"}),
}
RECORD_METHODS: Final = ROLE_METHODS["recorder"]
#: The OTLP trace receiver: recorders may export spans, as they record executions.
OTLP_EXPORT: Final = "opentelemetry.proto.collector.trace.v1.TraceService/Export"


class KeysFileError(ValueError):
    """The keys file cannot be read or is not valid; the message says where and why."""


@dataclass(frozen=True, slots=True)
class KeyEntry:
    id: str
    name: str
    role: str
    sha256: str
    created_time: str
    revoked: bool = False
    revoked_time: str | None = None
    rate_limit: str | None = None


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling: the key's id, its agent name and role, its own rate limit if any."""

    key_id: str
    name: str
    role: str
    rate_limit: RateLimit | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a call is refused: an ErrorInfo reason (see FAILURE_REASONS) and a message."""

    reason: str
    message: str


def new_key() -> str:
    """A fresh random key: `cgm_` and 43 URL-safe characters (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KeySet:
    """The keys of one version of the keys file, indexed by hash. Immutable."""

    def __init__(self, entries: Iterable[KeyEntry] = ()) -> None:
        self.entries: tuple[KeyEntry, ...] = tuple(entries)
        self._by_hash: dict[bytes, tuple[KeyEntry, RateLimit | None]] = {}
        for e in self.entries:
            limit = parse_rate(e.rate_limit) if e.rate_limit else None
            self._by_hash[bytes.fromhex(e.sha256)] = (e, limit)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(e.name for e in self.entries)

    def authenticate(self, authorization: str | None) -> Identity | Refusal:
        """The identity behind an `authorization` metadata value, or why there is none."""
        if not authorization:
            return Refusal(
                MISSING_CREDENTIALS,
                "this server requires an API key: send metadata 'authorization: Bearer <key>'",
            )
        scheme, _, key = authorization.strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return Refusal(
                MALFORMED_CREDENTIALS,
                "the authorization metadata must be 'Bearer <key>'",
            )
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        found = self._by_hash.get(digest)
        if found is None or not hmac.compare_digest(bytes.fromhex(found[0].sha256), digest):
            return Refusal(UNKNOWN_KEY, "the API key is not known to this server")
        entry, limit = found
        if entry.revoked:
            return Refusal(
                REVOKED_KEY, f"the API key {entry.id} of agent {entry.name!r} has been revoked"
            )
        return Identity(entry.id, entry.name, entry.role, limit)


Access = Literal["open", "authenticated", "roles"]


def access_for(method: str, reflection_requires_auth: bool) -> Access:
    """Whether `method` (`/package.Service/Method`) is open to anyone, to any valid key, or
    only to the roles `role_allows` admits."""
    service = method.lstrip("/").rpartition("/")[0]
    if service == HEALTH_SERVICE:
        return "open"  # probes carry no credentials
    if service.startswith(_REFLECTION_PREFIX):
        return "authenticated" if reflection_requires_auth else "open"
    return "roles"


def role_allows(role: str, method: str) -> bool:
    """Whether `role` may call `method`. Admin may call anything; other roles only their
    MetricsService methods, and recorders the OTLP trace export."""
    if role == "admin":
        return True
    if method.lstrip("/") == OTLP_EXPORT:
        return role == "recorder"
    service, _, name = method.lstrip("/").rpartition("/")
    return service == METRICS_SERVICE and name in ROLE_METHODS.get(role, frozenset())


def _entry(raw: Any, where: str) -> KeyEntry:
    if not isinstance(raw, dict):
        raise KeysFileError(f"{where}: not an object")
    try:
        entry = KeyEntry(
            id=str(raw["id"]),
            name=str(raw["name"]),
            role=str(raw["role"]),
            sha256=str(raw["sha256"]).lower(),
            created_time=str(raw.get("created_time", "")),
            revoked=bool(raw.get("revoked", False)),
            revoked_time=None if raw.get("revoked_time") is None else str(raw["revoked_time"]),
            rate_limit=None if raw.get("rate_limit") is None else str(raw["rate_limit"]),
        )
    except KeyError as e:
        raise KeysFileError(f"{where}: field {e.args[0]!r} is missing") from None
    if not _name(entry.name):
        raise KeysFileError(f"{where}: name {entry.name!r} must match {NAME_PATTERN}")
    if entry.role not in ROLES:
        raise KeysFileError(f"{where}: role {entry.role!r} is not one of {', '.join(ROLES)}")
    if not _hex64(entry.sha256):
        raise KeysFileError(f"{where}: sha256 must be 64 hex digits")
    if entry.rate_limit is not None:
        try:
            parse_rate(entry.rate_limit)
        except ValueError as e:
            raise KeysFileError(f"{where}: rate_limit: {e}") from None
    return entry


def parse_keys(text: str, path: str = "keys file") -> KeySet:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise KeysFileError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise KeysFileError(f'{path}: expected an object {{"version": 1, "keys": [...]}}')
    if doc.get("version") != FILE_VERSION:
        raise KeysFileError(f"{path}: version {doc.get('version')!r} is not {FILE_VERSION}")
    entries = [_entry(raw, f"{path}: keys[{i}]") for i, raw in enumerate(doc["keys"])]
    seen: set[str] = set()
    for i, e in enumerate(entries):
        if e.sha256 in seen:
            raise KeysFileError(f"{path}: keys[{i}]: the same key is listed twice")
        seen.add(e.sha256)
    return KeySet(entries)


def load_keys(path: str) -> KeySet:
    """Reads and validates the keys file. A missing file is an error (auth on with no keys
    would refuse everything silently); a file with no keys is allowed."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise KeysFileError(f"{path}: cannot read the keys file: {e.strerror}") from None
    return parse_keys(text, path)


def save_keys(path: str, entries: Iterable[KeyEntry]) -> None:
    """Writes the keys file atomically (see `files.write_atomically`): through a symlink to
    its target, keeping an existing file's owner, group and mode; a new file gets mode
    0600."""
    doc = {"version": FILE_VERSION, "keys": [asdict(e) for e in entries]}
    write_atomically(path, (json.dumps(doc, indent=2) + "\n").encode("utf-8"), mode=0o600)


def exposure_warning(path: str) -> str | None:
    """A warning when the keys file can be read by its group or by others (it holds hashes
    of live keys and the names of every agent), with the fix; None when it cannot."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None
    readers = [who for who, bit in (("group", 0o040), ("others", 0o004)) if mode & bit]
    if not readers:
        return None
    return (
        f"keys file {path} is readable by {' and '.join(readers)} (mode {mode:04o}): "
        f"run 'chmod 600 {path}' (or 640 with a group only the server's user is in)"
    )


def create_key(
    entries: Iterable[KeyEntry], name: str, role: str, rate_limit: str | None = None
) -> tuple[str, list[KeyEntry]]:
    """A new key for agent `name`, and the entries with its hash added."""
    if not _name(name):
        raise KeysFileError(f"name {name!r} must match {NAME_PATTERN}")
    if role not in ROLES:
        raise KeysFileError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if rate_limit is not None:
        try:
            parse_rate(rate_limit)
        except ValueError as e:
            raise KeysFileError(f"rate limit: {e}") from None
    key = new_key()
    digest = hash_key(key)
    entry = KeyEntry(
        id=digest[:12],
        name=name,
        role=role,
        sha256=digest,
        created_time=now_rfc3339(),
        rate_limit=rate_limit,
    )
    return key, [*entries, entry]


def revoke(
    entries: Iterable[KeyEntry], *, name: str | None = None, key_id: str | None = None
) -> tuple[int, list[KeyEntry]]:
    """Marks the keys of agent `name` (or the key `key_id`) revoked; returns how many were
    newly revoked and the entries."""
    count = 0
    out = []
    stamp = now_rfc3339()
    for e in entries:
        if not e.revoked and (e.name == name or e.id == key_id):
            e = replace(e, revoked=True, revoked_time=stamp)
            count += 1
        out.append(e)
    return count, out


class KeyStore:
    """The current keys of a keys file, reloaded when the file changes. A reload that fails
    keeps the previous keys and logs an error."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._watch = FileWatch(path)
        self.keys = load_keys(path)
        self.reloads = {"success": 0, "failure": 0}

    def reload_if_changed(self) -> bool:
        """Reloads when the file changed (see `files.FileWatch`); True if keys were replaced."""
        return self._watch.changed() and self._load()

    def reload(self) -> bool:
        """Reloads now (SIGHUP); True if the keys were replaced."""
        self._watch.mark()
        return self._load()

    def _load(self) -> bool:
        try:
            keys = load_keys(self.path)
        except KeysFileError as e:
            self.reloads["failure"] += 1
            log.error(
                "keys file not reloaded, keeping the previous %d keys: %s",
                len(self.keys.entries),
                e,
            )
            return False
        self.keys = keys
        self.reloads["success"] += 1
        active = sum(1 for e in keys.entries if not e.revoked)
        log.info(
            "keys file %s reloaded: %d keys (%d active, %d revoked)",
            self.path,
            len(keys.entries),
            active,
            len(keys.entries) - active,
        )
        return True


class AgentActivity:
    """When each agent last made an authorised Record call. Agents are names from the keys
    file, so the set is bounded by it; names removed from the file are forgotten."""

    def __init__(self) -> None:
        self.last_seen: dict[str, float] = {}

    def seen(self, name: str, now: float) -> None:
        self.last_seen[name] = now

    def retain(self, names: Iterable[str]) -> None:
        keep = set(names)
        for name in [n for n in self.last_seen if n not in keep]:
            del self.last_seen[name]


__all__ = [
    "FAILURE_REASONS",
    "KEY_PREFIX",
    "ROLES",
    "AgentActivity",
    "Identity",
    "KeyEntry",
    "KeySet",
    "KeyStore",
    "KeysFileError",
    "Refusal",
    "access_for",
    "create_key",
    "current_agent",
    "exposure_warning",
    "hash_key",
    "load_keys",
    "new_key",
    "parse_keys",
    "revoke",
    "role_allows",
    "save_keys",
]
