"""The Security Hub channel (chalicelib/notify/securityhub.py): ASFF against botocore's securityhub model,
import batches, resolution only from a compliant read, failures recorded and re-sent, and what a ledger
writer cannot make it do.

moto 5.2 implements BatchImportFindings and GetFindings (no filters), not BatchUpdateFindings: that call is
answered by `moto_batch_update_findings` below, a botocore before-call handler that applies the workflow
status to moto's own findings the way Security Hub does (after botocore has validated the request against the
model). Partial failures (FailedFindings, UnprocessedFindings) are answers moto never gives: those tests use
botocore's Stubber, which also checks each request against the model.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import ANY, Stubber
from botocore.validate import ParamValidator

from chalicelib.errors import ConfigError
from chalicelib.ledger import MemoryLedger
from chalicelib.model import (
    COMPLIANT,
    NON_COMPLIANT,
    NOT_APPLICABLE,
    REMEDIATE,
    SUCCEEDED,
    Decision,
    Finding,
    Outcome,
    Resource,
    ResourceRef,
)
from chalicelib.notify import Notifier, resend_undelivered
from chalicelib.notify.securityhub import (
    ASFF_TYPES,
    DESCRIPTION_MAX,
    TITLE_MAX,
    asff_finding,
    finding_id,
    product_arn,
    wrap,
)
from chalicelib.policy import load_policy
from chalicelib.resources import REGISTRY
from chalicelib.settings import Settings
from conftest import invoke, ledger_items
from netguard_testkit import events
from netguard_testkit.moto_fidelity import attach_notebook_eni
from netguard_testkit.world import ingress_rule_ids, tcp

REGION = "us-east-1"
ACCOUNT = "123456789012"
NOW = datetime(2026, 12, 3, 10, 0, 0, 250000, tzinfo=UTC)
POLICY = load_policy()
MODEL = botocore.session.get_session().get_service_model("securityhub")


def control(cid: str) -> Any:
    return next(c for c in POLICY.controls if c.id == cid)


def sg_finding(status: str, group: str = "sg-0aaa1111", cid: str = "SG.1", account: str = ACCOUNT,
               evidence: dict[str, Any] | None = None) -> Finding:
    ref = ResourceRef("AWS::EC2::SecurityGroup", group, account, REGION)
    resource = Resource(ref, f"arn:aws:ec2:{REGION}:{account}:security-group/{group}", {},
                        read_at="2026-12-03T09:59:58.123456Z")
    return Finding(control(cid), resource, status, evidence if evidence is not None else {"open": ["sgr-1"]})


def valid_import(findings: list[dict[str, Any]]) -> None:
    report = ParamValidator().validate({"Findings": findings}, MODEL.operation_model("BatchImportFindings").input_shape)
    assert not report.has_errors(), report.generate_report()


class OneClient:
    """Clients that hand out one (stubbed) client, whatever the account and region."""

    def __init__(self, client: Any) -> None:
        self.c = client
        self.asked: list[tuple[str, str | None, str | None]] = []

    def client(self, service: str, region: str | None = None, account: str | None = None) -> Any:
        self.asked.append((service, region, account))
        return self.c


@pytest.fixture
def stubbed() -> Iterator[tuple[Stubber, OneClient]]:
    client = boto3.session.Session(region_name=REGION).client("securityhub")
    with Stubber(client) as stub:
        yield stub, OneClient(client)
        stub.assert_no_pending_responses()


def moto_batch_update_findings(session: Any, log: list[dict[str, Any]] | None = None) -> None:
    """Answer BatchUpdateFindings (not in moto 5.2) from moto's own findings: the workflow status is set on
    the findings that exist, the others are unprocessed, as Security Hub does."""
    from moto.securityhub.models import securityhub_backends

    def answer(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        body = json.loads(params["body"])
        if log is not None:
            log.append(body)
        processed, unprocessed = [], []
        for ident in body["FindingIdentifiers"]:
            account, region = ident["ProductArn"].split(":")[4], ident["ProductArn"].split(":")[3]
            found = [f for f in securityhub_backends[account][region].findings if f.id == ident["Id"]]
            for f in found:
                f.data["Workflow"] = body["Workflow"]
                f.data["Note"] = body["Note"]
            (processed if found else unprocessed).append(ident)
        return AWSResponse("https://securityhub", 200, {}, None), {
            "ProcessedFindings": processed,
            "UnprocessedFindings": [{"FindingIdentifier": i, "ErrorCode": "FindingNotFound",
                                     "ErrorMessage": "no such finding"} for i in unprocessed]}

    session.events.register("before-call.securityhub.BatchUpdateFindings", answer)


def hub_findings(client: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for page in client.get_paginator("get_findings").paginate():
        out.update({f["Id"]: f for f in page["Findings"]})
    return out


# ------------------------------------------------------------------------------------------ the format


def test_asff_has_every_required_field_and_passes_the_securityhub_model() -> None:
    outcome = Outcome(Decision(sg_finding(NON_COMPLIANT), REMEDIATE, "SG.1 is in enforce mode", "revoke_rules"),
                      SUCCEEDED, "revoked sgr-1", "act-1")
    failed = asff_finding(outcome.decision.finding, outcome, NOW, docs_url="https://example.com/netguard#sg1")
    passed = asff_finding(sg_finding(COMPLIANT), None, NOW, since="2026-12-01T08:00:00.000Z")
    na = asff_finding(sg_finding(NOT_APPLICABLE), None, NOW)
    valid_import([failed, passed, na])
    assert set(MODEL.shape_for("AwsSecurityFinding").required_members) <= set(failed)
    assert failed["SchemaVersion"] == "2018-10-08"
    assert failed["ProductArn"] == f"arn:aws:securityhub:{REGION}:{ACCOUNT}:product/{ACCOUNT}/default"
    assert failed["Id"] == f"netguard/{ACCOUNT}/{REGION}/SG.1/AWS::EC2::SecurityGroup/sg-0aaa1111"
    assert failed["GeneratorId"] == "SG.1" and failed["AwsAccountId"] == ACCOUNT
    assert failed["Types"] == ["Software and Configuration Checks/AWS Security Best Practices"]
    assert (failed["CreatedAt"], failed["UpdatedAt"], failed["LastObservedAt"]) == (
        "2026-12-03T10:00:00.250Z", "2026-12-03T10:00:00.250Z", "2026-12-03T09:59:58.123Z")
    assert failed["Severity"] == {"Label": "CRITICAL", "Original": "critical"}
    assert failed["Remediation"]["Recommendation"]["Url"] == "https://example.com/netguard#sg1"
    assert "must not accept traffic from the whole" in failed["Remediation"]["Recommendation"]["Text"]
    assert failed["Resources"] == [{"Type": "AwsEc2SecurityGroup", "Id": f"arn:aws:ec2:{REGION}:{ACCOUNT}:"
                                    "security-group/sg-0aaa1111", "Partition": "aws", "Region": REGION}]
    assert (failed["Compliance"], failed["Workflow"], failed["RecordState"]) == (
        {"Status": "FAILED"}, {"Status": "NEW"}, "ACTIVE")
    assert failed["ProductFields"]["netguard/decision"] == "remediate"
    assert failed["ProductFields"]["netguard/action"] == "revoke_rules"
    assert failed["ProductFields"]["netguard/result"] == "succeeded"
    assert failed["ProductFields"]["netguard/action_id"] == "act-1"
    assert (passed["Compliance"], passed["Workflow"]) == ({"Status": "PASSED"}, {"Status": "RESOLVED"})
    assert passed["Severity"] == {"Label": "INFORMATIONAL", "Original": "critical"}  # as Security Hub's controls
    assert passed["CreatedAt"] == passed["FirstObservedAt"] == "2026-12-01T08:00:00.000Z"
    assert (na["Compliance"], na["Workflow"]) == ({"Status": "NOT_AVAILABLE"}, {"Status": "NEW"})
    assert passed["Id"] == failed["Id"] == na["Id"]  # one finding, updated whatever the verdict


def test_resource_types_are_securityhubs_own_names_or_other() -> None:
    names = set(MODEL.shape_for("ResourceDetails").members)
    assert set(ASFF_TYPES.values()) <= names
    assert {t.type for t in REGISTRY} >= set(ASFF_TYPES)
    notebook = ResourceRef("AWS::SageMaker::NotebookInstance", "nb-1", ACCOUNT, REGION)
    job = ResourceRef("AWS::SageMaker::TrainingJob", "train-1", ACCOUNT, REGION)
    nb = asff_finding(Finding(control("NB.1"), Resource(notebook, "arn:aws:sagemaker:x", {}), NON_COMPLIANT, {}),
                      None, NOW)
    tj = asff_finding(Finding(control("JOB.1"), Resource(job, "arn:aws:sagemaker:y", {}), NON_COMPLIANT, {}),
                      None, NOW)
    assert nb["Resources"][0]["Type"] == "AwsSageMakerNotebookInstance"
    assert tj["Resources"][0]["Type"] == "Other"
    assert tj["Resources"][0]["Details"] == {"Other": {"netguard/resource_type": "AWS::SageMaker::TrainingJob",
                                                       "netguard/id": "train-1"}}
    assert asff_finding(Finding(control("NB.1"), Resource(ResourceRef(notebook.resource_type, "nb-1", ACCOUNT,
                        "cn-north-1"), "arn:aws-cn:x", {}), NON_COMPLIANT, {}), None, NOW)["ProductArn"] \
        .startswith("arn:aws-cn:securityhub:cn-north-1:")
    valid_import([nb, tj])


def test_hostile_names_and_huge_evidence_stay_within_asff_limits() -> None:
    hostile = "<script>alert(1)</script>" * 40
    finding = sg_finding(NON_COMPLIANT, group=f"sg-{'a' * 600}", evidence={"note": hostile, "big": "x" * 300_000})
    asff = asff_finding(finding, None, NOW)
    valid_import([asff])
    assert len(asff["Title"]) <= TITLE_MAX and len(asff["Description"]) <= DESCRIPTION_MAX
    assert len(asff["Id"]) <= 512 and asff["Id"] == finding_id(finding)  # still stable: a digest, not a cut
    assert finding_id(sg_finding(NON_COMPLIANT, group=f"sg-{'a' * 599}b")) != asff["Id"]
    assert len(json.dumps(asff)) < 240 * 1024  # Security Hub's limit per finding
    assert all(len(v) <= 2048 for v in asff["ProductFields"].values())


def test_settings_switch_the_channel_on_and_check_the_docs_url() -> None:
    assert Settings.from_env({}).security_hub is False
    assert Settings.from_env({"NETGUARD_SECURITY_HUB": "on"}).security_hub is True
    for bad in ({"NETGUARD_SECURITY_HUB": "yes please"},
                {"NETGUARD_SECURITY_HUB_DOCS_URL": "http://example.com/readme"},
                {"NETGUARD_SECURITY_HUB_DOCS_URL": "javascript:alert(1)"}):
        with pytest.raises(ConfigError, match="NETGUARD_SECURITY_HUB"):
            Settings.from_env(bad)


def test_off_by_default_nothing_is_sent(stubbed) -> None:
    stub, clients = stubbed
    notifier = Notifier(Settings(), clients, ledger=MemoryLedger())  # type: ignore[arg-type]
    assert notifier.send_findings([sg_finding(NON_COMPLIANT)], []) == {}
    assert clients.asked == []


# ------------------------------------------------------------------------------------- against moto


def test_findings_go_in_calls_of_100_per_account_and_region_over_the_moto_server(moto_server) -> None:
    """250 violations: three BatchImportFindings calls (100, 100, 50), all in Security Hub; seen compliant,
    the 250 are imported PASSED and resolved (BatchUpdateFindings in three calls of at most 100)."""
    session = boto3.session.Session(region_name=REGION)
    calls: list[int] = []
    session.events.register("before-call.securityhub.BatchImportFindings",
                            lambda params, **_: calls.append(len(json.loads(params["body"])["Findings"])))
    updates: list[dict[str, Any]] = []
    moto_batch_update_findings(session, updates)
    from chalicelib.aws import Clients

    clients = Clients(session)
    account = clients.client("sts", REGION).get_caller_identity()["Account"]
    ledger = MemoryLedger()
    notifier = Notifier(Settings(security_hub=True), clients, ledger=ledger)
    bad = [sg_finding(NON_COMPLIANT, group=f"sg-{i:08x}", account=account) for i in range(250)]
    assert notifier.send_findings(bad, []) == {"imported": 250, "resolved": 0, "failed": 0}
    assert calls == [100, 100, 50]
    seen = hub_findings(session.client("securityhub"))
    assert len(seen) == 250 and {f["Compliance"]["Status"] for f in seen.values()} == {"FAILED"}
    assert len(ledger.hub_open(account, REGION)) == 250

    calls.clear()
    good = [sg_finding(COMPLIANT, group=f"sg-{i:08x}", account=account) for i in range(250)]
    assert notifier.send_findings(good, []) == {"imported": 250, "resolved": 250, "failed": 0}
    assert calls == [100, 100, 50] and [len(u["FindingIdentifiers"]) for u in updates] == [100, 100, 50]
    seen = hub_findings(session.client("securityhub"))
    assert {(f["Compliance"]["Status"], f["Workflow"]["Status"]) for f in seen.values()} == {("PASSED", "RESOLVED")}
    assert ledger.hub_open(account, REGION) == {}
    calls.clear()
    assert notifier.send_findings(good, []) == {"imported": 0, "resolved": 0, "failed": 0}  # nothing open
    assert calls == []


@pytest.fixture
def moto_server(monkeypatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
    yield f"http://{host}:{port}"
    server.stop()


def test_an_event_imports_the_violation_it_fixed_and_the_next_sweep_resolves_it(stack, monkeypatch) -> None:
    """Through the Lambda handlers: SSH opened on a notebook's group is revoked by the event, and its finding
    stays FAILED (netguard fixed it, it has not seen it fixed); the next sweep reads the group compliant:
    PASSED, Workflow RESOLVED, the ledger's record closed."""
    aws, net = stack["aws"], stack["net"]
    monkeypatch.setenv("NETGUARD_SECURITY_HUB", "on")
    monkeypatch.setenv("NETGUARD_REGIONS", aws.region)
    moto_batch_update_findings(aws.clients._session)
    from chalicelib import handlers

    handlers.runtime.cache_clear()
    ec2 = aws.client("ec2")
    attach_notebook_eni(ec2, net.private_subnets[0], [net.sg_ssh_open], "nb-ssh")
    [open_rule] = [r for r in ingress_rule_ids(ec2, net.sg_ssh_open).values() if r["FromPort"] == 22]
    event = events.authorize_ingress(net.sg_ssh_open, [tcp(22, "0.0.0.0/0")], aws.account, aws.region,
                                     rule_set=[open_rule])
    result = invoke(stack, "on_api_call", event)
    assert {(d["control"], d["result"]) for d in result["decisions"]} == {("SG.1", "succeeded"), ("SG.2", "succeeded")}
    hub = aws.client("securityhub")
    ids = {c: f"netguard/{aws.account}/{aws.region}/{c}/AWS::EC2::SecurityGroup/{net.sg_ssh_open}"
           for c in ("SG.1", "SG.2")}
    seen = hub_findings(hub)
    for fid in ids.values():
        assert seen[fid]["Compliance"]["Status"] == "FAILED" and seen[fid]["Workflow"]["Status"] == "NEW"
        assert seen[fid]["ProductFields"]["netguard/result"] == "succeeded"
    assert {i["sk"] for i in ledger_items(stack, "netguard/") if i["pk"].startswith("hub#")} >= set(ids.values())

    invoke(stack, "sweep", {"version": "0", "id": "sweep-hub", "detail-type": "Scheduled Event",
                            "source": "aws.events", "account": aws.account, "time": "2026-12-03T06:00:00Z",
                            "region": aws.region, "resources": [], "detail": {}})
    seen = hub_findings(hub)
    for fid in ids.values():
        assert (seen[fid]["Compliance"]["Status"], seen[fid]["Workflow"]["Status"]) == ("PASSED", "RESOLVED")
        assert seen[fid]["Severity"]["Label"] == "INFORMATIONAL"
    still_open = {i["sk"] for i in ledger_items(stack, "netguard/") if i["pk"].startswith("hub#")}
    assert not still_open & set(ids.values())
    # what the sweep found failing elsewhere in the region is imported FAILED, and only that stays open
    assert still_open == {fid for fid, f in seen.items() if f["Compliance"]["Status"] == "FAILED"}


