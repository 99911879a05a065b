"""The server's configuration: one frozen object whose fields are the server's options.

Each option is declared once, as a field of `Config` made by `option(...)`: its default (one
typed value), how its text is read (`Kind`), its range and its help text. The flag
(`--name-with-dashes`, or `--no-name` for an option that is on by default), the environment
variable (`CUGAR_METRICS_NAME`), the `serve` parser, the README table
(`cugar-metrics options --markdown`) and the range checks are all derived from it. To add an
option, add one field here, then run `make readme-options`; the CLI follows. For example:

    max_widgets: int = option(10, INT, "widgets kept per agent", low=1, high=1000)

gives `--max-widgets N`, `CUGAR_METRICS_MAX_WIDGETS`, the check "must be between 1 and 1000"
and a README row. A bool option is a switch: `--name` (or `--no-name` when on by default).

Checks that read files (keys file, certificates, state file) are not made when a `Config` is
built: `preflight(config)` makes them all at start-up and returns every problem, each naming
its flag. `exposure_problems(config)` holds the start-up policy on who may reach the ports.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import socket
import stat
from collections.abc import Callable, Iterator
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from cugar_metrics.aggregator import Caps
from cugar_metrics.ratelimit import RateLimit, parse_rate

ENV_PREFIX = "CUGAR_METRICS_"


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the flag and the fix."""


_DURATION = re.compile(
    r"^(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$"
)


def parse_duration(text: str, flag: str = "duration") -> float:
    """'90s', '10m', '24h', '1h30m', '30d' or a plain number of seconds -> seconds."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        m = _DURATION.fullmatch(text)
        if not text or m is None:
            raise ConfigError(
                f"{flag}: {text!r} is not a duration; use e.g. 30s, 10m, 24h or 1h30m"
            ) from None
        d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
        return d * 86_400 + h * 3600 + mi * 60 + s
    if not math.isfinite(value):
        raise ConfigError(f"{flag}: {text!r} is not a duration; use e.g. 30s, 10m, 24h or 1h30m")
    return value


def format_duration(seconds: float) -> str:
    """The shortest text `parse_duration` reads back as `seconds`: 30s, 10m, 24h, 30d."""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0 and (unit != "d" or seconds > 86_400):
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class Kind:
    """How an option's value is read from text (flag or environment) and shown."""

    metavar: str
    parse: Callable[[str], Any]
    show: Callable[[Any], str] = str


def _int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None


def _rate(text: str) -> RateLimit:
    return parse_rate(text)


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _bool(text: str) -> bool:
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise ValueError(f"{text!r} is not true or false")


def _level(text: str) -> str:
    level = text.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError(f"{text!r} is not one of DEBUG, INFO, WARNING, ERROR")
    return level


def _duration(text: str) -> float:
    return parse_duration(text, "")


TEXT = Kind("TEXT", str)
PATH = Kind("FILE", str)
INT = Kind("N", _int)
DURATION = Kind("DURATION", _duration, format_duration)
RATE = Kind("RATE", _rate)
BOOL = Kind("BOOL", _bool, lambda v: "true" if v else "false")
LEVEL = Kind("LEVEL", _level)


