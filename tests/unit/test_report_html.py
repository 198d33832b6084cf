"""`netguard scan --format html` (chalicelib/report_html.py), read back with the standard library's html.parser:
the summaries count what the JSON report counts, every value is escaped, nothing is fetched, each violation
carries its evidence and fix. (tests/e2e/test_cli.py runs the command itself against moto.)"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib.cli import build_report
from chalicelib.policy import load_policy
from chalicelib.report_html import fixes_by_control, render_html
from conftest import parse_html as parse

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
FIXES = fixes_by_control(load_policy())


def row(control: str, resource_id: str, status: str, account: str = "111111111111", **extra: Any) -> dict[str, Any]:
    c = next(c for c in load_policy().controls if c.id == control)
    decision = None
    if status == "NON_COMPLIANT":
        decision = {"kind": "remediate", "reason": "enforce mode", "action": c.remediation, "result": "succeeded",
                    "detail": f"done on {resource_id}", "action_id": "act-1"}
    return {"control": control, "title": c.title, "severity": c.severity, "resource_type": c.resource_types[0],
            "resource_id": resource_id, "arn": f"arn:aws:x:us-east-1:{account}:thing/{resource_id}",
            "account": account, "region": "us-east-1", "status": status,
            "evidence": extra.get("evidence", {"seen": resource_id}), "decision": decision}


def sample_report() -> dict[str, Any]:
    rows = [
        row("SG.1", "sg-0aaa1111", "NON_COMPLIANT", evidence={"rules": [{"CidrIpv4": "0.0.0.0/0", "FromPort": 22}]}),
        row("SG.1", "sg-0bbb2222", "COMPLIANT"),
        row("SG.1", "sg-0ccc3333", "NOT_APPLICABLE", account="222222222222"),
        row("NB.1", HOSTILE, "NON_COMPLIANT", evidence={"DirectInternetAccess": "Enabled", "tag": HOSTILE}),
        row("NB.4", "nb-ok", "COMPLIANT"),
        row("TAG.1", "vpc-0123", "NON_COMPLIANT", account="222222222222", evidence={"missing": ["Owner"]}),
        row("VPC.5", "vpce-1", "NON_COMPLIANT"),
    ]
    return build_report(rows, [{"resource": HOSTILE, "error": "AccessDenied: <b>no</b>"}], True,
                        "111111111111", "us-east-1")


def test_summary_counts_are_the_json_reports() -> None:
    report = sample_report()
    page = parse(render_html(report, FIXES, datetime(2026, 12, 3, tzinfo=UTC)))
    assert page.counts("by-control") == report["summary"]["by_control"]
    expected_accounts: dict[str, dict[str, int]] = {}
    expected_severities: dict[str, dict[str, int]] = {}
    for f in report["findings"]:
        for table, key in ((expected_accounts, f["account"]), (expected_severities, f["severity"])):
            table.setdefault(key, {}).setdefault(f["status"], 0)
            table[key][f["status"]] += 1
    assert page.counts("by-account") == expected_accounts
    assert page.counts("by-severity") == expected_severities
    # totals: the column sums are the JSON report's by_status
    for table in ("by-control", "by-account", "by-severity"):
        sums: dict[str, int] = {}
        for counts in page.counts(table).values():
            for status, n in counts.items():
                sums[status] = sums.get(status, 0) + n
        assert sums == report["summary"]["by_status"]
    # severities in the baseline's order, most severe first
    assert [r[0][1] for r in page.tables["by-severity"][1:]] == ["critical", "high", "medium", "low"]


def test_every_value_is_escaped_and_nothing_runs_or_is_fetched() -> None:
    html = render_html(sample_report(), FIXES)
    page = parse(html)
    tags = {tag for tag, _ in page.tags}
    assert not tags & {"script", "img", "iframe", "object", "embed", "link", "base", "form", "svg"}
    assert tags >= {"html", "head", "style", "body", "table", "section", "details"}
    assert not any(name.startswith("on") or name in ("src", "href", "srcset", "action")
                   for _, attrs in page.tags for name in attrs)
    assert "url(" not in html and "@import" not in html and "http://" not in html and "https://" not in html
    # the hostile name and tag value come back as text, exactly
    text = "".join(page.text)
    assert text.count(HOSTILE) >= 3  # resource name, evidence (tag), unreadable resource
    assert "&lt;script&gt;" in html and "<script" not in html
    assert "AccessDenied: <b>no</b>" in text


def test_each_violation_has_its_evidence_decision_and_fix_from_the_policy() -> None:
    report = sample_report()
    page = parse(render_html(report, FIXES))
    sections = list(page.sections.values())
    assert len(sections) == report["summary"]["non_compliant"] == 4
    assert sections[0].split()[:2] == ["critical", "SG.1"]  # most severe first
    sg = sections[0]
    assert '"CidrIpv4": "0.0.0.0/0"' in sg and "sg-0aaa1111" in sg and "remediate → succeeded" in sg
    assert FIXES["SG.1"]["remediation"] in sg and "Allow the specific CIDRs" in sg
    vpc5 = next(s for s in sections if "VPC.5" in s)
    assert "netguard: alert only." in vpc5 and FIXES["VPC.5"]["guidance"][:60] in vpc5
    assert "Other findings (3)" in "".join(page.text)


def test_an_empty_report_is_a_page_too() -> None:
    page = parse(render_html(build_report([], [], False, "111111111111", "eu-west-1"), FIXES))
    assert page.counts("by-control") == {} and page.sections == {}
    assert "Violations (0)" in "".join(page.text) and "None." in "".join(page.text)
