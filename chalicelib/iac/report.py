"""`netguard check` reports: the table, JSON with scan's finding contract (plus where the file declares the
resource), SARIF 2.1.0 for code scanning and JUnit XML for CI test reports."""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any, TextIO
from urllib.parse import quote

from ..model import NON_COMPLIANT, NOT_APPLICABLE, Control, Finding, digest
from .model import Declared
from .unknown import UNKNOWN

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVELS = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "informational": "note"}
# XML 1.0 cannot hold these characters at all (a template string can): they are replaced
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NOT_PRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def finding_rows(findings: Iterable[tuple[Finding, Declared, str]], region: str) -> list[dict[str, Any]]:
    """scan.finding_row for each finding (decision null: nothing is decided before deploy), and where the
    resource is declared: file, line (CloudFormation), its type as the file names it."""
    from ..scan import finding_row  # noqa: PLC0415 - the engine's report shape, loaded with the command

    rows = []
    for finding, decl, path in findings:
        row = finding_row(finding, None)
        row.update(region=region or None, account=None, arn=None, file=path, line=decl.line,
                   source_type=decl.source_type)
        rows.append(row)
    return rows


def build(rows: list[dict[str, Any]], files: list[str], notes: list[str], region: str) -> dict[str, Any]:
    from ..cli import build_report  # noqa: PLC0415

    report = build_report(rows, [], False, "", region)
    summary = report["summary"]
    summary.update(mode="pre-deploy", account=None, region=region or None, files=files, notes=notes)
    summary.pop("remediated", None)
    return report


def _printable(value: Any) -> str:
    return _NOT_PRINTABLE.sub("?", str(value))


def render_table(report: dict[str, Any], out: TextIO) -> None:
    rows = [r for r in report["findings"] if r["status"] == NON_COMPLIANT]
    headers = ("CONTROL", "SEVERITY", "RESOURCE", "TYPE", "WHERE")
    table = [headers] + [(r["control"], r["severity"], _printable(r["resource_id"]), r["resource_type"].rsplit(
        "::", 1)[-1], _printable(f"{r['file']}:{r['line']}" if r["line"] else r["file"])) for r in rows]
    widths = [max(len(str(line[i])) for line in table) for i in range(len(headers))]
    for line in table if rows else ():
        out.write("  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() + "\n")
    if not rows:
        out.write("no NON_COMPLIANT finding\n")
    unknown = [r for r in report["findings"] if r["status"] == NOT_APPLICABLE and str(
        (r["evidence"] or {}).get("reason", "")).startswith(UNKNOWN)]
    for r in unknown:
        out.write(f"\nnot evaluated: {r['control']} on {_printable(r['resource_id'])}: "
                  f"{_printable(r['evidence']['reason'])}")
    s = report["summary"]
    out.write(("\n" if unknown else "") + f"\n{s['resources']} resources, {s['findings']} findings: "
              + (", ".join(f"{k} {v}" for k, v in s["by_status"].items()) or "none") + "; checked before deploy\n")
    for note in s["notes"]:
        out.write(f"note: {_printable(note)}\n")


def sarif(report: dict[str, Any], controls: list[Control], help_uri: str | None) -> dict[str, Any]:
    """SARIF 2.1.0: one rule per control of the baseline, one result per NON_COMPLIANT finding, located at the
    resource's logical id where the file says (CloudFormation), else at the file with the address."""
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for control in controls:
        index[control.id] = len(rules)
        rule: dict[str, Any] = {
            "id": control.id, "name": re.sub(r"\W", "", control.title.title()) or control.id,
            "shortDescription": {"text": control.title},
            "fullDescription": {"text": control.guidance.strip() or control.title},
            "help": {"text": control.guidance.strip() or control.title},
            "defaultConfiguration": {"level": SARIF_LEVELS.get(control.severity, "warning")},
            "properties": {"severity": control.severity, "tags": ["security", "sagemaker", "network"],
                           "peers": list(control.peers), "resourceTypes": list(control.resource_types)}}
        if help_uri:
            rule["helpUri"] = f"{help_uri}#{control.id.lower().replace('.', '')}"
        rules.append(rule)
    results = []
    for row in report["findings"]:
        if row["status"] != NON_COMPLIANT or row["control"] not in index:
            continue
        location: dict[str, Any] = {"artifactLocation": {"uri": _uri(row["file"])}}
        if row["line"]:
            location["region"] = {"startLine": row["line"]}
        results.append({
            "ruleId": row["control"], "ruleIndex": index[row["control"]],
            "level": SARIF_LEVELS.get(row["severity"], "warning"), "kind": "fail",
            "message": {"text": f"{row['control']} {row['title']}: {row['resource_id']} "
                                f"({row['resource_type']}) {json.dumps(row['evidence'], sort_keys=True)}"},
            "locations": [{"physicalLocation": location, "logicalLocations": [
                {"fullyQualifiedName": row["resource_id"], "kind": "resource"}]}],
            "partialFingerprints": {"netguard/v1": digest([row["control"], row["file"], row["resource_id"]])},
            "properties": {"resourceType": row["resource_type"], "evidence": row["evidence"]}})
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "netguard", "semanticVersion": _version(), "rules": rules}},
        "artifacts": [{"location": {"uri": _uri(path)}} for path in report["summary"]["files"]],
        "results": results}]}


def _uri(path: str) -> str:
    """A file path as a URI reference (relative paths stay relative: code scanning reads them from the
    repository's root)."""
    return quote(path.replace("\\", "/"), safe="/:@-._~!$&'()*+,;=")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("netguard")
    except PackageNotFoundError:
        return "0.0.0"


def _xml(value: Any) -> str:
    return _NOT_XML.sub("\ufffd", str(value))


def junit(report: dict[str, Any]) -> str:
    """JUnit XML: a test suite per file, a test case per control and resource; NON_COMPLIANT is a failure,
    NOT_APPLICABLE skipped (with why)."""
    suites = ET.Element("testsuites", name="netguard check")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for path in report["summary"]["files"]:
        rows = [r for r in report["findings"] if r["file"] == path]
        failures = sum(1 for r in rows if r["status"] == NON_COMPLIANT)
        skipped = sum(1 for r in rows if r["status"] == NOT_APPLICABLE)
        suite = ET.SubElement(suites, "testsuite", name=_xml(path), tests=str(len(rows)), failures=str(failures),
                              errors="0", skipped=str(skipped))
        for r in rows:
            case = ET.SubElement(suite, "testcase", classname=_xml(f"{r['control']} {r['title']}"),
                                 name=_xml(f"{r['control']} {r['resource_id']}"), file=_xml(path))
            if r["line"]:
                case.set("line", str(r["line"]))
            if r["status"] == NON_COMPLIANT:
                message = f"{r['resource_id']} ({r['resource_type']}) breaks {r['control']}"
                failure = ET.SubElement(case, "failure", type=r["severity"], message=_xml(message))
                failure.text = _xml(json.dumps(r["evidence"], sort_keys=True, indent=2))
            elif r["status"] == NOT_APPLICABLE:
                ET.SubElement(case, "skipped", message=_xml((r["evidence"] or {}).get("reason", "not applicable")))
        totals.update(tests=totals["tests"] + len(rows), failures=totals["failures"] + failures,
                      skipped=totals["skipped"] + skipped)
    for key, value in totals.items():
        suites.set(key, str(value))
    suites.set("errors", "0")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
