#!/usr/bin/env python3
"""Fails on tests that cannot fail: skipped or focused tests, and Python tests without an
assertion. `make lint` runs it over tests/ and clients/; its own tests are in tests/scripts/.

Rules (each finding is printed as PATH:LINE: what, and the exit code is 1):

1. No skip, expected-failure or focus marker in any language. A skipped test proves nothing
   and a focused one (`.only`) silently skips every other test. Matched in .py, .go, .ts,
   .mts, .js, .mjs and .java files: `pytest.mark.skip`/`skipif`/`xfail`, `pytest.skip(`,
   `pytest.xfail(`, `pytest.importorskip(`; Go `t.Skip`/`Skipf`/`SkipNow`; JUnit
   `@Disabled...` and `@Ignore`; node:test and mocha/jest `it.skip`, `describe.skip`,
   `test.skip`, `t.skip(`, `.todo`, `.only(`, and the `{ skip: ... }`/`{ only: ... }`
   options. A test that cannot run here must fail and say why instead.
2. Every Python test function (`test_*`, at module level or in a class, in a file named
   `test_*.py` or `*_test.py`) contains an assertion: an `assert` statement,
   `pytest.raises`/`pytest.warns`/`pytest.fail`, or a call of a helper whose name starts with
   `assert`, `check`, `expect`, `verify` or `wait_for` (such helpers must themselves fail
   when the check does not hold). Nested functions count (a check in a local callback is
   still a check), and so do the module's own functions that the test calls by name, such as
   `asyncio.run(_scenario())`. Other languages are not parsed; rule 1 covers their markers.

Paths named node_modules, gen, target, dist, build, .venv or __pycache__ are not searched.

    scripts/check-tests.py [PATH ...]      (default: tests clients)
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PATHS = ("tests", "clients")
SKIPPED_DIRS = {"node_modules", "gen", "target", "dist", "build", ".venv", "__pycache__"}
SUFFIXES = {".py", ".go", ".ts", ".mts", ".js", ".mjs", ".java"}

MARKERS = re.compile(
    r"pytest\.mark\.(?:skip|skipif|xfail)\b"
    r"|pytest\.(?:skip|xfail|importorskip)\s*\("
    r"|\bt\.Skip(?:f|Now)?\s*\("
    r"|@Disabled\w*|@Ignore\b"
    r"|\b(?:it|describe|test|suite|context)\.(?:skip|only|todo)\b"
    r"|\bt\.(?:skip|todo)\s*\("
    r"|\.only\s*\("
)
#: node:test's options; in JavaScript and TypeScript only (in Python `, only:` is a parameter).
JS_MARKERS = re.compile(r"[{,]\s*(?:skip|only|todo)\s*:")
JS_SUFFIXES = {".ts", ".mts", ".js", ".mjs"}
ASSERTING_PREFIXES = ("assert", "check", "expect", "verify", "wait_for")
PYTEST_ASSERTIONS = {"raises", "warns", "fail"}


def source_files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_file():
            yield path
            continue
        for found in sorted(path.rglob("*")):
            parts = set(found.relative_to(path).parts[:-1])
            if found.is_file() and found.suffix in SUFFIXES and not parts & SKIPPED_DIRS:
                yield found


def marker_findings(path: Path, text: str) -> Iterator[str]:
    js = path.suffix in JS_SUFFIXES
    for number, line in enumerate(text.splitlines(), 1):
        match = MARKERS.search(line) or (JS_MARKERS.search(line) if js else None)
        if match:
            yield f"{path}:{number}: skip or focus marker `{match.group(0).strip()}`"


def _called_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def asserts(
    function: ast.AST, local: dict[str, ast.AST], seen: frozenset[str] = frozenset()
) -> bool:
    """True if `function` contains an assertion (rule 2), directly or in a function of the
    same module that it calls (`local`, by name)."""
    for node in ast.walk(function):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Call):
            name = _called_name(node)
            func = node.func
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == "pytest"
                and name in PYTEST_ASSERTIONS
            ):
                return True
            if name.lower().lstrip("_").startswith(ASSERTING_PREFIXES):
                return True
            if (
                isinstance(func, ast.Name)
                and name in local
                and name not in seen
                and asserts(local[name], local, seen | {name})
            ):
                return True
    return False


def is_test_file(path: Path) -> bool:
    return path.suffix == ".py" and (
        path.name.startswith("test_") or path.name.endswith("_test.py")
    )


def assertion_findings(path: Path, text: str) -> Iterator[str]:
    tree = ast.parse(text, filename=str(path))
    candidates: list[ast.stmt] = list(tree.body)
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            candidates += node.body
    local: dict[str, ast.AST] = {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    for node in candidates:
        if (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name.startswith("test")
            and not asserts(node, local)
        ):
            yield f"{path}:{node.lineno}: test `{node.name}` has no assertion"


def check(paths: list[Path]) -> list[str]:
    findings: list[str] = []
    for path in source_files(paths):
        text = path.read_text(encoding="utf-8", errors="replace")
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        findings += marker_findings(shown, text)
        if is_test_file(path):
            findings += assertion_findings(shown, text)
    return findings


def main(argv: list[str]) -> int:
    paths = [Path(p).resolve() for p in argv] or [ROOT / p for p in DEFAULT_PATHS]
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"check-tests: no such path: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    findings = check(paths)
    for finding in findings:
        print(finding)
    if findings:
        print(
            f"check-tests: {len(findings)} finding(s); see scripts/check-tests.py", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
