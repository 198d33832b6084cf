"""Cold start: time to import each tool's Lambda entry in a fresh interpreter, and to build what its
first invocation needs, against `import boto3` alone (and boto3 with one client), in the same run.

netguard runs in the project's .venv; Cloud Custodian (when `.venv-bench` exists: `make .venv-bench`)
in its own, with its own boto3 (c7n pins boto3 < 1.44), so each tool is compared with the boto3 it
runs on. Probes alternate between tools, round after round, so both see the same machine load.
Prints medians over N fresh processes per probe (default 15). Never asserts: figures only.

    .venv/bin/python benchmarks/cold_start.py [-n 15]

What each first-invocation probe builds, before its first AWS call:
- netguard: `handlers.runtime()`: settings, the policy (parsed at import for the event patterns),
  the ledger with its DynamoDB client, the notifier, Powertools idempotency;
- Custodian: what `c7n.handler.dispatch_event` does on a cold start (init_config with the account id
  given, so without its STS call; load_resources; PolicyCollection; validate) for the notebook
  policy of benchmarks/custodian/events.yml, and the SageMaker client its first call needs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
CUSTODIAN_POLICY = ROOT / "benchmarks" / "custodian" / "events.yml"

NETGUARD = {
    "import boto3": "import boto3",
    "import boto3 + one client": "import boto3\nboto3.client('dynamodb')",
    "netguard: import app": "import app",
    "netguard: import app + first-invocation runtime": (
        "import app\n"
        "from chalicelib import handlers\n"
        "handlers.runtime()"
    ),
}


def custodian_probes() -> dict[str, str]:
    import yaml

    policy = yaml.safe_load(CUSTODIAN_POLICY.read_text())["policies"][0]
    data = {"policies": [policy], "execution-options": {"account_id": "123456789012", "region": "us-east-1"}}
    return {
        "import boto3 (Custodian's venv)": "import boto3",
        "import boto3 + one client (Custodian's venv)": "import boto3\nboto3.client('sagemaker')",
        "Custodian: import c7n.handler": "import c7n.handler",
        "Custodian: c7n.handler + first-invocation setup": (
            "import boto3, c7n.handler\n"
            "from c7n.structure import StructureParser\n"
            "from c7n.resources import load_resources\n"
            "from c7n.policy import PolicyCollection\n"
            f"data = {data!r}\n"
            "config = c7n.handler.init_config(data)\n"
            "load_resources(StructureParser().get_resource_types(data))\n"
            "[p.validate() for p in PolicyCollection.from_data(data, config)]\n"
            "boto3.Session(region_name='us-east-1').client('sagemaker')"
        ),
    }

TIMER = """
import time, sys
start = time.perf_counter()
exec(compile({code!r}, "<probe>", "exec"))
sys.stdout.write(repr(time.perf_counter() - start))
"""


def measure_once(python: Path | str, code: str) -> float:
    # bytecode is written and used, as in a deployed package (any value of PYTHONDONTWRITEBYTECODE,
    # "0" included, turns writing off)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("AWS_")}
    env.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
               NETGUARD_LEDGER_TABLE="netguard-ledger-bench")
    out = subprocess.run([str(python), "-c", TIMER.format(code=code)], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"probe failed:\n{code}\n{out.stderr[-3000:]}")
    return float(out.stdout) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=15)
    parser.add_argument("--json", help="also write the medians to this file")
    args = parser.parse_args()
    probes = [(sys.executable, name, code) for name, code in NETGUARD.items()]
    if BENCH_PYTHON.exists():
        probes += [(BENCH_PYTHON, name, code) for name, code in custodian_probes().items()]
    else:
        print(f"({BENCH_PYTHON} missing: Custodian not measured; `make .venv-bench` installs it)")
    for python, _, code in probes:  # warm the bytecode caches, as a deployed package would be
        measure_once(python, code)
    results: dict[str, list[float]] = {name: [] for _, name, _ in probes}
    for _ in range(args.runs):
        for python, name, code in probes:
            results[name].append(measure_once(python, code))
    medians = {name: statistics.median(times) for name, times in results.items()}
    print(f"cold start, median of {args.runs} fresh processes (ms), Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs")
    print("| probe | median | min | max | x its import boto3 | x its boto3 + one client |\n|---|---|---|---|---|---|")
    for python, name, _ in probes:
        own = "(Custodian's venv)" if python == BENCH_PYTHON else ""
        base = medians[f"import boto3 {own}".strip()]
        base_client = medians[f"import boto3 + one client {own}".strip()]
        times = results[name]
        print(f"| {name} | {medians[name]:.0f} | {min(times):.0f} | {max(times):.0f} | "
              f"{medians[name] / base:.2f} | {medians[name] / base_client:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(medians, indent=1))


if __name__ == "__main__":
    main()
