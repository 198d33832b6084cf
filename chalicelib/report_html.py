"""`netguard scan --format html`: the scan report as one self-contained HTML file. CLI only (never imported
by app.py or the engine).

Self-contained: inline CSS, no script, no image, no font, nothing fetched; it opens from a mail attachment or
a file share as it is. Every value from AWS is escaped (resource names, tag values and evidence are written
by whoever owns the resources): `_e` is the only way text reaches the page.

Layout: the run (account, region, mode), three summaries (by control, by account and by severity: counts of
each status, the same counts as the JSON report's `summary`), what could not be read, then every violation
with its evidence, what netguard decided, and the fix (the control's remediation and guidance from policies/),
and the other findings in a collapsed table (`<details>`, which opens without JavaScript).
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from .model import SEVERITIES

STATUSES = ("NON_COMPLIANT", "COMPLIANT", "NOT_APPLICABLE")
STATUS_LABELS = {"NON_COMPLIANT": "non-compliant", "COMPLIANT": "compliant", "NOT_APPLICABLE": "not applicable"}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #d5d9e0}
h3{font-size:15px;margin:0 0 6px}
.meta{color:#5a6372;margin:0 0 16px}
table{border-collapse:collapse;width:100%;background:#fff;margin:8px 0}
th,td{border:1px solid #d5d9e0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef0f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.finding{background:#fff;border:1px solid #d5d9e0;border-left:6px solid #8792a2;padding:12px 16px;margin:12px 0}
.finding.critical{border-left-color:#7a0019}.finding.high{border-left-color:#c2410c}
.finding.medium{border-left-color:#b7791f}.finding.low{border-left-color:#2f6f9f}
.sev{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;background:#8792a2;font-size:12px}
.sev.critical{background:#7a0019}.sev.high{background:#c2410c}.sev.medium{background:#b7791f}
.sev.low{background:#2f6f9f}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:6px 0}dt{color:#5a6372}dd{margin:0}
pre{background:#f0f2f5;padding:8px;overflow-x:auto;white-space:pre-wrap;word-break:break-all;margin:4px 0}
.fix{background:#eef7ee;border:1px solid #b9dcb9;padding:6px 10px}
.errors li{color:#8a1c1c}
"""


def _e(value: Any) -> str:
    """Text for the page: escaped, quotes too (it may land in an attribute)."""
    return escape("" if value is None else str(value), quote=True)


def _count(rows: Iterable[Mapping[str, Any]], key: str) -> dict[str, dict[str, int]]:
    """{value of `key`: {status: count}} over the findings."""
    out: dict[str, dict[str, int]] = {}
    for row in rows:
        per = out.setdefault(str(row.get(key)), {})
        per[row["status"]] = per.get(row["status"], 0) + 1
    return out


