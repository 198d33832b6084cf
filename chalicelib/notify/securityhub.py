"""Security Hub: netguard's findings in ASFF, an optional channel (NETGUARD_SECURITY_HUB=on).

One ASFF finding per account, region, control and resource, with a stable Id, so importing it again updates
it. What one pipeline run sends, per account and region, in BatchImportFindings calls of at most 100:

* every NON_COMPLIANT finding it evaluated: Compliance FAILED, Workflow NEW. A violation netguard fixed stays
  FAILED (with what netguard did in ProductFields) until netguard reads the resource again and sees it
  compliant: fixing is not seeing. Not a duplicate of one already imported (the run that handled it sent it,
  with what it did, which a re-import would replace);
* a COMPLIANT finding only where netguard imported that finding FAILED and has not resolved it yet (the
  ledger's `hub#` records): Compliance PASSED (Severity INFORMATIONAL, as Security Hub's own controls do),
  then Workflow RESOLVED through BatchUpdateFindings, since BatchImportFindings does not change an existing
  finding's Workflow. The ledger only says which compliant findings are worth sending: a finding is resolved
  only from a resource this run read and found compliant, whatever the ledger holds;
* a NOT_APPLICABLE finding where one is open: Compliance NOT_AVAILABLE, left open.

BatchImportFindings must be called from the finding's own account (the default product ARN), so each
account's findings go through that account's client (the member role) into the resource's region.
Failures (a call that fails, a finding in FailedFindings, one BatchUpdateFindings did not process) are
recorded like any channel's (`alert#undelivered`, metric `undelivered`). A sweep re-sends a FAILED finding only
while the ledger still has it open (a later run may have resolved it), and never re-sends a resolution:
the next run that sees the resource compliant sends it again, since its record stays open until then.
"""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ..aws import AWS_ERRORS, Clients, error_code, error_message, partition
from ..model import COMPLIANT, DUPLICATE, NON_COMPLIANT, Finding, Outcome, digest

ASFF_SCHEMA_VERSION = "2018-10-08"
HUB_SCHEMA = "netguard.securityhub/v1"  # an ASFF finding a channel did not take, as the ledger keeps it
IMPORT_BATCH = 100  # BatchImportFindings: at most 100 findings per call
UPDATE_BATCH = 100  # BatchUpdateFindings: at most 100 finding identifiers per call
# Length limits botocore's model does not carry: Title 256 and Description 1,024 are AWS's (Security Hub API
# reference, AwsSecurityFinding; the ASFF mapping guidelines); the others are not confirmed against AWS.
ID_MAX, TITLE_MAX, DESCRIPTION_MAX, RECOMMENDATION_MAX, NOTE_MAX, FIELD_VALUE_MAX = 512, 256, 1024, 512, 512, 2048
FINDING_TYPE = "Software and Configuration Checks/AWS Security Best Practices"
# CloudFormation type -> ASFF resource type (ResourceDetails' names in the securityhub model); others: "Other"
ASFF_TYPES = {
    "AWS::EC2::SecurityGroup": "AwsEc2SecurityGroup",
    "AWS::EC2::VPC": "AwsEc2Vpc",
    "AWS::EC2::Subnet": "AwsEc2Subnet",
    "AWS::SageMaker::NotebookInstance": "AwsSageMakerNotebookInstance",
}
PASSED, FAILED, NOT_AVAILABLE = "PASSED", "FAILED", "NOT_AVAILABLE"
_READ_AT = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z")

log = logging.getLogger("netguard.notify")


def product_arn(account: str, region: str) -> str:
    """The default product ARN: the one a custom integration imports under, in the finding's own account."""
    return f"arn:{partition(region)}:securityhub:{region}:{account}:product/{account}/default"


def finding_id(finding: Finding) -> str:
    """Stable per account, region, control and resource: importing it again updates the same finding."""
    ref = finding.resource.ref
    raw = f"netguard/{ref.account}/{ref.region}/{finding.control.id}/{ref.resource_type}/{ref.resource_id}"
    return raw if len(raw) <= ID_MAX else f"{raw[:ID_MAX - 33]}/{digest(raw, 32)}"


