"""Hostile but valid input: what someone inside an account could do to make netguard look away, act
where it should not, or undo its work (README "Threat model"). Each test is one way in, and what stops it.

`make reliability` runs this file whole and prints a line per case.
"""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from chalicelib import handlers, ledger as ledger_module
from conftest import TABLE, alerts, invoke, ledger_items
from netguard_demo import events


def report(case: str, outcome: str) -> None:
    """One line per case for `make reliability` (pytest -s)."""
    print(f"threat model: {case}: {outcome}")


def scheduled_event(account: str, region: str) -> dict[str, Any]:
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": account, "time": "2026-12-03T06:00:00Z", "region": region,
            "resources": [f"arn:aws:events:{region}:{account}:rule/netguard-e2e-sweep"], "detail": {}}


def dns_support(ec2: Any, vpc_id: str) -> bool:
    return ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsSupport")["EnableDnsSupport"]["Value"]


def turn_dns_off(aws: Any, vpc_id: str) -> dict[str, Any]:
    """Someone turns DNS support off: the call, and the event CloudTrail sends for it."""
    aws.client("ec2").modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": False})
    return events.api_call("ModifyVpcAttribute", "aws.ec2", {"vpcId": vpc_id, "enableDnsSupport": {"value": False}},
                           {"_return": True}, aws.account, aws.region)


def vpc_alerts(stack, control: str) -> list[dict[str, Any]]:
    return [a["message"] for a in alerts(stack) if a["message"].get("control", {}).get("id") == control]


# ------------------------------------------------------------------ 1. a violation repeated after its fix


def test_a_violation_repeated_after_its_fix_is_fixed_and_alerted_every_time(stack) -> None:
    """DNS support off, fixed; off again, fixed again (not a 'duplicate'); off a third time with no event
    at all: the next sweep fixes it. Each time an alert and a recorded action."""
    aws, net = stack["aws"], stack["net"]
    ec2 = aws.client("ec2")
    results = []
    for _ in range(2):
        result = invoke(stack, "on_api_call", turn_dns_off(aws, net.vpc_id))
        results.append({d["result"] for d in result["decisions"] if d["control"] == "VPC.1"})
        assert dns_support(ec2, net.vpc_id) is True
        assert len(vpc_alerts(stack, "VPC.1")) == 1
    ec2.modify_vpc_attribute(VpcId=net.vpc_id, EnableDnsSupport={"Value": False})  # no event this time
    invoke(stack, "sweep", scheduled_event(aws.account, aws.region))
    assert dns_support(ec2, net.vpc_id) is True
    assert len(vpc_alerts(stack, "VPC.1")) == 1
    assert results == [{"succeeded"}, {"succeeded"}]
    actions = [i for i in ledger_items(stack, "action") if i["action"] == "enable_vpc_dns"]
    assert len(actions) == 3 and {i["result"] for i in actions} == {"succeeded"}
    report("DNS support turned off three times", "fixed and alerted 3 times (2 events, 1 sweep)")


def test_the_same_violation_seen_twice_before_its_fix_is_still_acted_on_once(stack, monkeypatch) -> None:
    """The other side of the rule above: an invocation that read the state before the fix was settled
    sees the violation, but it is a duplicate, not a violation that came back."""
    from chalicelib.collect import Lookups

    aws, net = stack["aws"], stack["net"]
    read_before_fix = ledger_module._iso(ledger_module.utcnow() - dt.timedelta(seconds=1))
    invoke(stack, "on_api_call", turn_dns_off(aws, net.vpc_id))
    original = Lookups.__init__

    def read_earlier(self, *args, **kwargs):  # this invocation's reads started before the first settled
        original(self, *args, **kwargs)
        self.created_at = read_before_fix

    monkeypatch.setattr(Lookups, "__init__", read_earlier)
    again = invoke(stack, "on_api_call", turn_dns_off(aws, net.vpc_id))
    assert {d["result"] for d in again["decisions"] if d["control"] == "VPC.1"} == {"duplicate"}
    assert dns_support(aws.client("ec2"), net.vpc_id) is False  # left for the next event or sweep