@dataclass(frozen=True)
class Option:
    """One server option, as declared by `option()`; `name` is the `Config` field."""

    name: str
    default: Any  # MISSING when the default is computed (see `shown`)
    kind: Kind
    help: str
    low: Any = None
    high: Any = None
    zero_off: bool = False
    shown: str | None = None
    see: str | None = None

    @property
    def switch(self) -> bool:
        """A flag without a value: giving it sets the opposite of the default."""
        return self.kind is BOOL

    @property
    def flag(self) -> str:
        dashed = self.name.replace("_", "-")
        return f"--no-{dashed}" if self.switch and self.default is True else f"--{dashed}"

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    def range_text(self) -> str:
        show = self.kind.show
        if self.high is None:
            text = f"at least {show(self.low)}"
        else:
            text = f"between {show(self.low)} and {show(self.high)}"
        return f"0 (off) or {text}" if self.zero_off else text

    def check(self, value: Any) -> None:
        """Raises ConfigError naming the flag when `value` is out of range."""
        if value is None or self.low is None or (self.zero_off and value == 0):
            return
        if value < self.low or (self.high is not None and value > self.high):
            raise ConfigError(
                f"{self.flag}: must be {self.range_text()} (got {self.kind.show(value)})"
            )

    def default_text(self) -> str:
        if self.shown is not None:
            return self.shown
        if self.switch:
            return "off" if self.default is False else "on"
        if self.default is None:
            return "—"
        return f"`{self.kind.show(self.default)}`"

    def env_text(self) -> str:
        if self.switch:
            return f"{self.env}={'false' if self.default else 'true'}"
        return self.env


def option(
    default: Any = MISSING,
    kind: Kind = TEXT,
    help: str = "",
    *,
    low: Any = None,
    high: Any = None,
    zero_off: bool = False,
    default_factory: Callable[[], Any] | None = None,
    shown: str | None = None,
    see: str | None = None,
) -> Any:
    """Declares one server option as a `Config` field (see the module's docstring).

    `low`/`high`: the accepted range (`high` None: no upper bound); `zero_off`: 0 is also
    accepted and means off. `shown`: the README's default when it is not the value itself.
    `see`: a README section the row links to."""
    spec = {
        "kind": kind,
        "help": help,
        "low": low,
        "high": high,
        "zero_off": zero_off,
        "shown": shown,
        "see": see,
    }
    if default_factory is not None:
        return field(default_factory=default_factory, metadata={"option": spec})
    return field(default=default, metadata={"option": spec})


_DAY = 86_400.0


