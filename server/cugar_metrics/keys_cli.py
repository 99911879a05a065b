"""Manage API keys: create (prints the key once), list, revoke.

The keys file holds only SHA-256 hashes of the keys, with each key's agent name, role
(recorder: the Record RPCs; reader: GetDashboard; admin: both) and times. It is written
atomically, through a symlink to its target; an existing file keeps its owner, group and mode,
a new one gets mode 0600. A running server reloads it within --auth-reload-interval (or at
once on SIGHUP).

After writing, create and revoke warn when the file is readable by its group or others, and
when a server will not be able to read it: each running `cugar-metrics serve` whose
--auth-keys-file (or CUGAR_METRICS_AUTH_KEYS_FILE) is this file, found in /proc, is checked
with its user, groups and capabilities against the file's owner, group and mode (the
directories on the way are not checked); with no such process, the file's previous owner is.
--strict makes any warning exit 3 (the file is written all the same).

  cugar-metrics keys create --file keys.json --name sales-agent --role recorder
  cugar-metrics keys list --file keys.json
  cugar-metrics keys revoke --file keys.json --id 3f9c0a1b2c4d     (one key)
  cugar-metrics keys revoke --file keys.json --name sales-agent    (all of an agent's keys)

Rotate a key: create a second key for the same name, deploy it to the agent, then revoke the
old one by --id.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from cugar_metrics.auth import (
    ROLES,
    KeyEntry,
    KeysFileError,
    create_key,
    exposure_warning,
    load_keys,
    revoke,
    save_keys,
)

ENV_FILE = "CUGAR_METRICS_AUTH_KEYS_FILE"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `cugar-metrics keys`."""
    sub = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    def with_file(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--file",
            default=os.environ.get(ENV_FILE),
            required=os.environ.get(ENV_FILE) is None,
            help=f"the keys file [env {ENV_FILE}]",
        )

    def strict(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--strict",
            action="store_true",
            help="exit 3 after a warning (file readable by others, or a running server that "
            "cannot read it)",
        )

    create = sub.add_parser("create", help="create a key and print it (shown only once)")
    with_file(create)
    strict(create)
    create.add_argument("--name", required=True, help="the agent's name, e.g. sales-agent")
    create.add_argument("--role", required=True, choices=ROLES, help="what the key may call")
    create.add_argument(
        "--rate-limit",
        default=None,
        help="this key's own limit, RATE[/s|/m|/h][:BURST], instead of its role's",
    )
    listing = sub.add_parser("list", help="list keys (ids, names, roles; never the keys)")
    with_file(listing)
    listing.add_argument("--json", action="store_true", help="print the entries as JSON")
    rev = sub.add_parser("revoke", help="revoke one key (--id) or all keys of an agent (--name)")
    with_file(rev)
    strict(rev)
    which = rev.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", dest="key_id", help="the key's id, from 'keys list'")
    which.add_argument("--name", help="revoke every key of this agent")


def _read(path: str, missing_ok: bool) -> list[KeyEntry]:
    if missing_ok and not os.path.exists(path):
        return []
    return list(load_keys(path).entries)


@dataclass(frozen=True)
class Reader:
    """Who must be able to read the keys file: a running server, or the file's owner."""

    what: str
    uid: int
    gids: frozenset[int]
    bypass: bool = False  # CAP_DAC_OVERRIDE or CAP_DAC_READ_SEARCH: reads any file

    def can_read(self, st: os.stat_result) -> bool:
        if self.bypass:
            return True
        if self.uid == st.st_uid:
            return bool(st.st_mode & stat.S_IRUSR)
        if st.st_gid in self.gids:
            return bool(st.st_mode & stat.S_IRGRP)
        return bool(st.st_mode & stat.S_IROTH)


_CAP_READ_ANY = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH


def _keys_file_of(pid: str, argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--auth-keys-file" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--auth-keys-file="):
            return arg.partition("=")[2]
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            for item in f.read().split(b"\0"):
                name, _, value = item.partition(b"=")
                if name.decode(errors="replace") == ENV_FILE and value:
                    return value.decode(errors="replace")
    except OSError:
        pass
    return None


