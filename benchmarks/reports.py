"""Reports: what the Security Hub channel and the HTML report cost for a large run. Figures only.

Builds N findings over the baseline's controls (a third of them violations, as a messy account would give),
then prints: the time to build their ASFF findings and the size of a BatchImportFindings call of 100; the
time to render the HTML report of the same findings and the page's size. No AWS: the calls themselves are
network round trips (a sweep's chunk of 200 resources makes a few).

    .venv/bin/python benchmarks/reports.py [--findings 10000]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chalicelib.cli import build_report  # noqa: E402
from chalicelib.model import COMPLIANT, NON_COMPLIANT, NOT_APPLICABLE, Finding, Resource, ResourceRef  # noqa: E402
from chalicelib.notify.securityhub import IMPORT_BATCH, asff_finding  # noqa: E402
from chalicelib.policy import load_policy  # noqa: E402
from chalicelib.report_html import fixes_by_control, render_html  # noqa: E402
from chalicelib.scan import finding_row  # noqa: E402

STATUSES = (NON_COMPLIANT, COMPLIANT, NOT_APPLICABLE)


def findings(count: int) -> list[Finding]:
    controls = load_policy().controls
    out = []
    for i in range(count):
        control = controls[i % len(controls)]
        ref = ResourceRef(control.resource_types[0], f"res-{i:06d}", "111111111111", "eu-west-1")
        resource = Resource(ref, f"arn:aws:x:eu-west-1:111111111111:thing/res-{i:06d}", {},
                            read_at="2026-12-03T10:00:00.000000Z")
        evidence = {"seen": ref.resource_id, "rules": [{"CidrIpv4": "0.0.0.0/0", "FromPort": 22, "ToPort": 22}]}
        out.append(Finding(control, resource, STATUSES[i % 3], evidence))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--findings", type=int, default=10_000)
    args = parser.parse_args()
    all_findings = findings(args.findings)
    now = datetime.now(UTC)

    failing = [f for f in all_findings if f.status == NON_COMPLIANT]
    start = time.perf_counter()
    asff = [asff_finding(f, None, now) for f in failing]
    took = time.perf_counter() - start
    batch = len(json.dumps({"Findings": asff[:IMPORT_BATCH]}).encode())
    calls = -(-len(asff) // IMPORT_BATCH)
    print(f"ASFF: {len(asff):,} findings built in {took * 1000:.0f} ms ({took / len(asff) * 1e6:.0f} us each); "
          f"{calls} BatchImportFindings calls, {batch / 1024:.0f} KB per call of {IMPORT_BATCH}")

    report = build_report([finding_row(f, None) for f in all_findings], [], False, "111111111111", "eu-west-1")
    fixes = fixes_by_control(load_policy())
    start = time.perf_counter()
    page = render_html(report, fixes)
    took = time.perf_counter() - start
    print(f"HTML: {len(all_findings):,} findings ({len(failing):,} violations) rendered in {took:.2f} s, "
          f"{len(page.encode()) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
