"""The option declarations: one per option, and everything derived from them."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from cugar_metrics.cli import build_parser, config_from_args
from cugar_metrics.config import OPTIONS, Config, ConfigError, format_duration, preflight

ROOT = Path(__file__).resolve().parents[3]


def _config(*args: str) -> Config:
    return config_from_args(build_parser().parse_args(["serve", *args]))


def test_the_readme_table_is_the_generated_one() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "readme_options.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_drift_check_fails_on_an_edited_row() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import readme_options
    finally:
        sys.path.pop(0)
    text = (ROOT / "README.md").read_text()
    edited = text.replace("| `--grpc-port` | `CUGAR_METRICS_GRPC_PORT` | `50051` |", "| x |")
    assert edited != text
    assert readme_options.render(edited) == readme_options.render(text) == text


def test_every_field_of_config_is_an_option_with_its_own_flag_and_variable() -> None:
    assert [o.name for o in OPTIONS] == [f.name for f in dataclasses.fields(Config)]
    assert len({o.flag for o in OPTIONS}) == len(OPTIONS)
    assert len({o.env for o in OPTIONS}) == len(OPTIONS)
    serve_flags = {
        s
        for a in build_parser()._subparsers._group_actions[0].choices["serve"]._actions  # type: ignore[union-attr]
        for s in a.option_strings
    }
    assert {o.flag for o in OPTIONS} <= serve_flags


@pytest.mark.parametrize("spec", OPTIONS, ids=lambda o: o.flag)
def test_the_shown_default_reads_back_as_the_default(
    spec: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cugar_metrics.config import Option

    assert isinstance(spec, Option)
    default = getattr(Config(), spec.name)
    base = ("--auth-keys-file", "keys.json")  # a Config reads no file; some options need it
    if spec.switch:
        assert getattr(_config(*base, spec.flag), spec.name) is (not default)
        monkeypatch.setenv(spec.env, "true" if not default else "false")
        assert getattr(_config(*base), spec.name) is (not default)
        return
    if default is None or spec.shown is not None:
        return  # no value to write (off by default, or computed such as the host name)
    text = spec.kind.show(default)
    assert getattr(_config(spec.flag, text), spec.name) == default
    monkeypatch.setenv(spec.env, text)
    assert getattr(_config(), spec.name) == default


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--grpc-port", "http"], {}, "--grpc-port: 'http' is not a whole number"),
        (["--grpc-port", "-1"], {}, "--grpc-port: must be between 0 and 65535 (got -1)"),
        (["--max-duration", "31d"], {}, "--max-duration: must be between 1s and 30d (got 31d)"),
        (["--log-level", "LOUD"], {}, "--log-level: 'LOUD' is not one of DEBUG"),
        (["--rate-limit-reader", "fast"], {}, "--rate-limit-reader: 'fast' is not a rate limit"),
        (
            [],
            {"CUGAR_METRICS_SHUTDOWN_GRACE": "soon"},
            "CUGAR_METRICS_SHUTDOWN_GRACE (--shutdown-grace): 'soon' is not a duration",
        ),
        (
            [],
            {"CUGAR_METRICS_NO_AUTH": "maybe"},
            "CUGAR_METRICS_NO_AUTH (--no-auth): 'maybe' is not true or false",
        ),
    ],
)
def test_errors_name_where_the_value_came_from(
    args: list[str], env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        _config(*args)
    assert str(caught.value).startswith(message), str(caught.value)
    if "must be" not in message:  # a value that cannot be read points to the syntax
        assert "cugar-metrics serve --help" in str(caught.value)


def test_a_flag_wins_over_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUGAR_METRICS_MAX_TOOLS", "7")
    assert _config().max_tools == 7
    assert _config("--max-tools", "9").max_tools == 9
    assert _config("--max-tools", "9").caps.tool == 9


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0s"), (2.0, "2s"), (0.01, "0.01s"), (90.0, "90s"), (600.0, "10m"), (86_400.0, "24h")],
)
def test_durations_are_shown_as_they_are_read(seconds: float, text: str) -> None:
    from cugar_metrics.config import parse_duration

    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(30 * 86_400.0)) == 30 * 86_400.0


def test_a_config_reads_no_file_and_preflight_reports_every_problem(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    config = Config(
        auth_keys_file=str(missing / "keys.json"),
        tls_cert=str(missing / "c.pem"),
        tls_key=str(missing / "k.pem"),
        metrics_basic_auth_file=str(missing / "users"),
        state_file=str(missing / "state"),
    )
    problems = preflight(config)
    assert [p.split(":")[0] for p in problems] == [
        "--auth-keys-file",
        "--tls-cert/--tls-key",
        "--metrics-basic-auth-file",
        "--state-file",
    ], problems
    assert "does not exist; create it or fix the path" in problems[0]


def test_check_config_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    cli = ROOT / ".venv" / "bin" / "cugar-metrics"
    result = subprocess.run(
        [
            str(cli),
            "serve",
            "--check-config",
            "--no-auth",
            "--metrics-basic-auth-file",
            str(tmp_path / "none"),
            "--state-file",
            str(tmp_path / "no-dir" / "state"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("cugar-metrics: error: --metrics-basic-auth-file: cannot read")
    assert lines[1].startswith("cugar-metrics: error: --state-file: directory")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.4.5", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.1.2.3", False),
        ("no-such-host.invalid", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    from cugar_metrics.config import is_loopback

    assert is_loopback(host) is loopback


def test_exposure_policy_names_the_flags() -> None:
    from cugar_metrics.config import exposure_problems

    assert exposure_problems(Config()) == []
    assert exposure_problems(Config(host="0.0.0.0", no_auth=True)) == []
    (problem,) = exposure_problems(Config(host="0.0.0.0", metrics_host="127.0.0.1"))
    assert problem.startswith("--host 0.0.0.0 would serve beyond this machine")
    (problem,) = exposure_problems(Config(auth_keys_file="k", host="0.0.0.0"))
    assert "--metrics-basic-auth-file" in problem and "--metrics-open" in problem
    assert exposure_problems(Config(auth_keys_file="k", host="0.0.0.0", metrics_open=True)) == []