# ------------------------------------------------------------------------ failures and re-sends (Stubber)


def test_a_finding_security_hub_refuses_is_recorded_and_the_next_sweep_sends_it(stubbed) -> None:
    stub, clients = stubbed
    ledger = MemoryLedger()
    notifier = Notifier(Settings(security_hub=True), clients, ledger=ledger)  # type: ignore[arg-type]
    lost: list[str] = []
    notifier.on_undelivered = lost.append
    one, two = sg_finding(NON_COMPLIANT, "sg-00000001"), sg_finding(NON_COMPLIANT, "sg-00000002")
    stub.add_response("batch_import_findings", {
        "FailedCount": 1, "SuccessCount": 1,
        "FailedFindings": [{"Id": finding_id(two), "ErrorCode": "InvalidInput", "ErrorMessage": "try later"}]},
        {"Findings": ANY})
    assert notifier.send_findings([one, two], []) == {"imported": 1, "resolved": 0, "failed": 1}
    assert lost == ["securityhub"]  # counted (metric `undelivered`) like any channel's failure
    [kept] = list(ledger.undelivered())
    assert kept["channel"] == "securityhub" and kept["alert"]["finding"]["Id"] == finding_id(two)
    assert set(ledger.hub_open(ACCOUNT, REGION)) == {finding_id(one), finding_id(two)}  # both decided FAILED

    stub.add_response("batch_import_findings", {"FailedCount": 0, "SuccessCount": 1},
                      {"Findings": [kept["alert"]["finding"]]})
    assert resend_undelivered(ledger, notifier)["resent"] == 1
    assert list(ledger.undelivered()) == []


