"""RSS of a real `cugar-metrics serve` process under load at the caps, every 10 s.

Every capped series changes in every 10-s tick (see tests/process/windows/load.py: batches
of 500 over 50 profiles x 2 outcomes, 200 domain/tool pairs, 50 profiles x 4 decisions and
100 error types, values from 1 us to 1 h). Prints one JSON line per sample and a summary:
RSS at minute 1 and at the end, the growth between them, the peak.

    python bench/windows_server_memory.py [--minutes 10] [--rate 1000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.process.windows.load import Sample, drive  # noqa: E402
from tests.support.serverproc import launch  # noqa: E402


def mib(n: int) -> float:
    return round(n / 2**20, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="executions/s")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = launch(Path(tmp), name="windows-memory")
        try:

            def show(s: Sample) -> None:
                print(
                    json.dumps({"seconds": s.seconds, "rss_mib": mib(s.rss), "sent": s.sent}),
                    flush=True,
                )

            samples = drive(
                server.target,
                server.proc.pid,
                args.minutes * 60,
                rate=args.rate,
                every=args.every,
                on_sample=show,
            )
        finally:
            code = server.stop()
    minute1 = next(s for s in samples if s.seconds >= 60)
    last = samples[-1]
    print(
        json.dumps(
            {
                "summary": True,
                "minutes": args.minutes,
                "rate": args.rate,
                "sent": last.sent,
                "achieved_rate": round(last.sent / last.seconds, 1),
                "rss_start_mib": mib(samples[0].rss),
                "rss_minute1_mib": mib(minute1.rss),
                "rss_end_mib": mib(last.rss),
                "growth_minute1_to_end_mib": mib(last.rss - minute1.rss),
                "rss_peak_sampled_mib": mib(max(s.rss for s in samples)),
                "exit_code": code,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
