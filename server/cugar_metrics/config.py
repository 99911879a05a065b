"""The server's configuration: one frozen object, from flags and environment, validated."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from cugar_metrics.aggregator import Caps
from cugar_metrics.ratelimit import RateLimit


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the flag and the fix."""


_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


def parse_duration(text: str, flag: str) -> float:
    """'90s', '10m', '24h', '1h30m' or a plain number of seconds -> seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    m = _DURATION.fullmatch(text)
    if not text or m is None:
        raise ConfigError(f"{flag}: {text!r} is not a duration; use e.g. 30s, 10m, 24h or 1h30m")
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + s


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    grpc_port: int = 50051
    metrics_host: str | None = None  # None: same as host
    metrics_port: int = 9464
    reflection: bool = True
    shutdown_grace: float = 10.0
    shutdown_delay: float = 0.0
    max_duration: float = 86_400.0
    dedup_horizon: float = 600.0
    dedup_max_entries: int = 5_000_000
    caps: Caps = field(default_factory=Caps)
    replica: str = field(default_factory=socket.gethostname)
    ready_file: str | None = None
    # Persistence (off unless a state file is given); see cugar_metrics.statefile.
    state_file: str | None = None
    checkpoint_interval: float = 30.0
    log_level: str = "INFO"
    # TLS (off unless a certificate is given); see cugar_metrics.tls.
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None  # set: clients must present a certificate it signed
    metrics_tls_cert: str | None = None
    metrics_tls_key: str | None = None
    metrics_basic_auth_file: str | None = None
    # Authentication and per-key rate limits (off unless a keys file is given); see
    # cugar_metrics.auth. Connection limits; see cugar_metrics.connection_limits.
    auth_keys_file: str | None = None
    auth_reload_interval: float = 2.0
    reflection_requires_auth: bool = False
    rate_limit_recorder: RateLimit | None = None
    rate_limit_reader: RateLimit | None = None
    rate_limit_admin: RateLimit | None = None
    max_concurrent_rpcs: int = 1000
    max_watch_streams: int = 100
    max_reflection_streams: int = 20
    max_streams_per_connection: int = 8
    keepalive_min_ping_interval: float = 30.0
    keepalive_max_ping_strikes: int = 2
    keepalive_permit_without_calls: bool = False
    max_connection_idle: float = 300.0  # 0: never closed for idleness
    max_connection_age: float | None = None
    max_connection_age_grace: float = 30.0

    def __post_init__(self) -> None:
        for flag, port in (("--grpc-port", self.grpc_port), ("--metrics-port", self.metrics_port)):
            if not 0 <= port <= 65535:
                raise ConfigError(
                    f"{flag}: {port} is not a port number (0-65535; 0 picks a free port)"
                )
        if (
            self.grpc_port
            and self.grpc_port == self.metrics_port
            and (self.metrics_host in (None, self.host))
        ):
            raise ConfigError(
                f"--grpc-port and --metrics-port are both {self.grpc_port}: "
                "give them different ports"
            )
        if not 0 <= self.shutdown_delay <= 600:
            raise ConfigError("--shutdown-delay: must be between 0s and 10m")
        if not 0 <= self.shutdown_grace <= 3600:
            raise ConfigError("--shutdown-grace: must be between 0s and 1h")
        if not 1 <= self.max_duration <= 30 * 86_400:
            raise ConfigError("--max-duration: must be between 1s and 30 days")
        if not 60 <= self.dedup_horizon <= 86_400:
            raise ConfigError("--dedup-horizon: must be between 1m and 24h")
        if self.dedup_max_entries < 1000:
            raise ConfigError("--dedup-max-entries: must be at least 1000")
        for name in ("profile", "domain", "tool", "error_type"):
            if not 1 <= getattr(self.caps, name) <= 100_000:
                raise ConfigError(f"--max-{name.replace('_', '-')}s: must be between 1 and 100000")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError("--log-level: one of DEBUG, INFO, WARNING, ERROR")
        self._check_state_file()
        tls_options = {
            "tls_cert": self.tls_cert,
            "tls_key": self.tls_key,
            "tls_client_ca": self.tls_client_ca,
            "metrics_tls_cert": self.metrics_tls_cert,
            "metrics_tls_key": self.metrics_tls_key,
            "metrics_basic_auth_file": self.metrics_basic_auth_file,
        }
        if any(v is not None for v in tls_options.values()):
            from cugar_metrics.tls import TlsError, check_options

            try:
                check_options(**tls_options)
            except TlsError as e:
                raise ConfigError(str(e)) from None
        self._check_auth_and_limits()

    def _check_auth_and_limits(self) -> None:
        if self.auth_keys_file is not None and not self.auth_keys_file.strip():
            raise ConfigError("--auth-keys-file: give the path of a keys file")
        if not 0.01 <= self.auth_reload_interval <= 3600:
            raise ConfigError("--auth-reload-interval: must be between 0.01s and 1h")
        if self.auth_keys_file is None:
            if self.reflection_requires_auth:
                raise ConfigError("--reflection-requires-auth: needs --auth-keys-file")
            for role in ("recorder", "reader", "admin"):
                if getattr(self, f"rate_limit_{role}") is not None:
                    raise ConfigError(
                        f"--rate-limit-{role}: rate limits are per API key; "
                        "they need --auth-keys-file"
                    )
        if not 1 <= self.max_concurrent_rpcs <= 1_000_000:
            raise ConfigError("--max-concurrent-rpcs: must be between 1 and 1000000")
        for flag, n in (
            ("--max-watch-streams", self.max_watch_streams),
            ("--max-reflection-streams", self.max_reflection_streams),
            ("--max-streams-per-connection", self.max_streams_per_connection),
        ):
            if not 1 <= n <= 100_000:
                raise ConfigError(f"{flag}: must be between 1 and 100000")
        if not 0 <= self.keepalive_min_ping_interval <= 86_400:
            raise ConfigError("--keepalive-min-ping-interval: must be between 0s and 24h")
        if not 0 <= self.keepalive_max_ping_strikes <= 1000:
            raise ConfigError(
                "--keepalive-max-ping-strikes: must be between 0 and 1000 (0: no limit)"
            )
        if self.max_connection_idle != 0 and not 1 <= self.max_connection_idle <= 30 * 86_400:
            raise ConfigError("--max-connection-idle: must be 0 (off) or between 1s and 30 days")
        if self.max_connection_age is not None and not (
            1 <= self.max_connection_age <= 30 * 86_400
        ):
            raise ConfigError("--max-connection-age: must be between 1s and 30 days")
        if not 0 <= self.max_connection_age_grace <= 3600:
            raise ConfigError("--max-connection-age-grace: must be between 0s and 1h")

    def _check_state_file(self) -> None:
        if not 1 <= self.checkpoint_interval <= 3600:
            raise ConfigError("--checkpoint-interval: must be between 1s and 1h")
        if self.state_file is None:
            return
        path = Path(self.state_file)
        if not self.state_file.strip() or path.is_dir():
            raise ConfigError("--state-file: give the path of a file (not a directory)")
        if not path.parent.is_dir():
            raise ConfigError(
                f"--state-file: directory {str(path.parent)!r} does not exist; create it first"
            )

    @property
    def effective_metrics_host(self) -> str:
        return self.metrics_host if self.metrics_host is not None else self.host