def test_flow_logs_deleted_twice_are_recreated_twice(stack) -> None:
    """The flow log netguard creates is indexed as the VPC's: deleting it too brings the VPC back."""
    aws, net = stack["aws"], stack["net"]
    ec2 = aws.client("ec2")

    def delete_all() -> dict[str, Any]:
        ids = [f["FlowLogId"] for f in ec2.describe_flow_logs(
            Filters=[{"Name": "resource-id", "Values": [net.vpc_id]}])["FlowLogs"]]
        ec2.delete_flow_logs(FlowLogIds=ids)
        return events.api_call("DeleteFlowLogs", "aws.ec2",
                               {"DeleteFlowLogsRequest": {"FlowLogId": {"content": ids[0], "tag": 1}}},
                               {"DeleteFlowLogsResponse": {"unsuccessful": ""}}, aws.account, aws.region)

    invoke(stack, "on_api_call", events.api_call(  # netguard reads the VPC once: its flow log is indexed
        "ModifyVpcAttribute", "aws.ec2", {"vpcId": net.vpc_id, "enableDnsHostnames": {"value": True}},
        {"_return": True}, aws.account, aws.region))
    created = []
    for _ in range(2):
        result = invoke(stack, "on_api_call", delete_all())
        assert {d["result"] for d in result["decisions"] if d["control"] == "VPC.3"} == {"succeeded"}
        logs = ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [net.vpc_id]}])["FlowLogs"]
        assert [f["TrafficType"] for f in logs] == ["ALL"]
        created.append(logs[0]["FlowLogId"])
    assert len(set(created)) == 2 and len(vpc_alerts(stack, "VPC.3")) == 2
    report("flow logs deleted twice", "recreated and alerted twice")


def test_an_expired_claim_is_taken_again_before_ttl_deletes_it(stack, monkeypatch) -> None:
    """DynamoDB deletes expired items within a day or two: the claim's own expiry is in the condition."""
    aws, net = stack["aws"], stack["net"]
    monkeypatch.setenv("NETGUARD_CONTROL_MODES", "VPC.1=alert,VPC.2=alert")
    handlers.runtime.cache_clear()
    first = invoke(stack, "on_api_call", turn_dns_off(aws, net.vpc_id))
    assert {d["result"] for d in first["decisions"] if d["control"] == "VPC.1"} == {"no-action"}
    assert len(vpc_alerts(stack, "VPC.1")) == 1
    later = ledger_module.utcnow() + dt.timedelta(hours=25)  # past NETGUARD_DEDUP_HOURS, item still there
    monkeypatch.setattr(ledger_module, "utcnow", lambda: later)
    ddb = aws.client("dynamodb")
    claims = [i for i in ledger_items(stack, "claim#VPC.1")]
    assert claims and all(int(c["expires_at"]) < int(later.timestamp()) for c in claims)
    assert ddb.scan(TableName=TABLE)["Count"] > 0
    again = invoke(stack, "on_api_call", events.api_call(
        "ModifyVpcAttribute", "aws.ec2", {"vpcId": net.vpc_id, "enableDnsSupport": {"value": False}},
        {"_return": True}, aws.account, aws.region))
    assert {d["result"] for d in again["decisions"] if d["control"] == "VPC.1"} == {"no-action"}
    assert len(vpc_alerts(stack, "VPC.1")) == 1

# ------------------------------------------------------------------------ 2. a role named like ours


