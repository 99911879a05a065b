"""The `cugar-metrics` command. The only place that exits."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from cugar_metrics import __version__
from cugar_metrics.aggregator import Caps
from cugar_metrics.auth import KeysFileError, load_keys
from cugar_metrics.config import Config, ConfigError, parse_duration
from cugar_metrics.ratelimit import RateLimit, parse_rate

ENV_PREFIX = "CUGAR_METRICS_"

# (flag, env suffix, help, default as text); every serve option is also an env var.
_SERVE_OPTIONS = [
    ("--host", "HOST", "address of the gRPC port (0.0.0.0: every interface)", "127.0.0.1"),
    ("--grpc-port", "GRPC_PORT", "gRPC port; 0 picks a free one", "50051"),
    ("--metrics-host", "METRICS_HOST", "address of the metrics port (default: --host)", None),
    ("--metrics-port", "METRICS_PORT", "HTTP port of /metrics; 0 picks a free one", "9464"),
    (
        "--shutdown-delay",
        "SHUTDOWN_DELAY",
        "on SIGTERM/SIGINT, how long to keep serving while health says NOT_SERVING, so load "
        "balancers stop sending before the listener closes",
        "0s",
    ),
    (
        "--shutdown-grace",
        "SHUTDOWN_GRACE",
        "then, how long in-flight RPCs may take to finish",
        "10s",
    ),
    (
        "--max-duration",
        "MAX_DURATION",
        "longest accepted duration (execution, tool call, approval wait)",
        "24h",
    ),
    (
        "--dedup-horizon",
        "DEDUP_HORIZON",
        "how long an execution_id is remembered to acknowledge retries as duplicates",
        "10m",
    ),
    (
        "--dedup-max-entries",
        "DEDUP_MAX_ENTRIES",
        "most execution ids remembered (about 8 bytes each); past it the oldest are forgotten",
        "5000000",
    ),
    (
        "--max-profiles",
        "MAX_PROFILES",
        "distinct profiles kept before folding into _overflow",
        "50",
    ),
    ("--max-domains", "MAX_DOMAINS", "distinct domains kept", "20"),
    ("--max-tools", "MAX_TOOLS", "distinct domain/tool pairs kept", "200"),
    ("--max-error-types", "MAX_ERROR_TYPES", "distinct execution error types kept", "100"),
    ("--replica", "REPLICA", "name of this replica in dashboards (default: host name)", None),
    (
        "--ready-file",
        "READY_FILE",
        "once serving, write {grpc_port, metrics_port, pid} as JSON to this file",
        None,
    ),
    ("--log-level", "LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR", "INFO"),
    (
        "--state-file",
        "STATE_FILE",
        "save counters, distributions and remembered ids to this file at every checkpoint and on "
        "drain, and restore them at start-up (off unless given)",
        None,
    ),
    (
        "--checkpoint-interval",
        "CHECKPOINT_INTERVAL",
        "how often the state file is written; a hard kill loses at most this much",
        "30s",
    ),
    (
        "--tls-cert",
        "TLS_CERT",
        "PEM certificate chain: serve the gRPC port over TLS (reloaded when the file changes)",
        None,
    ),
    ("--tls-key", "TLS_KEY", "PEM private key of --tls-cert", None),
    (
        "--tls-client-ca",
        "TLS_CLIENT_CA",
        "PEM CA certificates: require gRPC clients to present a certificate they signed (mTLS)",
        None,
    ),
    (
        "--metrics-tls-cert",
        "METRICS_TLS_CERT",
        "PEM certificate chain: serve the metrics port over HTTPS (reloaded when it changes)",
        None,
    ),
    ("--metrics-tls-key", "METRICS_TLS_KEY", "PEM private key of --metrics-tls-cert", None),
    (
        "--metrics-basic-auth-file",
        "METRICS_BASIC_AUTH_FILE",
        "file of user:sha256hex lines: the metrics port requires HTTP basic auth",
        None,
    ),
    (
        "--auth-keys-file",
        "AUTH_KEYS_FILE",
        "API keys file (see 'cugar-metrics keys'): require 'authorization: Bearer <key>' on "
        "MetricsService calls; reloaded when it changes and on SIGHUP",
        None,
    ),
    (
        "--auth-reload-interval",
        "AUTH_RELOAD_INTERVAL",
        "how often the keys file is checked for changes",
        "2s",
    ),
    (
        "--rate-limit-recorder",
        "RATE_LIMIT_RECORDER",
        "per-key limit of recorder keys, RATE[/s|/m|/h][:BURST], e.g. 200/s:400 (default: none)",
        None,
    ),
    ("--rate-limit-reader", "RATE_LIMIT_READER", "per-key limit of reader keys", None),
    ("--rate-limit-admin", "RATE_LIMIT_ADMIN", "per-key limit of admin keys", None),
    (
        "--max-concurrent-rpcs",
        "MAX_CONCURRENT_RPCS",
        "MetricsService calls in flight at once; more are answered RESOURCE_EXHAUSTED "
        "(health checks are not counted)",
        "1000",
    ),
    (
        "--max-watch-streams",
        "MAX_WATCH_STREAMS",
        "open health Watch streams in total; more are answered RESOURCE_EXHAUSTED",
        "100",
    ),
    (
        "--max-reflection-streams",
        "MAX_REFLECTION_STREAMS",
        "open reflection streams in total; more are answered RESOURCE_EXHAUSTED",
        "20",
    ),
    (
        "--max-streams-per-connection",
        "MAX_STREAMS_PER_CONNECTION",
        "open health Watch streams, and open reflection streams, on one connection",
        "8",
    ),
    (
        "--keepalive-min-ping-interval",
        "KEEPALIVE_MIN_PING_INTERVAL",
        "shortest interval between client keepalive pings; faster pings are strikes",
        "30s",
    ),
    (
        "--keepalive-max-ping-strikes",
        "KEEPALIVE_MAX_PING_STRIKES",
        "bad pings before the connection is closed with GOAWAY too_many_pings (0: no limit)",
        "2",
    ),
    (
        "--max-connection-idle",
        "MAX_CONNECTION_IDLE",
        "close connections with no RPC for this long (0: never)",
        "5m",
    ),
    (
        "--max-connection-age",
        "MAX_CONNECTION_AGE",
        "close connections after this long so clients rebalance (default: never)",
        None,
    ),
    (
        "--max-connection-age-grace",
        "MAX_CONNECTION_AGE_GRACE",
        "time RPCs in flight get when a connection reaches its maximum age",
        "30s",
    ),
]

_TRUE = ("1", "true", "yes", "on")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cugar-metrics",
        description="Records AI agent executions over gRPC and serves their golden signals "
        "(GetDashboard RPC, Prometheus /metrics, gRPC health, reflection).",
    )
    parser.add_argument("--version", action="version", version=f"cugar-metrics {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    serve = sub.add_parser(
        "serve",
        help="run the server",
        description="Run the server until SIGTERM or SIGINT, then drain and exit 0. Every "
        f"option can also be set by its environment variable ({ENV_PREFIX}...); "
        "a flag wins over the variable.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for flag, env, text, default in _SERVE_OPTIONS:
        serve.add_argument(
            flag,
            default=os.environ.get(ENV_PREFIX + env, default),
            help=f"{text} [env {ENV_PREFIX}{env}]",
        )
    serve.add_argument(
        "--no-reflection",
        action="store_true",
        default=os.environ.get(ENV_PREFIX + "REFLECTION", "").lower()
        in ("0", "false", "no", "off"),
        help=f"turn off gRPC server reflection [env {ENV_PREFIX}REFLECTION=false]",
    )
    serve.add_argument(
        "--no-auth",
        action="store_true",
        default=os.environ.get(ENV_PREFIX + "NO_AUTH", "").lower() in _TRUE,
        help="serve without authentication: anyone who reaches the gRPC port can record and "
        "read (logged as a warning). Without --auth-keys-file the server refuses to start "
        f"unless this is given [env {ENV_PREFIX}NO_AUTH=true]",
    )
    serve.add_argument(
        "--reflection-requires-auth",
        action="store_true",
        default=os.environ.get(ENV_PREFIX + "REFLECTION_REQUIRES_AUTH", "").lower() in _TRUE,
        help="reflection needs a valid API key like other calls (health stays open) "
        f"[env {ENV_PREFIX}REFLECTION_REQUIRES_AUTH=true]",
    )
    serve.add_argument(
        "--keepalive-permit-without-calls",
        action="store_true",
        default=os.environ.get(ENV_PREFIX + "KEEPALIVE_PERMIT_WITHOUT_CALLS", "").lower() in _TRUE,
        help="allow keepalive pings on connections with no call in flight "
        f"[env {ENV_PREFIX}KEEPALIVE_PERMIT_WITHOUT_CALLS=true]",
    )
    serve.add_argument(
        "--check-config",
        action="store_true",
        help="validate the configuration, print it and exit (0 if valid)",
    )
    for name, module in (
        ("demo", "cugar_metrics.demo"),
        ("dashboard", "cugar_metrics.dashboard_view"),
        ("keys", "cugar_metrics.keys_cli"),
    ):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        doc = (mod.__doc__ or name).strip().splitlines()[0]
        p = sub.add_parser(
            name,
            help=doc,
            description=mod.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        mod.add_arguments(p)
        p.set_defaults(run=mod.run)
    return parser


def _int(value: str, flag: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{flag}: {value!r} is not a whole number") from None


def config_from_args(a: argparse.Namespace) -> Config:
    kwargs = {} if a.replica is None else {"replica": a.replica}
    return Config(
        host=a.host,
        grpc_port=_int(a.grpc_port, "--grpc-port"),
        metrics_host=a.metrics_host,
        metrics_port=_int(a.metrics_port, "--metrics-port"),
        reflection=not a.no_reflection,
        shutdown_delay=parse_duration(a.shutdown_delay, "--shutdown-delay"),
        shutdown_grace=parse_duration(a.shutdown_grace, "--shutdown-grace"),
        max_duration=parse_duration(a.max_duration, "--max-duration"),
        dedup_horizon=parse_duration(a.dedup_horizon, "--dedup-horizon"),
        dedup_max_entries=_int(a.dedup_max_entries, "--dedup-max-entries"),
        caps=Caps(
            profile=_int(a.max_profiles, "--max-profiles"),
            domain=_int(a.max_domains, "--max-domains"),
            tool=_int(a.max_tools, "--max-tools"),
            error_type=_int(a.max_error_types, "--max-error-types"),
        ),
        ready_file=a.ready_file,
        log_level=a.log_level.upper(),
        state_file=a.state_file or None,
        checkpoint_interval=parse_duration(a.checkpoint_interval, "--checkpoint-interval"),
        tls_cert=a.tls_cert or None,
        tls_key=a.tls_key or None,
        tls_client_ca=a.tls_client_ca or None,
        metrics_tls_cert=a.metrics_tls_cert or None,
        metrics_tls_key=a.metrics_tls_key or None,
        metrics_basic_auth_file=a.metrics_basic_auth_file or None,
        **_auth_and_limits(a),
        **kwargs,
    )


def _rate(value: str | None, flag: str) -> RateLimit | None:
    if not value:
        return None
    try:
        return parse_rate(value)
    except ValueError as e:
        raise ConfigError(f"{flag}: {e}") from None


def _auth_and_limits(a: argparse.Namespace) -> dict[str, Any]:
    if a.auth_keys_file:
        try:
            load_keys(a.auth_keys_file)
        except KeysFileError as e:
            raise ConfigError(f"--auth-keys-file: {e}") from None
    return {
        "auth_keys_file": a.auth_keys_file or None,
        "auth_reload_interval": parse_duration(a.auth_reload_interval, "--auth-reload-interval"),
        "reflection_requires_auth": a.reflection_requires_auth,
        "rate_limit_recorder": _rate(a.rate_limit_recorder, "--rate-limit-recorder"),
        "rate_limit_reader": _rate(a.rate_limit_reader, "--rate-limit-reader"),
        "rate_limit_admin": _rate(a.rate_limit_admin, "--rate-limit-admin"),
        "max_concurrent_rpcs": _int(a.max_concurrent_rpcs, "--max-concurrent-rpcs"),
        "max_watch_streams": _int(a.max_watch_streams, "--max-watch-streams"),
        "max_reflection_streams": _int(a.max_reflection_streams, "--max-reflection-streams"),
        "max_streams_per_connection": _int(
            a.max_streams_per_connection, "--max-streams-per-connection"
        ),
        "keepalive_min_ping_interval": parse_duration(
            a.keepalive_min_ping_interval, "--keepalive-min-ping-interval"
        ),
        "keepalive_max_ping_strikes": _int(
            a.keepalive_max_ping_strikes, "--keepalive-max-ping-strikes"
        ),
        "keepalive_permit_without_calls": a.keepalive_permit_without_calls,
        "max_connection_idle": parse_duration(a.max_connection_idle, "--max-connection-idle"),
        "max_connection_age": (
            parse_duration(a.max_connection_age, "--max-connection-age")
            if a.max_connection_age
            else None
        ),
        "max_connection_age_grace": parse_duration(
            a.max_connection_age_grace, "--max-connection-age-grace"
        ),
    }


def main(argv: Sequence[str] | None = None) -> None:
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help()
            sys.exit(2)
        if args.command != "serve":
            sys.exit(args.run(args))
        config = config_from_args(args)
        if config.auth_keys_file is None and not args.no_auth:
            raise ConfigError(
                "authentication is not configured: pass --auth-keys-file FILE (create keys with "
                "'cugar-metrics keys create'), or --no-auth to let anyone who reaches the port "
                f"record and read [env {ENV_PREFIX}AUTH_KEYS_FILE or {ENV_PREFIX}NO_AUTH=true]"
            )
    except ConfigError as e:
        print(f"cugar-metrics: error: {e}", file=sys.stderr)
        sys.exit(2)
    if args.check_config:
        for key, value in asdict(config).items():
            print(f"{key} = {value}")
        print("configuration is valid")
        sys.exit(0)
    logging.basicConfig(
        level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from cugar_metrics.server import PortInUseError, serve  # grpc loads only to serve

    try:
        asyncio.run(serve(config))
    except PortInUseError as e:
        print(f"cugar-metrics: error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeysFileError as e:  # the keys file broke between validation and start-up
        print(f"cugar-metrics: error: --auth-keys-file: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # a second Ctrl-C during drain
        sys.exit(130)
    sys.exit(0)
