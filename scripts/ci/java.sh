#!/usr/bin/env bash
# CI for the Java client (clients/java): generates the cugar.metrics.v1 classes from protos/,
# compiles, runs the JUnit suite against the real server process (.venv/bin/cugar-metrics, from
# scripts/install-tools.sh), packages the jar, and builds the conformance runner that
# clients/java/conformance.sh starts (target/test-classes + target/runtime-classpath.txt).
# Every plugin and dependency version is pinned in clients/java/pom.xml; Maven Central fills the
# default local repository (~/.m2) on the first run.
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v mvn >/dev/null || { echo "java.sh: Maven (mvn) is required" >&2; exit 1; }
command -v java >/dev/null || { echo "java.sh: a Java 17+ JDK is required" >&2; exit 1; }
[ -x .venv/bin/cugar-metrics ] || { echo "java.sh: run scripts/install-tools.sh first" >&2; exit 1; }

cd clients/java
# -q keeps Maven quiet; Surefire's per-class lines and the totals are printed from its reports.
rm -rf target/surefire-reports
status=0
mvn -B -q verify || status=$?

reports=target/surefire-reports
if compgen -G "$reports/TEST-*.xml" >/dev/null; then
  python3 - "$reports" <<'PY'
import glob, sys, xml.etree.ElementTree as ET
tests = failures = errors = skipped = 0
for path in sorted(glob.glob(sys.argv[1] + "/TEST-*.xml")):
    suite = ET.parse(path).getroot()
    t, f, e, s = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
    tests, failures, errors, skipped = tests + t, failures + f, errors + e, skipped + s
    print(f"[INFO] Tests run: {t}, Failures: {f}, Errors: {e}, Skipped: {s} -- in {suite.get('name')}")
print(f"[INFO] Tests run: {tests}, Failures: {failures}, Errors: {errors}, Skipped: {skipped}")
line = f"java: {tests - failures - errors - skipped} passed, {failures + errors} failed"
print(line + (f", {skipped} skipped" if skipped else ""))
PY
fi
exit "$status"