@pytest.mark.parametrize("role, session", [
    ("netguard-e2e-attacker", "netguard-e2e-on_api_call"),  # the old prefix rule took any netguard-<stage>-*
    ("netguard-e2e", "x"),  # the chalice-deploy name, while the stack says which roles are ours
    ("netguard-member", "netguard"),  # the member role's name and session, in the home account
])
def test_a_change_by_a_role_named_like_netguards_is_evaluated_and_remediated(stack, monkeypatch, role,
                                                                           session) -> None:
    from netguard_demo.moto_fidelity import attach_notebook_eni
    from netguard_demo.world import OPEN_SSH

    aws, net = stack["aws"], stack["net"]
    attach_notebook_eni(aws.client("ec2"), net.private_subnets[0], [net.sg_ssh_open], "nb")
    monkeypatch.setenv("NETGUARD_OWN_ROLE_ARNS", f"arn:aws:iam::{aws.account}:role/netguard-e2e-DefaultRole-1A2B")
    monkeypatch.setenv("NETGUARD_MEMBER_ROLE_NAME", "netguard-member")
    handlers.runtime.cache_clear()
    principal = f"arn:aws:sts::{aws.account}:assumed-role/{role}/{session}"
    result = invoke(stack, "on_api_call", events.authorize_ingress(net.sg_ssh_open, OPEN_SSH, aws.account,
                                                                   aws.region, principal=principal))
    assert "skipped" not in result, result
    assert {d["result"] for d in result["decisions"] if d["control"] == "SG.1"} == {"succeeded"}
    assert "ec2:RevokeSecurityGroupIngress" in aws.calls.writes()
    report(f"SSH opened by {role}/{session}", "evaluated and revoked")


# ------------------------------------------------------------- 6. sweep tasks and compliance changes


def sweep_record(body: str) -> dict[str, Any]:
    message_id = str(uuid.uuid4())
    return {"Records": [{"messageId": message_id, "receiptHandle": "rh", "body": body, "attributes": {},
                         "messageAttributes": {}, "md5OfBody": "0" * 32, "eventSource": "aws:sqs",
                         "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:netguard-sweep-e2e",
                         "awsRegion": "us-east-1"}]}


def test_a_forged_sweep_task_is_not_run(stack, monkeypatch) -> None:
    """Anyone who can send to the sweep queue could name any account and region: a task runs only where
    netguard is configured and only for a target of a sweep netguard planned (recorded in the ledger)."""
    from chalicelib.sweep import SweepDeps, Task, start_sweep

    aws = stack["aws"]
    monkeypatch.setenv("NETGUARD_ACCOUNTS", "111111111111")
    monkeypatch.setenv("NETGUARD_REGIONS", aws.region)
    handlers.runtime.cache_clear()
    rt = handlers.runtime()
    planned = start_sweep(SweepDeps(rt.policy, rt.settings, rt.clients, rt.ledger, None), send=lambda tasks: None)
    assert sorted(planned["accounts"]) == sorted({aws.account, "111111111111"})
    sweep_id, both = planned["sweep_id"], f"{aws.region},eu-west-1"
    forged = [  # (what, task, NETGUARD_REGIONS when it arrives)
        ("an account netguard is not configured for", Task(sweep_id, "999999999999", aws.region), aws.region),
        ("a region netguard is not configured for", Task(sweep_id, aws.account, "eu-west-1"), aws.region),
        ("a sweep netguard never started", Task("20261203T000000Z-forged00", aws.account, aws.region), aws.region),
        ("a configured region the sweep did not plan", Task(sweep_id, aws.account, "eu-west-1"), both),
    ]
    for what, task, regions in forged:
        monkeypatch.setenv("NETGUARD_REGIONS", regions)
        handlers.runtime.cache_clear()
        aws.calls.calls.clear()
        event = sweep_record(task.encode())
        answer = invoke(stack, "sweep_worker", event)
        assert answer == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}, what
        assert [c for c in aws.calls.calls if c[0] != "dynamodb"] == [], what
    report("forged sweep tasks (4 kinds)", "not run, kept for the dead-letter queue")


def test_a_compliance_change_naming_another_account_is_not_acted_on(stack) -> None:
    aws, net = stack["aws"], stack["net"]
    event = events.compliance_change("securityhub-vpc-default-security-group-closed-abc", "AWS::EC2::SecurityGroup",
                                     net.sg_ssh_open, aws.account, aws.region)
    event["detail"]["awsAccountId"] = "111111111111"
    result = invoke(stack, "on_compliance_change", event)
    assert result["skipped"] == "invalid" and "not the event's own" in result["reason"]
    assert aws.calls.writes() == []
