"""Cold start: time to import app.py in a fresh interpreter, against `import boto3` alone.

Prints medians over N fresh processes (default 15). Also times what the first invocation adds
(runtime: settings, policy, clients, idempotency layer). Never asserts: figures only.

    .venv/bin/python benchmarks/cold_start.py [-n 15]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBES = {
    "import boto3": "import boto3",
    "import app (netguard)": "import app",
    "import app + first-invocation runtime": (
        "import app\n"
        "from chalicelib import handlers\n"
        "handlers.runtime()"
    ),
}

TIMER = """
import time, sys
start = time.perf_counter()
exec(compile({code!r}, "<probe>", "exec"))
sys.stdout.write(repr(time.perf_counter() - start))
"""


def measure(code: str, runs: int) -> list[float]:
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "NETGUARD_LEDGER_TABLE": "netguard-ledger-bench", "PYTHONDONTWRITEBYTECODE": "0"}
    times = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", TIMER.format(code=code)], cwd=ROOT, env=env,
                             capture_output=True, text=True, check=True).stdout
        times.append(float(out) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=15)
    args = parser.parse_args()
    measure("import app", 2)  # warm the bytecode cache, as a deployed package would be
    results = {name: measure(code, args.runs) for name, code in PROBES.items()}
    base = statistics.median(results["import boto3"])
    print(f"cold start, median of {args.runs} fresh processes (ms), Python {sys.version.split()[0]}")
    print(f"{'probe':<42}{'median':>8}{'min':>8}{'max':>8}{'x boto3':>9}")
    for name, times in results.items():
        med = statistics.median(times)
        print(f"{name:<42}{med:>8.1f}{min(times):>8.1f}{max(times):>8.1f}{med / base:>9.2f}")


if __name__ == "__main__":
    main()