def running_servers(path: str) -> Iterator[Reader]:
    """Each running `cugar-metrics serve` process whose keys file is `path` (from /proc)."""
    target = os.path.realpath(path)
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]
    except OSError:
        return
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
            if "serve" not in argv or not any(
                "cugar-metrics" in a or "cugar_metrics" in a for a in argv
            ):
                continue
            keys_file = _keys_file_of(pid, argv)
            if keys_file is None:
                continue
            cwd = os.readlink(f"/proc/{pid}/cwd")
            if os.path.realpath(os.path.join(cwd, keys_file)) != target:
                continue
            with open(f"/proc/{pid}/status") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
        except (OSError, ValueError):
            continue  # gone, or not ours to inspect
        uid = int(status["Uid"].split()[3])  # the filesystem uid decides access
        gids = {int(status["Gid"].split()[3]), *map(int, status.get("Groups", "").split())}
        bypass = bool(int(status.get("CapEff", "0").strip(), 16) & _CAP_READ_ANY)
        yield Reader(f"the running server (pid {pid}, uid {uid})", uid, frozenset(gids), bypass)


def _readers(path: str) -> list[Reader]:
    servers = list(running_servers(path))
    if servers:
        return servers
    try:
        st = os.stat(path)
    except OSError:
        return []  # a new file, and no server reading it
    return [Reader(f"the file's owner (uid {st.st_uid})", st.st_uid, frozenset({st.st_gid}))]


def _warnings(path: str, readers: list[Reader]) -> list[str]:
    """What to tell the operator about the file just written."""
    out = []
    exposed = exposure_warning(path)
    if exposed is not None:
        out.append(exposed)
    try:
        st = os.stat(path)
    except OSError as e:
        return [*out, f"cannot check {path} after writing it: {e.strerror}"]
    for reader in readers:
        if not reader.can_read(st):
            out.append(
                f"{reader.what} cannot read {path} (owner {st.st_uid}:{st.st_gid}, mode "
                f"{stat.S_IMODE(st.st_mode):04o}): it keeps its previous keys, so this change "
                f"does not take effect there; fix it with 'chown {reader.uid} {path}'"
            )
    return out


def _report(path: str, readers: list[Reader], strict: bool) -> int:
    warnings = _warnings(path, readers)
    for warning in warnings:
        print(f"cugar-metrics keys: warning: {warning}", file=sys.stderr)
    return 3 if warnings and strict else 0


def run(args: argparse.Namespace) -> int:
    """Runs `cugar-metrics keys ACTION`; returns the exit code."""
    path: str = args.file
    try:
        if args.keys_command == "create":
            key, entries = create_key(
                _read(path, missing_ok=True), args.name, args.role, args.rate_limit
            )
            readers = _readers(path)
            save_keys(path, entries)
            entry = entries[-1]
            print(
                f"created key {entry.id} for agent {entry.name!r} (role {entry.role}) in {path}",
                file=sys.stderr,
            )
            print(
                "store it now, it is not shown again; agents send it as "
                "'authorization: Bearer <key>':",
                file=sys.stderr,
            )
            print(key)
            return _report(path, readers, args.strict)
        if args.keys_command == "list":
            entries = _read(path, missing_ok=False)
            if args.json:
                print(json.dumps([_public(e) for e in entries], indent=2))
                return 0
            print(f"{'ID':<12}  {'NAME':<24}  {'ROLE':<8}  {'STATE':<7}  {'CREATED':<20}  LIMIT")
            for e in entries:
                state = "revoked" if e.revoked else "active"
                print(
                    f"{e.id:<12}  {e.name:<24}  {e.role:<8}  {state:<7}  {e.created_time:<20}  "
                    f"{e.rate_limit or '-'}"
                )
            return 0
        count, entries = revoke(_read(path, missing_ok=False), name=args.name, key_id=args.key_id)
        if count == 0:
            what = f"agent {args.name!r}" if args.name else f"id {args.key_id!r}"
            print(f"cugar-metrics keys: no active key with {what} in {path}", file=sys.stderr)
            return 1
        readers = _readers(path)
        save_keys(path, entries)
        print(f"revoked {count} key{'s' if count > 1 else ''} in {path}", file=sys.stderr)
        return _report(path, readers, args.strict)
    except (KeysFileError, OSError) as e:
        print(f"cugar-metrics keys: error: {e}", file=sys.stderr)
        return 1


def _public(e: KeyEntry) -> dict[str, object]:
    return {
        "id": e.id,
        "name": e.name,
        "role": e.role,
        "created_time": e.created_time,
        "revoked": e.revoked,
        "revoked_time": e.revoked_time,
        "rate_limit": e.rate_limit,
    }