def _severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def _counts_table(table_id: str, caption: str, first: list[str], rows: Sequence[tuple[list[str], Mapping[str, int]]]
                  ) -> str:
    """A summary table: leading columns, then one count per status and the total (data-status names each)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in first)
    head += "".join(f'<th data-status="{s}">{_e(STATUS_LABELS[s])}</th>' for s in STATUSES) + "<th>total</th>"
    body = []
    for cells, counts in rows:
        tds = "".join(f"<td>{_e(c)}</td>" for c in cells)
        tds += "".join(f'<td class="n" data-status="{s}">{counts.get(s, 0)}</td>' for s in STATUSES)
        body.append(f'<tr>{tds}<td class="n" data-status="total">{sum(counts.values())}</td></tr>')
    return (f'<table id="{table_id}"><caption hidden>{_e(caption)}</caption><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def fixes_by_control(policy: Any) -> dict[str, dict[str, str]]:
    """{control id: {"remediation": what netguard does, "guidance": what the owner should do}} from policies/."""
    from .remediate import ACTIONS  # noqa: PLC0415

    return {c.id: {"remediation": ACTIONS[c.remediation].describe if c.remediation else "alert only",
                   "guidance": " ".join(c.guidance.split())} for c in policy.controls}


def _decision(decision: Mapping[str, Any] | None) -> str:
    if not decision:
        return "<dd>none</dd>"
    parts = [f"{_e(decision.get('kind'))} &rarr; {_e(decision.get('result'))}"]
    for key in ("action", "detail", "reason", "action_id"):
        if decision.get(key):
            parts.append(f"{_e(key.replace('_', ' '))}: {_e(decision[key])}")
    return "<dd>" + "<br>".join(parts) + "</dd>"


def _finding(index: int, row: Mapping[str, Any], fixes: Mapping[str, Mapping[str, str]]) -> str:
    severity = str(row.get("severity", ""))
    fix = fixes.get(str(row.get("control")), {})
    evidence = json.dumps(row.get("evidence"), indent=2, sort_keys=True, ensure_ascii=False, default=str)
    sev_class = _e(severity if severity in SEVERITIES else "unknown")
    return (
        f'<section class="finding {sev_class}" id="finding-{index}" data-control="{_e(row.get("control"))}">'
        f'<h3><span class="sev {sev_class}">{_e(severity)}</span> {_e(row.get("control"))} '
        f'{_e(row.get("title"))}</h3><dl>'
        f'<dt>resource</dt><dd class="resource">{_e(row.get("resource_id"))} ({_e(row.get("resource_type"))})</dd>'
        f'<dt>ARN</dt><dd>{_e(row.get("arn"))}</dd>'
        f'<dt>account, region</dt><dd>{_e(row.get("account"))}, {_e(row.get("region"))}</dd>'
        f'<dt>decision</dt>{_decision(row.get("decision"))}'
        f'</dl><div>evidence</div><pre class="evidence">{_e(evidence)}</pre>'
        f'<div class="fix"><strong>Fix.</strong> netguard: {_e(fix.get("remediation", "unknown control"))}. '
        f'{_e(fix.get("guidance", ""))}</div></section>')


def render_html(report: Mapping[str, Any], fixes: Mapping[str, Mapping[str, str]],
                now: datetime | None = None) -> str:
    """The report (cli.build_report's dict) as one HTML document. Pure but for `now`."""
    rows: list[Mapping[str, Any]] = list(report.get("findings", []))
    summary: Mapping[str, Any] = report.get("summary", {})
    moment = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    titles = {str(r.get("control")): (str(r.get("title", "")), str(r.get("severity", ""))) for r in rows}

    by_control = _count(rows, "control")
    control_rows = [([cid, titles[cid][0], titles[cid][1]], by_control[cid])
                    for cid in sorted(by_control, key=lambda c: (_severity_rank(titles[c][1]), c))]
    by_account = _count(rows, "account")
    account_rows = [([account], by_account[account]) for account in sorted(by_account)]
    by_severity = _count(rows, "severity")
    severity_rows = [([sev], by_severity[sev]) for sev in sorted(by_severity, key=_severity_rank)]
    totals = {s: sum(1 for r in rows if r["status"] == s) for s in STATUSES}

    violations = sorted((r for r in rows if r["status"] == "NON_COMPLIANT"),
                        key=lambda r: (_severity_rank(str(r.get("severity"))), str(r.get("control")),
                                       str(r.get("resource_id"))))
    others = [r for r in rows if r["status"] != "NON_COMPLIANT"]
    errors = summary.get("errors") or []

    out = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>netguard scan: {_e(summary.get('account'))} {_e(summary.get('region'))}</title>",
           f"<style>{CSS}</style></head><body><main>",
           f"<h1>netguard scan of {_e(summary.get('account'))}, {_e(summary.get('region'))}</h1>",
           f'<p class="meta">mode {_e(summary.get("mode"))}; {_e(summary.get("resources", 0))} resources, '
           f'{len(rows)} findings: <span id="total-non-compliant">{totals["NON_COMPLIANT"]}</span> non-compliant, '
           f'{totals["COMPLIANT"]} compliant, {totals["NOT_APPLICABLE"]} not applicable; '
           f'{_e(summary.get("remediated", 0))} remediated; written {_e(moment)}</p>',
           "<h2>By control</h2>", _counts_table("by-control", "findings by control", ["control", "title", "severity"],
                                                control_rows),
           "<h2>By account</h2>", _counts_table("by-account", "findings by account", ["account"], account_rows),
           "<h2>By severity</h2>", _counts_table("by-severity", "findings by severity", ["severity"], severity_rows)]
    if errors:
        out.append('<h2>Could not read</h2><ul class="errors">')
        out += [f"<li>{_e(err.get('resource'))}: {_e(err.get('error'))}</li>" for err in errors]
        out.append("</ul>")
    out.append(f'<h2>Violations ({len(violations)})</h2>')
    out += [_finding(i, row, fixes) for i, row in enumerate(violations, 1)] or ["<p>None.</p>"]
    out.append(f"<h2>Other findings ({len(others)})</h2><details><summary>compliant and not applicable, "
               "by control</summary><table id=\"others\"><thead><tr><th>control</th><th>resource</th><th>type</th>"
               "<th>status</th></tr></thead><tbody>")
    out += [f"<tr><td>{_e(r.get('control'))}</td><td>{_e(r.get('resource_id'))}</td>"
            f"<td>{_e(r.get('resource_type'))}</td><td>{_e(STATUS_LABELS.get(r['status'], r['status']))}</td></tr>"
            for r in sorted(others, key=lambda r: (str(r.get("control")), str(r.get("resource_id"))))]
    out.append("</tbody></table></details></main></body></html>\n")
    return "\n".join(out)