@dataclass(frozen=True)
class Config:
    """Every option of `cugar-metrics serve`; one field each, in the README's order."""

    host: str = option(
        "127.0.0.1",
        TEXT,
        "address of the gRPC port; 0.0.0.0 (every interface) or any non-loopback address needs "
        "--auth-keys-file or --no-auth",
    )
    grpc_port: int = option(50051, INT, "gRPC port (0: a free one)", low=0, high=65535)
    metrics_host: str | None = option(None, TEXT, "address of the metrics port", shown="`--host`")
    metrics_port: int = option(
        9464, INT, "HTTP port of `/metrics` (0: a free one)", low=0, high=65535
    )
    reflection: bool = option(True, BOOL, "gRPC server reflection (the flag turns it off)")
    shutdown_delay: float = option(
        0.0,
        DURATION,
        "on SIGTERM/SIGINT, how long to keep serving while health says NOT_SERVING, so load "
        "balancers stop sending before the listener closes",
        low=0.0,
        high=600.0,
    )
    shutdown_grace: float = option(
        10.0, DURATION, "then, how long in-flight RPCs may take to finish", low=0.0, high=3600.0
    )
    max_duration: float = option(
        _DAY,
        DURATION,
        "longest accepted duration (execution, tool call, approval wait)",
        low=1.0,
        high=30 * _DAY,
    )
    dedup_horizon: float = option(
        600.0,
        DURATION,
        "how long an execution_id is remembered to acknowledge retries as duplicates",
        low=60.0,
        high=_DAY,
    )
    dedup_max_entries: int = option(
        5_000_000,
        INT,
        "most execution ids remembered (about 8 bytes each); past it the oldest are forgotten",
        low=1000,
    )
    max_profiles: int = option(
        50, INT, "distinct profiles kept before folding into `_overflow`", low=1, high=100_000
    )
    max_domains: int = option(20, INT, "distinct domains kept", low=1, high=100_000)
    max_tools: int = option(200, INT, "distinct domain/tool pairs kept", low=1, high=100_000)
    max_error_types: int = option(
        100, INT, "distinct execution error types kept", low=1, high=100_000
    )
    labels_file: str | None = option(
        None,
        PATH,
        "YAML allow-lists of profiles, domains, tools and models; a value outside is "
        "rejected or folded into `_other`",
        see="Labels",
    )
    max_values_per_agent: int = option(
        0,
        INT,
        "with authentication, distinct profiles, domains and tools each key may introduce; "
        "its further new values become `_overflow` (0: off)",
        low=1,
        high=100_000,
        zero_off=True,
        see="Labels",
    )
    max_models: int = option(
        50, INT, "distinct provider/model pairs of model calls kept", low=1, high=100_000
    )
    otlp_port: int | None = option(
        None,
        INT,
        "also serve the OTLP/gRPC trace receiver (`TraceService/Export`, on the gRPC port "
        "too) on this port, 4317 by convention (0: a free one)",
        low=0,
        high=65535,
        shown="— (gRPC port only)",
        see="OpenTelemetry",
    )
    otlp_assembly_timeout: float = option(
        300.0,
        DURATION,
        "how long the spans of a trace wait for their agent span after the trace's last span",
        low=1.0,
        high=_DAY,
    )
    otlp_max_pending_spans: int = option(
        20_000,
        INT,
        "most spans held while their traces wait (about 2 KiB each); past it the oldest trace "
        "is let go",
        low=100,
        high=10_000_000,
    )
    otlp_profile_attribute: str = option(
        "gen_ai.agent.name",
        TEXT,
        "the span attribute of an agent span that gives the execution's profile",
    )
    replica: str = option(
        kind=TEXT,
        help="this replica's name in dashboards",
        default_factory=socket.gethostname,
        shown="host name",
    )
    ready_file: str | None = option(
        None,
        PATH,
        "once serving, write `{grpc_port, metrics_port, pid}` (and `otlp_port` with "
        "`--otlp-port`) as JSON to this file",
    )
    log_level: str = option("INFO", LEVEL, "`DEBUG`, `INFO`, `WARNING` or `ERROR`")
    state_file: str | None = option(
        None,
        PATH,
        "save counters, distributions and remembered ids to this file at every checkpoint and "
        "on drain, and restore them at start-up; its directory must exist",
        shown="— (off)",
        see="Persistence",
    )
    checkpoint_interval: float = option(
        30.0,
        DURATION,
        "how often the state file is written; a hard kill loses at most this much",
        low=1.0,
        high=3600.0,
    )
    tls_cert: str | None = option(
        None,
        PATH,
        "PEM certificate chain: serve the gRPC port over TLS (reloaded when the file changes)",
        shown="— (plaintext)",
        see="TLS",
    )
    tls_key: str | None = option(None, PATH, "PEM private key of `--tls-cert`")
    tls_client_ca: str | None = option(
        None,
        PATH,
        "PEM CA certificates: gRPC clients must present a certificate they signed (mutual TLS)",
        shown="— (no client certificates)",
    )
    metrics_tls_cert: str | None = option(
        None,
        PATH,
        "PEM certificate chain: serve the metrics port over HTTPS (reloaded when it changes)",
        shown="— (plain HTTP)",
    )
    metrics_tls_key: str | None = option(None, PATH, "PEM private key of `--metrics-tls-cert`")
    metrics_basic_auth_file: str | None = option(
        None,
        PATH,
        "file of `user:sha256hex` lines: the metrics port requires HTTP basic auth (reloaded "
        "when it changes)",
        shown="— (open)",
    )
    metrics_open: bool = option(
        False,
        BOOL,
        "with --auth-keys-file, serve `/metrics` without --metrics-basic-auth-file anyway "
        "(logged as a WARNING); without either the server refuses to start",
    )
    auth_keys_file: str | None = option(
        None,
        PATH,
        "API keys file (see 'cugar-metrics keys'): MetricsService calls need "
        "'authorization: Bearer <key>'; reloaded when it changes and on SIGHUP",
        shown="— (loopback only, unless `--no-auth`)",
        see="Authentication",
    )
    no_auth: bool = option(
        False,
        BOOL,
        "serve without authentication on any address: anyone who reaches the gRPC port can "
        "record and read (logged as a WARNING). With neither this nor --auth-keys-file the "
        "server serves on loopback only and refuses a non-loopback --host or --metrics-host",
    )
    auth_reload_interval: float = option(
        2.0,
        DURATION,
        "how often the keys file is checked for changes (SIGHUP reloads at once)",
        low=0.01,
        high=3600.0,
    )
    reflection_requires_auth: bool = option(
        False,
        BOOL,
        "reflection needs a valid API key of any role (health stays open)",
    )
    rate_limit_recorder: RateLimit | None = option(  # noqa: RUF009 (a field)
        None,
        RATE,
        "per-key limit of recorder keys in executions (a call costs 1, a batch 1 per "
        "execution), `RATE[/s|/m|/h][:BURST]`, e.g. `200/s:400` (burst default: one second's "
        "worth)",
        shown="— (none)",
    )
    rate_limit_reader: RateLimit | None = option(  # noqa: RUF009 (a field)
        None, RATE, "per-key limit of reader keys", shown="— (none)"
    )
    rate_limit_admin: RateLimit | None = option(  # noqa: RUF009 (a field)
        None, RATE, "per-key limit of admin keys", shown="— (none)"
    )
    max_concurrent_rpcs: int = option(
        1000,
        INT,
        "MetricsService calls in flight at once; more are answered `RESOURCE_EXHAUSTED` "
        "(health checks are not counted)",
        low=1,
        high=1_000_000,
    )
    max_watch_streams: int = option(
        100,
        INT,
        "open health `Watch` streams in total; more are answered `RESOURCE_EXHAUSTED`",
        low=1,
        high=100_000,
    )
    peers: str | None = option(
        None,
        TEXT,
        "the other replicas, for cluster dashboards: a comma list of `host:port`, or "
        "`dns:///name:port` (re-resolved every 5 s); this replica's own address is left out",
        see="Cluster dashboards",
    )
    peer_timeout: float = option(
        2.0,
        DURATION,
        "how long a cluster dashboard waits for its peers; the late ones are named as missing",
        low=0.05,
        high=60.0,
    )
    peer_key_file: str | None = option(
        None,
        PATH,
        "a file holding the `admin` key this replica sends to its peers when they enforce keys",
    )
    max_watchers: int = option(
        100,
        INT,
        "open `WatchDashboard` streams in total; more are answered `RESOURCE_EXHAUSTED`",
        low=1,
        high=100_000,
    )
    max_watchers_per_key: int = option(
        20,
        INT,
        "open `WatchDashboard` streams per API key (or per caller without keys)",
        low=1,
        high=100_000,
    )
    max_reflection_streams: int = option(
        20,
        INT,
        "open reflection streams in total; more are answered `RESOURCE_EXHAUSTED`",
        low=1,
        high=100_000,
    )
    max_streams_per_connection: int = option(
        8,
        INT,
        "open health `Watch` streams, and open reflection streams, on one connection",
        low=1,
        high=100_000,
    )
    keepalive_min_ping_interval: float = option(
        30.0,
        DURATION,
        "shortest interval between client keepalive pings; faster pings are strikes",
        low=0.0,
        high=_DAY,
    )
    keepalive_max_ping_strikes: int = option(
        2,
        INT,
        "bad pings before the connection is closed with GOAWAY `too_many_pings` (0: no limit)",
        low=0,
        high=1000,
    )
    keepalive_permit_without_calls: bool = option(
        False, BOOL, "allow keepalive pings on connections with no call in flight"
    )
    max_connection_idle: float = option(
        300.0,
        DURATION,
        "close connections with no RPC for this long (0: never)",
        low=1.0,
        high=30 * _DAY,
        zero_off=True,
    )
    max_connection_age: float | None = option(
        None,
        DURATION,
        "close connections after this long, so clients rebalance over replicas",
        low=1.0,
        high=30 * _DAY,
        shown="— (never)",
    )
    max_connection_age_grace: float = option(
        30.0,
        DURATION,
        "time RPCs in flight get when a connection reaches its maximum age",
        low=0.0,
        high=3600.0,
    )

    def __post_init__(self) -> None:
        for spec in OPTIONS:
            spec.check(getattr(self, spec.name))
        self._check_relations()

    def _check_relations(self) -> None:
        """Checks between options; none of them reads a file (see `preflight`)."""
        if self.peers is not None:
            from cugar_metrics.cluster import parse_peers

            try:
                parse_peers(self.peers)
            except ValueError as e:
                raise ConfigError(f"--peers: {e}") from None
        if (
            self.grpc_port
            and self.grpc_port == self.metrics_port
            and (self.metrics_host in (None, self.host))
        ):
            raise ConfigError(
                f"--grpc-port and --metrics-port are both {self.grpc_port}: "
                "give them different ports"
            )
        for flag, value in (
            ("--auth-keys-file", self.auth_keys_file),
            ("--state-file", self.state_file),
        ):
            if value is not None and not value.strip():
                raise ConfigError(f"{flag}: give the path of a file")
        if self.auth_keys_file is None:
            if self.reflection_requires_auth:
                raise ConfigError("--reflection-requires-auth: needs --auth-keys-file")
            for role in ("recorder", "reader", "admin"):
                if getattr(self, f"rate_limit_{role}") is not None:
                    raise ConfigError(
                        f"--rate-limit-{role}: rate limits are per API key; "
                        "they need --auth-keys-file"
                    )
        for cert_flag, cert, key_flag, key in (
            ("--tls-cert", self.tls_cert, "--tls-key", self.tls_key),
            (
                "--metrics-tls-cert",
                self.metrics_tls_cert,
                "--metrics-tls-key",
                self.metrics_tls_key,
            ),
        ):
            if (cert is None) != (key is None):
                given, missing = (cert_flag, key_flag) if key is None else (key_flag, cert_flag)
                raise ConfigError(
                    f"{given} needs {missing} too (the certificate and its private key)"
                )
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ConfigError(
                "--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS first)"
            )

    @property
    def effective_metrics_host(self) -> str:
        return self.metrics_host if self.metrics_host is not None else self.host

    @property
    def caps(self) -> Caps:
        return Caps(
            profile=self.max_profiles,
            domain=self.max_domains,
            tool=self.max_tools,
            error_type=self.max_error_types,
            model=self.max_models,
        )