def rfc3339(moment: datetime) -> str:
    moment = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _read_time(text: str, default: str) -> str:
    """A resource's read_at ("%Y-%m-%dT%H:%M:%S.%fZ") as RFC 3339 with milliseconds, or `default`
    (a pattern, not strptime: it was half the cost of building a finding)."""
    found = _READ_AT.fullmatch(text)
    return f"{found[1]}.{(found[2] or '')[:3].ljust(3, '0')}Z" if found else default


def _clip(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def compliance_status(finding: Finding) -> str:
    return {COMPLIANT: PASSED, NON_COMPLIANT: FAILED}.get(finding.status, NOT_AVAILABLE)


def asff_finding(finding: Finding, outcome: Outcome | None, now: datetime, since: str | None = None,
                 docs_url: str | None = None) -> dict[str, Any]:
    """One ASFF finding (every required attribute; names as in botocore's securityhub model). Pure."""
    control, resource, ref = finding.control, finding.resource, finding.resource.ref
    status = compliance_status(finding)
    updated = rfc3339(now)
    severity = {"Label": "INFORMATIONAL" if status == PASSED else control.severity.upper(),
                "Original": control.severity}
    evidence = json.dumps(finding.evidence, sort_keys=True, ensure_ascii=False, default=str)
    verdict = {PASSED: "compliant", FAILED: "not compliant"}.get(status, "not applicable")
    description = f"{ref.resource_type} {ref.resource_id} ({ref.account}, {ref.region}) is {verdict}."
    fields = {"netguard/control": control.id, "netguard/verdict": finding.status,
              "netguard/resource_type": ref.resource_type, "netguard/read_at": resource.read_at}
    if outcome is not None:
        decision = outcome.decision
        description += f" netguard: {decision.kind}, {outcome.result}: {outcome.detail or decision.reason}."
        fields.update({"netguard/decision": decision.kind, "netguard/action": decision.action or "",
                       "netguard/result": outcome.result, "netguard/detail": outcome.detail or decision.reason,
                       "netguard/action_id": outcome.action_id or ""})
    recommendation: dict[str, str] = {"Text": _clip(control.guidance or control.title, RECOMMENDATION_MAX)}
    if docs_url:
        recommendation["Url"] = docs_url
    asff_type = ASFF_TYPES.get(ref.resource_type, "Other")
    target: dict[str, Any] = {"Type": asff_type, "Id": resource.arn, "Partition": partition(ref.region),
                              "Region": ref.region}
    if asff_type == "Other":
        target["Details"] = {"Other": {"netguard/resource_type": ref.resource_type, "netguard/id": ref.resource_id}}
    return {
        "SchemaVersion": ASFF_SCHEMA_VERSION,
        "Id": finding_id(finding),
        "ProductArn": product_arn(ref.account, ref.region),
        "ProductName": "netguard",
        "GeneratorId": control.id,
        "AwsAccountId": ref.account,
        "Region": ref.region,
        "Types": [FINDING_TYPE],
        "FirstObservedAt": since or updated,
        "LastObservedAt": _read_time(resource.read_at, updated),
        "CreatedAt": since or updated,
        "UpdatedAt": updated,
        "Severity": severity,
        "Title": _clip(f"{control.id} {control.title}", TITLE_MAX),
        "Description": _clip(f"{description} Evidence: {evidence}", DESCRIPTION_MAX),
        "Remediation": {"Recommendation": recommendation},
        "ProductFields": {k: _clip(v, FIELD_VALUE_MAX) for k, v in fields.items() if str(v).strip()},
        "Resources": [target],
        "Compliance": {"Status": status},
        "Workflow": {"Status": "RESOLVED" if status == PASSED else "NEW"},
        "RecordState": "ACTIVE",
        "FindingProviderFields": {"Severity": severity, "Types": [FINDING_TYPE]},
    }


def wrap(asff: Mapping[str, Any]) -> dict[str, Any]:
    """An ASFF finding as the ledger keeps an undelivered one (`alert_id` names it in the ledger's key)."""
    return {"schema": HUB_SCHEMA, "alert_id": digest([asff["Id"], asff["UpdatedAt"]]), "finding": dict(asff)}


class SecurityHubChannel:
    """Sends one run's findings; `undelivered(wrapped finding, error)` records what Security Hub did not take."""

    def __init__(self, clients: Clients, ledger: Any, undelivered: Callable[[Mapping[str, Any], str], None],
                 docs_url: str | None = None, now: Callable[[], datetime] | None = None) -> None:
        self.clients, self.ledger, self.undelivered = clients, ledger, undelivered
        self.docs_url = docs_url
        self.now = now or (lambda: datetime.now(UTC))

    def send(self, findings: Sequence[Finding], outcomes: Sequence[Outcome]) -> dict[str, int]:
        """{"imported", "resolved", "failed"}: counts of this run's findings."""
        told = {id(o.decision.finding): o for o in outcomes}
        groups: dict[tuple[str, str], list[Finding]] = {}
        for finding in findings:
            groups.setdefault((finding.resource.ref.account, finding.resource.ref.region), []).append(finding)
        counts = {"imported": 0, "resolved": 0, "failed": 0}
        for (account, region), group in sorted(groups.items()):
            for key, value in self._send_region(account, region, group, told).items():
                counts[key] += value
        return counts

    def _open(self, account: str, region: str) -> dict[str, str] | None:
        if self.ledger is None:
            return None
        try:
            return dict(self.ledger.hub_open(account, region))
        except AWS_ERRORS as exc:
            log.warning("Security Hub: open findings of %s/%s not read (%s): sending violations only",
                        account, region, error_code(exc))
            return None

    def _send_region(self, account: str, region: str, findings: list[Finding],
                     told: Mapping[int, Outcome]) -> dict[str, int]:
        now = self.now()
        opened = self._open(account, region)
        batch: list[dict[str, Any]] = []
        for finding in findings:
            fid, outcome = finding_id(finding), told.get(id(finding))
            if finding.status != NON_COMPLIANT and (opened is None or fid not in opened):
                continue  # only a finding imported FAILED needs its verdict sent again
            if outcome is not None and outcome.result == DUPLICATE and opened is not None and fid in opened:
                continue  # the run that handled it imported it, with what it did (a re-import would drop that)
            since = (opened or {}).get(fid) or None
            batch.append(asff_finding(finding, outcome, now, since, self.docs_url))
        if not batch:
            return {"imported": 0, "resolved": 0, "failed": 0}
        failed = self._import(account, region, batch)
        new_failures = [f for f in batch if f["Compliance"]["Status"] == FAILED and opened is not None
                        and f["Id"] not in opened]
        for asff in new_failures:  # decided FAILED, delivered or not: a later compliant read resolves it
            self._mark(account, region, asff["Id"], asff["CreatedAt"])
        passed = [f for f in batch if f["Compliance"]["Status"] == PASSED and f["Id"] not in failed]
        resolved = self._resolve(account, region, passed, now) if passed else set()
        for fid in resolved:
            self._close(account, region, fid)
        unresolved = len(passed) - len(resolved)
        return {"imported": len(batch) - len(failed), "resolved": len(resolved), "failed": len(failed) + unresolved}

    def _import(self, account: str, region: str, batch: list[dict[str, Any]]) -> set[str]:
        """BatchImportFindings in calls of IMPORT_BATCH; the ids Security Hub did not take (each recorded)."""
        client = self.clients.client("securityhub", region, account)
        failed: set[str] = set()
        for start in range(0, len(batch), IMPORT_BATCH):
            chunk = batch[start:start + IMPORT_BATCH]
            try:
                answer = client.batch_import_findings(Findings=chunk)
            except AWS_ERRORS as exc:
                errors = dict.fromkeys((f["Id"] for f in chunk),
                                       f"BatchImportFindings failed: {error_code(exc)}: {error_message(exc)}")
            else:
                errors = {str(f.get("Id")): f"BatchImportFindings: {f.get('ErrorCode')}: {f.get('ErrorMessage')}"
                          for f in answer.get("FailedFindings") or []}
            for asff in chunk:
                if asff["Id"] in errors:
                    failed.add(asff["Id"])
                    self.undelivered(wrap(asff), errors[asff["Id"]])
        return failed

    def _resolve(self, account: str, region: str, passed: list[dict[str, Any]], now: datetime) -> set[str]:
        """Workflow RESOLVED for findings just imported PASSED: the ids BatchUpdateFindings processed."""
        client = self.clients.client("securityhub", region, account)
        done: set[str] = set()
        for start in range(0, len(passed), UPDATE_BATCH):
            chunk = passed[start:start + UPDATE_BATCH]
            note = _clip(f"netguard read these resources at {rfc3339(now)} and found them compliant", NOTE_MAX)
            try:
                answer = client.batch_update_findings(
                    FindingIdentifiers=[{"Id": f["Id"], "ProductArn": f["ProductArn"]} for f in chunk],
                    Workflow={"Status": "RESOLVED"}, Note={"Text": note, "UpdatedBy": "netguard"})
            except AWS_ERRORS as exc:
                errors = dict.fromkeys((f["Id"] for f in chunk),
                                       f"BatchUpdateFindings failed: {error_code(exc)}: {error_message(exc)}")
            else:
                errors = {str((u.get("FindingIdentifier") or {}).get("Id")):
                          f"BatchUpdateFindings: {u.get('ErrorCode')}: {u.get('ErrorMessage')}"
                          for u in answer.get("UnprocessedFindings") or []}
            for asff in chunk:
                if asff["Id"] in errors:
                    self.undelivered(wrap(asff), errors[asff["Id"]])
                else:
                    done.add(asff["Id"])
        return done

    def _mark(self, account: str, region: str, fid: str, since: str) -> None:
        try:
            self.ledger.hub_mark(account, region, fid, since)
        except AWS_ERRORS as exc:  # the finding stays FAILED in Security Hub until this is recorded
            log.error("Security Hub: open finding %s not recorded (%s): it is not resolved automatically",
                      fid, error_code(exc))

    def _close(self, account: str, region: str, fid: str) -> None:
        try:
            self.ledger.hub_close(account, region, fid)
        except AWS_ERRORS as exc:  # sent PASSED again by the next run that sees it compliant: harmless
            log.warning("Security Hub: resolved finding %s still recorded open (%s)", fid, error_code(exc))

    def resend(self, wrapped: Mapping[str, Any], account_allowed: Callable[[str], bool]) -> str:
        """A finding Security Hub did not take earlier: "delivered", "failed: ..." or "dropped: ..." (nothing
        to send: superseded, a resolution, or not netguard's). Whoever can write the ledger could plant one:
        only a FAILED or NOT_AVAILABLE finding of an allowed account, under that account's default product,
        that the ledger still has open, is sent."""
        asff = wrapped.get("finding") if wrapped.get("schema") == HUB_SCHEMA else None
        if not isinstance(asff, Mapping):
            return "dropped: not a Security Hub finding"
        account, region = str(asff.get("AwsAccountId", "")), str(asff.get("Region", ""))
        status = (asff.get("Compliance") or {}).get("Status")
        if status == PASSED:
            return "dropped: a resolution is sent only by a run that sees the resource compliant"
        if status not in (FAILED, NOT_AVAILABLE) or not account_allowed(account) or not region \
                or asff.get("ProductArn") != product_arn(account, region):
            return f"dropped: not a finding netguard sends (account {account!r}, status {status!r})"
        opened = self._open(account, region)
        if opened is None:
            return "failed: the ledger's open findings could not be read"
        if asff.get("Id") not in opened:
            return "dropped: superseded (resolved since)"
        try:
            answer = self.clients.client("securityhub", region, account).batch_import_findings(Findings=[dict(asff)])
        except AWS_ERRORS as exc:
            return f"failed: BatchImportFindings failed: {error_code(exc)}: {error_message(exc)}"
        for failure in answer.get("FailedFindings") or []:
            return f"failed: BatchImportFindings: {failure.get('ErrorCode')}: {failure.get('ErrorMessage')}"
        return "delivered"
