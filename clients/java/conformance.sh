#!/usr/bin/env bash
# Runs the Java client's conformance program against a live server:
#   clients/java/conformance.sh --target HOST:PORT --profile P
# It runs from the built classes with plain `java` and the runtime class path that the build
# writes to target/runtime-classpath.txt (scripts/ci/java.sh builds both); when they are missing
# it compiles them first with Maven.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
classpath_file="$here/target/runtime-classpath.txt"
program="$here/target/test-classes/dev/cugar/metrics/conformance/Conformance.class"
if [ ! -f "$classpath_file" ] || [ ! -f "$program" ]; then
  echo "conformance.sh: building the Java client (mvn test-compile)" >&2
  (cd "$here" && mvn -B -q test-compile) >&2
fi
exec java -cp "$here/target/classes:$here/target/test-classes:$(cat "$classpath_file")" \
  dev.cugar.metrics.conformance.Conformance "$@"
