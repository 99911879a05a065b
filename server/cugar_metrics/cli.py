"""The `cugar-metrics` command. The only place that exits."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from cugar_metrics import __version__
from cugar_metrics.auth import KeysFileError
from cugar_metrics.config import (
    ENV_PREFIX,
    OPTIONS,
    Config,
    ConfigError,
    exposure_problems,
    from_text,
    markdown_table,
    preflight,
)


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
    )
    for spec in OPTIONS:
        accepted = f"; accepted: {spec.range_text()}" if spec.low is not None else ""
        default = spec.default_text()
        help_text = f"{spec.help}{accepted} (default: {default}) [env {spec.env}]".replace("`", "")
        if spec.switch:
            serve.add_argument(
                spec.flag,
                dest=spec.name,
                action="store_const",
                const="false" if spec.default else "true",
                default=None,
                help=help_text.replace("%", "%%"),
            )
        else:
            serve.add_argument(
                spec.flag,
                dest=spec.name,
                default=None,
                metavar=spec.kind.metavar,
                help=help_text.replace("%", "%%"),
            )
    serve.add_argument(
        "--check-config",
        action="store_true",
        help="validate the configuration, print it and exit (0 if valid)",
    )
    options = sub.add_parser(
        "options",
        help="list the options of 'serve' (--markdown: the README's table)",
        description="List every option of 'cugar-metrics serve' with its environment variable "
        "and default; --markdown prints the table of README.md's Configuration section.",
    )
    options.add_argument("--markdown", action="store_true", help="print a Markdown table")
    options.set_defaults(run=_list_options)
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


def config_from_args(a: argparse.Namespace) -> Config:
    """The configuration from parsed `serve` arguments: a flag wins over its environment
    variable, which wins over the default."""
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    for spec in OPTIONS:
        given = getattr(a, spec.name, None)
        if given is not None:
            values[spec.name], sources[spec.name] = given, spec.flag
        elif spec.env in os.environ:
            values[spec.name] = os.environ[spec.env]
            sources[spec.name] = f"{spec.env} ({spec.flag})"
    return from_text(values, sources)


def _list_options(args: argparse.Namespace) -> int:
    if args.markdown:
        sys.stdout.write(markdown_table())
        return 0
    for spec in OPTIONS:
        default = spec.default_text().replace("`", "")
        print(f"{spec.flag:<34} {spec.env_text():<48} {default}")
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help()
            sys.exit(2)
        if args.command != "serve":
            sys.exit(args.run(args))
        config = config_from_args(args)
    except ConfigError as e:
        print(f"cugar-metrics: error: {e}", file=sys.stderr)
        sys.exit(2)
    # The start-up step: every file the options name, then the authentication policy; each
    # problem names its flag, and all of them are reported at once.
    problems = preflight(config) + exposure_problems(config)
    if problems:
        for problem in problems:
            print(f"cugar-metrics: error: {problem}", file=sys.stderr)
        sys.exit(2)
    if args.check_config:
        for spec in OPTIONS:
            value = getattr(config, spec.name)
            print(f"{spec.name} = {'' if value is None else spec.kind.show(value)}")
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