def _options() -> Iterator[Option]:
    for f in fields(Config):
        spec = f.metadata.get("option")
        if spec is not None:
            yield Option(name=f.name, default=f.default, **spec)


#: Every server option, in declaration order.
OPTIONS: tuple[Option, ...] = tuple(_options())
BY_NAME = {o.name: o for o in OPTIONS}


def from_text(values: dict[str, str], sources: dict[str, str] | None = None) -> Config:
    """A Config from option texts by field name (absent: the default). `sources` names where
    a text came from (a flag or an environment variable), for the error message."""
    kwargs: dict[str, Any] = {}
    for name, text in values.items():
        spec = BY_NAME[name]
        where = (sources or {}).get(name, spec.flag)
        if not spec.switch and not text.strip() and spec.default is None:
            kwargs[name] = None  # an empty path or limit: not given
            continue
        try:
            kwargs[name] = spec.kind.parse(text)
        except (ConfigError, ValueError) as e:
            detail = str(e).removeprefix(": ")
            fix = f"; see cugar-metrics serve --help ({spec.kind.metavar})"
            raise ConfigError(f"{where}: {detail}{fix}") from None
    return Config(**kwargs)


def markdown_table() -> str:
    """The README's configuration table, one row per option."""
    rows = [
        "| flag | environment | default | meaning |",
        "|---|---|---|---|",
    ]
    for o in OPTIONS:
        meaning = o.help.replace("|", "\\|")
        meaning = re.sub(r"(?<![`\w])(--[a-z][a-z-]*)", r"`\1`", meaning)
        if o.low is not None:
            meaning += f"; accepted: {o.range_text()}"
        if o.see:
            meaning += f" (see [{o.see}](#{o.see.lower().replace(' ', '-')}))"
        rows.append(f"| `{o.flag}` | `{o.env_text()}` | {o.default_text()} | {meaning} |")
    return "\n".join(rows) + "\n"


