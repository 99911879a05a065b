"""Manage API keys: create (prints the key once), list, revoke.

The keys file holds only SHA-256 hashes of the keys, with each key's agent name, role
(recorder: the Record RPCs; reader: GetDashboard; admin: both) and times. It is written
atomically with mode 0600; a running server reloads it within --auth-reload-interval (or at
once on SIGHUP).

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
import sys

from cugar_metrics.auth import (
    ROLES,
    KeyEntry,
    KeysFileError,
    create_key,
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

    create = sub.add_parser("create", help="create a key and print it (shown only once)")
    with_file(create)
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
    which = rev.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", dest="key_id", help="the key's id, from 'keys list'")
    which.add_argument("--name", help="revoke every key of this agent")


def _read(path: str, missing_ok: bool) -> list[KeyEntry]:
    if missing_ok and not os.path.exists(path):
        return []
    return list(load_keys(path).entries)


def run(args: argparse.Namespace) -> int:
    """Runs `cugar-metrics keys ACTION`; returns the exit code."""
    path: str = args.file
    try:
        if args.keys_command == "create":
            key, entries = create_key(
                _read(path, missing_ok=True), args.name, args.role, args.rate_limit
            )
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
            return 0
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
        save_keys(path, entries)
        print(f"revoked {count} key{'s' if count > 1 else ''} in {path}", file=sys.stderr)
        return 0
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
