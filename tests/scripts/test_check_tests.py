"""scripts/check-tests.py: it fails on skip and focus markers and on Python tests without an
assertion, and passes on this repository. The markers below are assembled from pieces so that
this file itself holds none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.serverproc import ROOT

SCRIPT = ROOT / "scripts" / "check-tests.py"


def run(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def findings(directory: Path, name: str, source: str) -> list[str]:
    """The findings for one file `name` holding `source`; the exit code agrees with them."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    result = run(directory)
    lines = result.stdout.splitlines()
    assert result.returncode == (1 if lines else 0), result.stdout + result.stderr
    return lines


SKIP = "skip"
ONLY = "only"


@pytest.mark.parametrize(
    ("name", "source", "marker"),
    [
        ("test_a.py", f"import pytest\n\n@pytest.mark.{SKIP}\ndef test_x():\n    assert 1\n", SKIP),
        (
            "test_a.py",
            f"@pytest.mark.{SKIP}if(True, reason='x')\ndef test_x():\n    assert 1\n",
            SKIP,
        ),
        ("test_a.py", "@pytest.mark.xfa" + "il\ndef test_x():\n    assert 1\n", "xfail"),
        ("test_a.py", f"def test_x():\n    pytest.{SKIP}('later')\n    assert 1\n", SKIP),
        ("a_test.go", f'func TestX(t *testing.T) {{\n\tt.{SKIP.title()}("flaky")\n}}\n', "Skip"),
        ("ATest.java", "class ATest {\n  @Disab" + "led\n  @Test void x() {}\n}\n", "Disabled"),
        ("ATest.java", "class ATest {\n  @Ign" + "ore\n  @Test public void x() {}\n}\n", "Ignore"),
        ("a.test.ts", f'it.{SKIP}("x", () => {{}});\n', SKIP),
        ("a.test.ts", f'describe.{SKIP}("x", () => {{}});\n', SKIP),
        ("a.test.ts", f'test.{SKIP}("x", () => {{}});\n', SKIP),
        ("a.test.ts", f'it.{ONLY}("x", () => {{}});\n', ONLY),
        ("a.test.ts", f'test("x", {{ {SKIP}: true }}, () => {{}});\n', SKIP),
    ],
)
def test_each_skip_or_focus_marker_fails_the_check(
    tmp_path: Path, name: str, source: str, marker: str
) -> None:
    (line,) = findings(tmp_path, name, source)
    assert line.startswith(f"{tmp_path / name}:")
    assert "skip or focus marker" in line and marker in line


def test_a_python_test_without_an_assertion_fails_the_check(tmp_path: Path) -> None:
    source = "def helper():\n    pass\n\n\ndef test_nothing():\n    helper()\n"
    assert findings(tmp_path, "test_b.py", source) == [
        f"{tmp_path / 'test_b.py'}:5: test `test_nothing` has no assertion"
    ]
    in_class = "class TestC:\n    def test_nothing(self):\n        print(1)\n"
    assert findings(tmp_path / "c", "test_c.py", in_class) == [
        f"{tmp_path / 'c' / 'test_c.py'}:2: test `test_nothing` has no assertion"
    ]


@pytest.mark.parametrize(
    "body",
    [
        "assert f() == 1",
        "with pytest.raises(ValueError):\n        f()",
        "served.assert_serving()",
        "check_output(f())",
        "expect_reply(f())",
        "wait_for('ready', f, timeout=30)",
        "def inner():\n        assert f()\n    inner()",
        "asyncio.run(_scenario())",
    ],
)
def test_what_counts_as_an_assertion(tmp_path: Path, body: str) -> None:
    module = f"async def _scenario():\n    assert await f()\n\n\ndef test_x():\n    {body}\n"
    assert findings(tmp_path, "test_d.py", module) == []


def test_a_called_module_function_without_an_assertion_does_not_count(tmp_path: Path) -> None:
    module = "def _scenario():\n    return _scenario()\n\n\ndef test_x():\n    _scenario()\n"
    assert findings(tmp_path, "test_e.py", module) == [
        f"{tmp_path / 'test_e.py'}:5: test `test_x` has no assertion"
    ]


def test_helpers_and_excluded_directories_are_not_checked(tmp_path: Path) -> None:
    no_assert = "def test_nothing():\n    pass\n"
    assert findings(tmp_path, "helpers.py", no_assert) == []  # not a test file
    parameter = f"def select(items, {ONLY}: bool) -> None:\n    pass\n"
    assert findings(tmp_path, "select.py", parameter) == []  # an option only in JS and TS
    for excluded in ("node_modules", "gen", "target"):
        marker = f'it.{ONLY}("x", () => {{}});\n'
        assert findings(tmp_path, f"{excluded}/x/a.test.ts", marker) == []


def test_this_repository_passes(tmp_path: Path) -> None:
    result = run()
    assert (result.returncode, result.stdout) == (0, ""), result.stdout + result.stderr
