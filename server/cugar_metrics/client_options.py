"""Connection options of the commands that call a server (`demo`, `dashboard`): an API key
and TLS, so they work against a server started with --auth-keys-file and --tls-cert."""

from __future__ import annotations

import argparse
import os
from typing import Any

from cugar_metrics_client import TlsConfig

API_KEY_ENV = "CUGAR_METRICS_API_KEY"
API_KEY_HINT = f"pass --api-key or set {API_KEY_ENV}"


def add_arguments(parser: argparse.ArgumentParser, role: str) -> None:
    """--api-key (env CUGAR_METRICS_API_KEY), --tls-ca, --tls-cert, --tls-key."""
    parser.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV) or None,
        metavar="KEY",
        help=f"API key of role {role} or admin, sent as 'authorization: Bearer KEY' "
        f"(prefer the env var: a command line is visible to other users) [env {API_KEY_ENV}]",
    )
    parser.add_argument(
        "--tls-ca",
        default=None,
        metavar="PEM",
        help="connect over TLS, trusting the CA certificates in PEM (a server with --tls-cert)",
    )
    parser.add_argument(
        "--tls-cert",
        default=None,
        metavar="PEM",
        help="client certificate for mutual TLS (a server with --tls-client-ca); with --tls-key",
    )
    parser.add_argument("--tls-key", default=None, metavar="PEM", help="private key of --tls-cert")


def client_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of Client/BatchRecorder from the options; ValueError names the flag.

    TLS is on when any --tls-* flag is given (without --tls-ca: the system's roots).
    """
    kwargs: dict[str, Any] = {}
    if args.api_key is not None:
        kwargs["api_key"] = args.api_key
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together (mutual TLS)")
    if args.tls_ca is not None or args.tls_cert is not None:
        for flag, path in (
            ("--tls-ca", args.tls_ca),
            ("--tls-cert", args.tls_cert),
            ("--tls-key", args.tls_key),
        ):
            if path is not None and not os.path.isfile(path):
                raise ValueError(f"{flag}: no such file: {path}")
        kwargs["tls"] = TlsConfig(
            root_ca=args.tls_ca, client_cert=args.tls_cert, client_key=args.tls_key
        )
    return kwargs
