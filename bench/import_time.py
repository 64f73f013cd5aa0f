"""Time `import spairs_assets.definitions` in fresh interpreters (budget: under 2 s).

Prints the median and spread of several cold imports, and how much of it is Dagster itself.
    python bench/import_time.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

CODE = (
    "import time; t = time.perf_counter(); import dagster; d = time.perf_counter() - t; "
    "import spairs_assets.definitions; print(d, time.perf_counter() - t)"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    dagster_s, total_s = [], []
    for _ in range(args.runs):
        out = subprocess.run([sys.executable, "-W", "ignore", "-c", CODE], capture_output=True,
                             text=True, check=True).stdout.split()
        dagster_s.append(float(out[0]))
        total_s.append(float(out[1]))
    med = statistics.median(total_s)
    print(f"import spairs_assets.definitions: median {med:.2f} s "
          f"(min {min(total_s):.2f}, max {max(total_s):.2f}, {args.runs} cold runs)")
    print(f"  of which `import dagster`: median {statistics.median(dagster_s):.2f} s")
    print(f"  spairs' own share: {med - statistics.median(dagster_s):.2f} s")
    print(f"budget 2.00 s: {'OK' if med < 2.0 else 'OVER'}")


if __name__ == "__main__":
    main()