def test_a_whole_call_failing_records_every_finding_of_it(stubbed) -> None:
    stub, clients = stubbed
    ledger = MemoryLedger()
    notifier = Notifier(Settings(security_hub=True), clients, ledger=ledger)  # type: ignore[arg-type]
    stub.add_client_error("batch_import_findings", "InvalidAccessException",
                          "Account 123456789012 is not subscribed to AWS Security Hub")
    assert notifier.send_findings([sg_finding(NON_COMPLIANT, "sg-1"), sg_finding(NON_COMPLIANT, "sg-2")], []) == {
        "imported": 0, "resolved": 0, "failed": 2}
    errors = {i["alert"]["finding"]["Id"]: i for i in ledger.undelivered()}
    assert len(errors) == 2


def test_an_unprocessed_resolution_stays_open_and_is_sent_by_the_next_compliant_read(stubbed) -> None:
    stub, clients = stubbed
    ledger = MemoryLedger()
    ledger.hub_mark(ACCOUNT, REGION, finding_id(sg_finding(COMPLIANT)), "2026-12-01T08:00:00.000Z")
    notifier = Notifier(Settings(security_hub=True), clients, ledger=ledger)  # type: ignore[arg-type]
    ident = {"Id": finding_id(sg_finding(COMPLIANT)), "ProductArn": product_arn(ACCOUNT, REGION)}
    stub.add_response("batch_import_findings", {"FailedCount": 0, "SuccessCount": 1}, {"Findings": ANY})
    stub.add_response("batch_update_findings", {"ProcessedFindings": [], "UnprocessedFindings": [
        {"FindingIdentifier": ident, "ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}]},
        {"FindingIdentifiers": [ident], "Workflow": {"Status": "RESOLVED"}, "Note": ANY})
    assert notifier.send_findings([sg_finding(COMPLIANT)], []) == {"imported": 1, "resolved": 0, "failed": 1}
    assert set(ledger.hub_open(ACCOUNT, REGION)) == {ident["Id"]}
    # a resolution is never re-sent from the ledger (dropped there); the next compliant read sends it again
    assert resend_undelivered(ledger, notifier) == {"resent": 0, "still_undelivered": 0, "left_for_next_sweep": 0,
                                                    "dropped": 1}
    stub.add_response("batch_import_findings", {"FailedCount": 0, "SuccessCount": 1}, {"Findings": ANY})
    stub.add_response("batch_update_findings", {"ProcessedFindings": [ident], "UnprocessedFindings": []},
                      {"FindingIdentifiers": [ident], "Workflow": {"Status": "RESOLVED"}, "Note": ANY})
    assert notifier.send_findings([sg_finding(COMPLIANT)], []) == {"imported": 1, "resolved": 1, "failed": 0}
    assert ledger.hub_open(ACCOUNT, REGION) == {}


# -------------------------------------------------------------------------------------------- trust


def test_no_resolution_without_a_compliant_read_whatever_the_ledger_says(stubbed) -> None:
    """A ledger writer can plant records, not verdicts: a planted open record for a failing resource gets
    FAILED; a compliant resource with no record gets nothing (nothing to resolve); planted undelivered
    findings are re-sent only if FAILED, of an allowed account, under its product, and still open."""
    stub, clients = stubbed
    ledger = MemoryLedger()
    settings = Settings(security_hub=True, home_account=ACCOUNT)
    notifier = Notifier(settings, clients, ledger=ledger)  # type: ignore[arg-type]
    failing = sg_finding(NON_COMPLIANT, "sg-bad")
    ledger.hub_mark(ACCOUNT, REGION, finding_id(failing), "2026-12-01T08:00:00.000Z")
    stub.add_response("batch_import_findings", {"FailedCount": 0, "SuccessCount": 1}, {"Findings": ANY})
    assert notifier.send_findings([failing, sg_finding(COMPLIANT, "sg-never-failed")], []) == {
        "imported": 1, "resolved": 0, "failed": 0}  # no BatchUpdateFindings: the stub would raise

    forged_pass = wrap(asff_finding(sg_finding(COMPLIANT, "sg-bad"), None, NOW))
    foreign = wrap(asff_finding(sg_finding(NON_COMPLIANT, "sg-x", account="999999999999"), None, NOW))
    other_product = wrap({**asff_finding(failing, None, NOW), "ProductArn": "arn:aws:securityhub:us-east-1::"
                          "product/aws/securityhub"})
    stale = wrap(asff_finding(sg_finding(NON_COMPLIANT, "sg-fixed-since"), None, NOW))  # no open record
    not_ours = {"schema": "netguard.alert/v1", "alert_id": "x"}
    for planted in (forged_pass, foreign, other_product, stale, not_ours):
        ledger.record_undelivered(planted, "securityhub", "planted")
    counts = resend_undelivered(ledger, notifier)
    assert counts == {"resent": 0, "still_undelivered": 0, "left_for_next_sweep": 0, "dropped": 5}
    assert list(ledger.undelivered()) == []  # no call was made (the stub has no response queued)


def test_the_channel_sends_each_account_to_its_own_account(stubbed) -> None:
    """BatchImportFindings with the default product ARN must come from the finding's account: each account's
    findings go through that account's client (the member role), in the resource's region."""
    stub, clients = stubbed
    notifier = Notifier(Settings(security_hub=True), clients, ledger=MemoryLedger())  # type: ignore[arg-type]
    for _ in range(2):
        stub.add_response("batch_import_findings", {"FailedCount": 0, "SuccessCount": 1}, {"Findings": ANY})
    notifier.send_findings([sg_finding(NON_COMPLIANT, "sg-1", account="111111111111"),
                            sg_finding(NON_COMPLIANT, "sg-2", account="222222222222")], [])
    assert clients.asked == [("securityhub", REGION, "111111111111"), ("securityhub", REGION, "222222222222")]


def test_a_duplicate_is_not_imported_again_over_what_the_run_that_handled_it_sent(stubbed) -> None:
    """A second event or a sweep within NETGUARD_DEDUP_HOURS sees the violation as a duplicate: the finding
    the handling run imported (with its action id) stays as it is; one never imported is imported."""
    from chalicelib.model import DUPLICATE

    stub, clients = stubbed
    sent: list[str] = []
    clients.c.meta.events.register("provide-client-params.securityhub.BatchImportFindings",
                                   lambda params, **_: sent.extend(f["Id"] for f in params["Findings"]))
    ledger = MemoryLedger()
    notifier = Notifier(Settings(security_hub=True), clients, ledger=ledger)  # type: ignore[arg-type]
    handled, new = sg_finding(NON_COMPLIANT, "sg-handled"), sg_finding(NON_COMPLIANT, "sg-new")
    ledger.hub_mark(ACCOUNT, REGION, finding_id(handled), "2026-12-01T08:00:00.000Z")
    duplicates = [Outcome(Decision(f, REMEDIATE, "enforce", "revoke_rules"), DUPLICATE, "already handled")
                  for f in (handled, new)]
    stub.add_response("batch_import_findings", {"FailedCount": 0, "SuccessCount": 1}, {"Findings": ANY})
    assert notifier.send_findings([handled, new], duplicates) == {"imported": 1, "resolved": 0, "failed": 0}
    assert sent == [finding_id(new)]