# --------------------------------------------------------------------------- start-up checks


def _readable_file(flag: str, path: str, what: str) -> str | None:
    """A problem with `path` as a readable regular file, naming `flag`, or None."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"{flag}: {what} {path!r} does not exist; create it or fix the path"
    except OSError as e:
        return f"{flag}: cannot reach {what} {path!r}: {e.strerror}"
    if not stat.S_ISREG(st.st_mode):
        return f"{flag}: {path!r} is not a regular file; give the path of a {what}"
    if not os.access(path, os.R_OK):
        return (
            f"{flag}: {what} {path!r} is not readable by this user (uid {os.geteuid()}); "
            "fix its owner or mode"
        )
    return None


def _special_file(flag: str, path: str | None) -> str | None:
    """A problem when `path` exists but is not a regular file (a FIFO, socket or device),
    which reading would block on or misread; None otherwise (a missing file is the
    loader's to report)."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    if stat.S_ISREG(st.st_mode):
        return None
    return f"{flag}: {path!r} is not a regular file; give the path of a regular file"


def _state_file_problem(path_text: str) -> str | None:
    path = Path(path_text)
    if not path.parent.is_dir():
        return f"--state-file: directory {str(path.parent)!r} does not exist; create it first"
    try:
        st = os.stat(path)  # follows a symlink: the target is what is read and replaced
    except FileNotFoundError:
        st = None
    except OSError as e:
        return f"--state-file: cannot reach {path_text!r}: {e.strerror}"
    if st is not None and stat.S_ISDIR(st.st_mode):
        return "--state-file: give the path of a file (not a directory)"
    if st is not None and not stat.S_ISREG(st.st_mode):
        return (
            f"--state-file: {path_text!r} is not a regular file (a FIFO, socket or device "
            "cannot hold the state); give the path of a regular file"
        )
    if st is not None and not os.access(path, os.R_OK | os.W_OK):
        return f"--state-file: {path_text!r} is not readable and writable by this user"
    directory = path.resolve().parent
    if not os.access(directory, os.W_OK | os.X_OK):
        return (
            f"--state-file: directory {str(directory)!r} is not writable by this user; "
            "checkpoints are written next to the file"
        )
    return None


def preflight(config: Config) -> list[str]:
    """Every problem with the files the configuration names (keys file, certificates, basic
    auth users, state file), each naming its flag; empty when they can all be used."""
    from cugar_metrics.auth import KeysFileError, load_keys
    from cugar_metrics.http_auth import AuthFileError, read_users
    from cugar_metrics.labels import LabelsFileError, load_rules
    from cugar_metrics.tls import TlsError, check_ca_file, load_pem

    problems: list[str] = []

    def add(problem: str | None) -> None:
        if problem is not None:
            problems.append(problem)

    if config.auth_keys_file is not None:
        problem = _readable_file("--auth-keys-file", config.auth_keys_file, "keys file")
        if problem is None:
            try:
                load_keys(config.auth_keys_file)
            except KeysFileError as e:
                problem = f"--auth-keys-file: {e}"
        add(problem)
    # Files that exist but are not regular (a FIFO would block the read) are refused first.
    special = {
        flag: _special_file(flag, path)
        for flag, path in (
            ("--tls-cert", config.tls_cert),
            ("--tls-key", config.tls_key),
            ("--tls-client-ca", config.tls_client_ca),
            ("--metrics-tls-cert", config.metrics_tls_cert),
            ("--metrics-tls-key", config.metrics_tls_key),
            ("--metrics-basic-auth-file", config.metrics_basic_auth_file),
        )
    }
    for problem in special.values():
        add(problem)
    for cert_flag, cert, key_flag, key in (
        ("--tls-cert", config.tls_cert, "--tls-key", config.tls_key),
        (
            "--metrics-tls-cert",
            config.metrics_tls_cert,
            "--metrics-tls-key",
            config.metrics_tls_key,
        ),
    ):
        if cert is not None and key is not None and not (special[cert_flag] or special[key_flag]):
            try:
                load_pem(cert, key)
            except TlsError as e:
                add(f"{cert_flag}/{key_flag}: {e}")
    if config.tls_client_ca is not None and not special["--tls-client-ca"]:
        try:
            check_ca_file(config.tls_client_ca)
        except TlsError as e:
            add(f"--tls-client-ca: {e}")
    if config.metrics_basic_auth_file is not None and not special["--metrics-basic-auth-file"]:
        try:
            read_users(config.metrics_basic_auth_file)
        except AuthFileError as e:
            add(f"--metrics-basic-auth-file: {e}")
    if config.labels_file is not None:
        problem = _special_file("--labels-file", config.labels_file)
        if problem is None:
            try:
                load_rules(config.labels_file)
            except LabelsFileError as e:
                problem = f"--labels-file: {e}"
        add(problem)
    if config.state_file is not None:
        add(_state_file_problem(config.state_file))
    return problems


def is_loopback(host: str) -> bool:
    """Whether `host` names only this machine (127.0.0.0/8, ::1, or a name resolving to
    loopback addresses only). An empty host, 0.0.0.0 or :: is every interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(
        ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses
    )


def exposure_problems(config: Config) -> list[str]:
    """The start-up policy on who may reach the ports (protected mode):

    - no --auth-keys-file and no --no-auth: both ports must be on loopback;
    - --auth-keys-file: /metrics needs --metrics-basic-auth-file, or an explicit
      --metrics-open."""
    problems = []
    if config.auth_keys_file is None and not config.no_auth:
        exposed = [
            f"{flag} {host or repr(host)}"
            for flag, host in (("--host", config.host), ("--metrics-host", config.metrics_host))
            if host is not None and not is_loopback(host)
        ]
        if exposed:
            problems.append(
                f"{' and '.join(exposed)} would serve beyond this machine without "
                "authentication: pass --auth-keys-file FILE (create keys with 'cugar-metrics "
                "keys create'), or --no-auth to let anyone who reaches the port record and read "
                f"[env {ENV_PREFIX}AUTH_KEYS_FILE or {ENV_PREFIX}NO_AUTH=true]; without either, "
                "keep the default --host 127.0.0.1 (protected mode: loopback only)"
            )
    if (
        config.auth_keys_file is not None
        and config.metrics_basic_auth_file is None
        and not config.metrics_open
    ):
        problems.append(
            "--auth-keys-file guards the gRPC port, but /metrics would serve the same profiles, "
            "tools and agent names to anyone: pass --metrics-basic-auth-file FILE, or "
            f"--metrics-open to serve it open anyway [env {ENV_PREFIX}METRICS_OPEN=true]"
        )
    return problems


__all__ = [
    "BY_NAME",
    "ENV_PREFIX",
    "OPTIONS",
    "Config",
    "ConfigError",
    "Kind",
    "Option",
    "exposure_problems",
    "format_duration",
    "from_text",
    "is_loopback",
    "markdown_table",
    "option",
    "parse_duration",
    "preflight",
]
