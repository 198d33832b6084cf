"""netguard under injected AWS faults: prints the figures of netguard_testkit/fault_scenario.py.

    .venv/bin/python reliability/faults.py [--rate 0.3] [--seeds 1,2,3] [--groups 12] [--notebooks 6]

Exits 1 if a figure does not hold: every violation remediated in the end, no duplicate remediation,
every failed remediation alerted with its error.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    from netguard_testkit.fault_scenario import run

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=0.3)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--groups", type=int, default=12, help="security groups with SSH open on notebook interfaces")
    parser.add_argument("--notebooks", type=int, default=6, help="notebooks with internet access in a public subnet")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # the engine's log lines would drown the figures
    print(f"faults injected on {args.rate:.0%} of netguard's AWS calls (throttling, 5xx, timeouts, AccessDenied)")
    header = ("seed", "violations", "remediated", "by events", "+rechecks", "+sweeps", "duplicates",
              "failed actions", "alerted w/ error", "dead-lettered", "AWS requests", "faults", "seconds")
    print(" | ".join(header))
    ok = True
    for seed in (int(s) for s in args.seeds.split(",")):
        f = run(args.rate, seed, args.groups, args.notebooks)
        print(" | ".join(str(v) for v in (
            seed, f.violations, f.remediated, f.remediated_by["events"], f.remediated_by["rechecks"],
            f.remediated_by["sweeps"], f.duplicate_remediations, f.failed_outcomes, f.failures_alerted_with_error,
            f.dead_lettered, f.requests, sum(f.injected.values()), f"{f.seconds:.0f}")))
        ok &= (f.remediated == f.violations and f.duplicate_remediations == 0
               and f.failures_alerted_with_error == f.failed_outcomes)
    print("all figures hold" if ok else "A FIGURE DOES NOT HOLD")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
