"""Hostile but valid input: what someone inside an account could do to make netguard look away, act
where it should not, or undo its work (README "Threat model"). Each test is one way in, and what stops it.

`make reliability` runs this file whole and prints a line per case.
"""
from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest

from chalicelib import handlers
from chalicelib import ledger as ledger_module
from conftest import TABLE, alerts, invoke, ledger_items
from netguard_testkit import events


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
    monkeypatch.setattr(ledger_module.rules, "utcnow", lambda: later)
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
    from netguard_testkit.moto_fidelity import attach_notebook_eni
    from netguard_testkit.world import OPEN_SSH

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


# --------------------------------------------------------------------------- 4. a tag that exempts


ATTACKER = "arn:aws:sts::{account}:assumed-role/developer/mallory"


def tag_group(aws: Any, group_id: str, tags: dict[str, str]) -> dict[str, Any]:
    """Someone tags a security group: the call, and its CloudTrail event."""
    aws.client("ec2").create_tags(Resources=[group_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    request = {"resourcesSet": {"items": [{"resourceId": group_id}]},
               "tagSet": {"items": [{"key": k, "value": v} for k, v in tags.items()]}}
    return events.api_call("CreateTags", "aws.ec2", request, {"_return": True}, aws.account, aws.region,
                           principal=ATTACKER.format(account=aws.account))


def in_days(days: int) -> str:
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=days)).isoformat()


@pytest.mark.parametrize("case, tags, sg1", [
    ("'*' on a critical control", {"netguard:exempt": "*", "netguard:exempt-until": in_days(30),
                                   "netguard:exempt-reason": "trust me"}, "succeeded"),
    ("no expiry", {"netguard:exempt": "SG.1 SG.2", "netguard:exempt-reason": "trust me"}, "succeeded"),
    ("an expiry years away", {"netguard:exempt": "SG.1 SG.2", "netguard:exempt-until": "2999-01-01",
                              "netguard:exempt-reason": "trust me"}, "succeeded"),
    ("no reason", {"netguard:exempt": "SG.1 SG.2", "netguard:exempt-until": in_days(30)}, "succeeded"),
    ("a valid exemption, named, with reason and expiry", {"netguard:exempt": "SG.1 SG.2",
                                                         "netguard:exempt-until": in_days(30),
                                                         "netguard:exempt-reason": "pen test SEC-9"}, None),
])
def test_an_exemption_tag_is_alerted_with_who_set_it_and_honoured_only_when_valid(stack, case, tags, sg1) -> None:
    from netguard_testkit.moto_fidelity import attach_notebook_eni

    aws, net = stack["aws"], stack["net"]
    attach_notebook_eni(aws.client("ec2"), net.private_subnets[0], [net.sg_ssh_open], "nb")
    result = invoke(stack, "on_api_call", tag_group(aws, net.sg_ssh_open, tags))
    decisions = {d["control"]: (d["decision"], d["result"]) for d in result["decisions"]}
    sent = alerts(stack)
    notices = [a["message"] for a in sent if a["attributes"].get("kind") == "notice"]
    assert len(notices) == 1 and notices[0]["title"] == "exemption tag changed"
    assert ATTACKER.format(account=aws.account) in notices[0]["text"] and net.sg_ssh_open in notices[0]["text"]
    if sg1 is None:
        assert decisions["SG.1"] == ("exempt", "no-action")
        assert "exempt now from SG.1" in notices[0]["text"]
        assert aws.calls.writes() == []
    else:
        assert decisions["SG.1"] == ("remediate", sg1)
        assert "ec2:RevokeSecurityGroupIngress" in aws.calls.writes()
        assert "not exempt: SG.1" in notices[0]["text"]
    report(f"exemption tag with {case}", "alerted with the principal; " +
           ("honoured" if sg1 is None else "ignored, SSH revoked"))


# ------------------------------------------------------------------------------ 5. the blast radius


def untagged_groups(aws: Any, net: Any, count: int) -> list[str]:
    ec2 = aws.client("ec2")
    return [ec2.create_security_group(GroupName=f"untagged-{i}", Description="x", VpcId=net.vpc_id)["GroupId"]
            for i in range(count)]


def test_low_severity_fixes_cannot_starve_a_critical_containment(stack, monkeypatch) -> None:
    """Someone creates untagged groups until TAG.1 (low) has spent its budget, then opens SSH to the
    world: SG.1 (critical) is still contained, from a budget of its own."""
    from netguard_testkit.moto_fidelity import attach_notebook_eni
    from netguard_testkit.world import OPEN_SSH

    aws, net = stack["aws"], stack["net"]
    monkeypatch.setenv("NETGUARD_MAX_ACTIONS", "low=2")
    handlers.runtime.cache_clear()
    results = []
    for group in untagged_groups(aws, net, 4):
        result = invoke(stack, "on_api_call", events.create_security_group(group, group, net.vpc_id, aws.account,
                                                                           aws.region))
        results += [d["result"] for d in result["decisions"] if d["control"] == "TAG.1"]
    assert results == ["succeeded", "succeeded", "limited", "limited"]
    attach_notebook_eni(aws.client("ec2"), net.private_subnets[0], [net.sg_ssh_open], "nb")
    opened = invoke(stack, "on_api_call", events.authorize_ingress(net.sg_ssh_open, OPEN_SSH, aws.account, aws.region))
    assert {d["result"] for d in opened["decisions"] if d["control"] == "SG.1"} == {"succeeded"}
    limited = [a["message"] for a in alerts(stack) if a["message"].get("result") == "limited"]
    assert len(limited) == 2 and "2 low-severity enforce actions in account" in limited[0]["detail"]
    report("4 TAG.1 fixes with a low-severity budget of 2, then SSH opened", "2 tagged, 2 limited, SSH revoked")


def test_a_limited_violation_is_rechecked_when_its_window_opens(stack, monkeypatch) -> None:
    """The violation the limit held back is sent to the recheck queue not before the window ends; a
    message that arrives early (SQS delays 15 minutes at most) is sent on, not run; then it is fixed."""
    from chalicelib import recheck as recheck_module
    from netguard_testkit.world import OPEN_SSH, open_ssh_groups

    aws, net = stack["aws"], stack["net"]
    sqs = aws.client("sqs")
    queue = sqs.create_queue(QueueName="netguard-recheck-e2e")["QueueUrl"]
    monkeypatch.setenv("NETGUARD_RECHECK_QUEUE_URL", queue)
    monkeypatch.setenv("NETGUARD_MAX_ACTIONS", "critical=1")
    monkeypatch.setattr(recheck_module, "MAX_DELAY_SECONDS", 0)  # the test does not wait out SQS's delays
    handlers.runtime.cache_clear()
    first, second = open_ssh_groups(aws.client("ec2"), net, 2, prefix="window")
    invoke(stack, "on_api_call", events.authorize_ingress(first, OPEN_SSH, aws.account, aws.region))
    held = invoke(stack, "on_api_call", events.authorize_ingress(second, OPEN_SSH, aws.account, aws.region))
    assert {d["result"] for d in held["decisions"] if d["control"] == "SG.1"} == {"limited"}
    assert held["rechecks"] == 1
    message = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["All"])["Messages"][0]
    body = recheck_module.decode(message["Body"])
    now = dt.datetime.now(dt.UTC)
    assert body.not_before == ledger_module.window_end(now, 60) and body.refs[0].resource_id == second

    def deliver(body_text: str) -> dict[str, Any]:
        return invoke(stack, "recheck", sweep_record(body_text))

    assert aws.calls.writes().count("ec2:RevokeSecurityGroupIngress") == 1  # the first group's
    early = deliver(message["Body"])  # before the window ends: sent on, nothing done
    assert early == {"batchItemFailures": []}
    assert aws.calls.writes().count("ec2:RevokeSecurityGroupIngress") == 1
    again = sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"]
    assert recheck_module.decode(again).not_before == body.not_before
    later = now + dt.timedelta(hours=1, minutes=1)  # the next window
    monkeypatch.setattr(ledger_module.rules, "utcnow", lambda: later)

    class Later(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return later

    monkeypatch.setattr(handlers.dt, "datetime", Later)
    assert deliver(again) == {"batchItemFailures": []}
    assert aws.calls.writes().count("ec2:RevokeSecurityGroupIngress") == 2
    ingress = aws.client("ec2").describe_security_groups(GroupIds=[second])["SecurityGroups"][0]["IpPermissions"]
    assert not [r for p in ingress for r in p.get("IpRanges", []) if r["CidrIp"] == "0.0.0.0/0"]
    report("a violation held back by the blast-radius limit", "rechecked and fixed when the window opened")


# ----------------------------------------------------- 8. the internet in pieces, alerts sent elsewhere


def test_the_internet_split_in_two_halves_is_the_internet(stack) -> None:
    from netguard_testkit.moto_fidelity import attach_notebook_eni
    from netguard_testkit.world import tcp

    aws, net = stack["aws"], stack["net"]
    ec2 = aws.client("ec2")
    group = ec2.create_security_group(GroupName="halves", Description="x", VpcId=net.vpc_id)["GroupId"]
    halves = [tcp(22, "0.0.0.0/1"), tcp(22, "128.0.0.0/1")]
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=halves)
    attach_notebook_eni(ec2, net.private_subnets[0], [group], "nb-halves")
    result = invoke(stack, "on_api_call", events.authorize_ingress(group, halves, aws.account, aws.region))
    assert {d["result"] for d in result["decisions"] if d["control"] == "SG.1"} == {"succeeded"}
    left = [r.get("CidrIpv4") for r in ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [group]}])["SecurityGroupRules"] if not r["IsEgress"]]
    assert left == []
    report("SSH open to 0.0.0.0/1 and 128.0.0.0/1", "both revoked (SG.1)")


def test_a_webhook_url_pointed_elsewhere_is_refused_and_recorded(stack, monkeypatch, capsys) -> None:
    """Whoever can change the stored webhook URL could send netguard's Slack alerts where nobody reads
    them: only URLs under NETGUARD_SLACK_ALLOWED_URLS (default https://hooks.slack.com/) are posted to."""
    from chalicelib import notify
    from netguard_testkit.moto_fidelity import attach_notebook_eni
    from netguard_testkit.world import OPEN_SSH

    aws, net = stack["aws"], stack["net"]
    monkeypatch.delenv("NETGUARD_SLACK_ALLOWED_URLS")  # the default: Slack only
    handlers.runtime.cache_clear()
    notify.clear_cache()
    for url in ("https://attacker.example/services/T0/B0/x", "https://hooks.slack.com.attacker.example/services/x",
                "https://hooks.slack.com@attacker.example/services/x", "http://hooks.slack.com/services/x"):
        with pytest.raises(Exception, match="not under an allowed URL"):
            notify.check_allowed_webhook(url, ("https://hooks.slack.com/",))
    notify.check_allowed_webhook("https://hooks.slack.com/services/T0/B0/x", ("https://hooks.slack.com/",))
    attach_notebook_eni(aws.client("ec2"), net.private_subnets[0], [net.sg_ssh_open], "nb")
    invoke(stack, "on_api_call", events.authorize_ingress(net.sg_ssh_open, OPEN_SSH, aws.account, aws.region))
    assert stack["slack"].attempts == 0  # the stored URL is the local receiver: not Slack, so refused
    assert alerts(stack)  # SNS still delivered
    undelivered = [i for i in ledger_items(stack, "") if i["pk"] == "alert#undelivered"]
    assert undelivered and all("not under an allowed URL" in i["error"] for i in undelivered)
    assert all(i["channel"] == "slack" for i in undelivered)
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"undelivered"' in line]
    assert emf and all(e["control"] == "alerts" and e["undelivered"] == [1.0] for e in emf)  # what the stack alarms on
    report("a webhook URL not under the allowed prefixes", "not posted to; recorded undelivered; SNS unaffected")


# ----------------------------------------------------------------------- 7. a forged ledger record


def signed_revoke(stack, monkeypatch) -> tuple[str, str]:
    """A real revoke of SSH from anywhere by the stack, its record signed with the ledger key:
    (action id, key ARN)."""
    from netguard_testkit.moto_fidelity import attach_notebook_eni
    from netguard_testkit.world import OPEN_SSH

    aws, net = stack["aws"], stack["net"]
    key = aws.client("kms").create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["Arn"]
    monkeypatch.setenv("NETGUARD_LEDGER_KEY_ID", key)
    handlers.runtime.cache_clear()
    attach_notebook_eni(aws.client("ec2"), net.private_subnets[0], [net.sg_ssh_open], "nb")
    result = invoke(stack, "on_api_call", events.authorize_ingress(net.sg_ssh_open, OPEN_SSH, aws.account, aws.region))
    [act] = {d["action_id"] for d in result["decisions"] if d["control"] == "SG.1"}
    return act, key


def restore(stack, act: str, key: str | None, **kwargs: Any) -> Any:
    from chalicelib.restore import TableLedger, alert_sender, restore_action
    from chalicelib.settings import Settings

    aws = stack["aws"]
    ledger = TableLedger(TABLE, aws.client("dynamodb"), key_id=key, kms=aws.client("kms"))
    alert = alert_sender(Settings.from_env(), aws.clients, aws.region, use_table=True)
    return restore_action(ledger, aws.clients, act, alert=alert, **kwargs)


def ssh_open(aws: Any, group: str) -> bool:
    rules = aws.client("ec2").describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [group]}])["SecurityGroupRules"]
    return any(r.get("CidrIpv4") == "0.0.0.0/0" and r.get("FromPort") == 22 for r in rules if not r["IsEgress"])


def test_a_forged_or_altered_ledger_record_is_not_restored_and_the_attempt_is_alerted(stack, monkeypatch) -> None:
    """Whoever can write the ledger table could add an "action" whose before-state opens a group to the
    world, or change a real one: restore acts only on records signed with the ledger key, which only
    netguard's functions can use."""
    aws, net = stack["aws"], stack["net"]
    act, key = signed_revoke(stack, monkeypatch)
    alerts(stack)  # the revoke's own alerts
    ddb = aws.client("dynamodb")
    genuine = ddb.get_item(TableName=TABLE, Key={"pk": {"S": f"action#{act}"}, "sk": {"S": "action"}})["Item"]
    group = aws.client("ec2").create_security_group(GroupName="quiet", Description="x", VpcId=net.vpc_id)["GroupId"]
    forged_before = {"GroupId": group, "Rules": [{"SecurityGroupRuleId": "sgr-0f0f0f0f0f0f0f0f0", "IsEgress": False,
                                                  "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                                  "CidrIpv4": "0.0.0.0/0"}]}
    forged = {**genuine, "pk": {"S": "action#act-forged"},
              "resource": {"S": f"{aws.account}#{aws.region}#AWS::EC2::SecurityGroup#{group}"},
              "before": {"S": json.dumps(forged_before, sort_keys=True, separators=(",", ":"))},
              "detail": {"S": "revoked rules sgr-0f0f0f0f0f0f0f0f0"}}
    cases = {"a record written by someone else": ({k: v for k, v in forged.items() if k != "mac"}, "unsigned"),
             "a genuine signature copied onto it": (forged, "bad-signature"),
             "a genuine record with its before-state changed": (
                 {**genuine, "pk": {"S": "action#act-altered"}, "before": forged["before"]}, "bad-signature")}
    for what, (item, signature) in cases.items():
        ddb.put_item(TableName=TABLE, Item=item)
        refused = restore(stack, item["pk"]["S"].split("#", 1)[1], key, yes=True)
        assert refused.result == "refused" and refused.record.signature == signature, what
        assert not ssh_open(aws, group) and not ssh_open(aws, net.sg_ssh_open), what
        [notice] = [a["message"] for a in alerts(stack)]
        assert notice["title"] == "netguard restore refused" and signature in notice["text"], what
    unchecked = restore(stack, act, None, yes=True)  # no key to check the genuine record with
    assert unchecked.result == "refused" and "--ledger-key" in unchecked.detail
    report("forged and altered ledger records (3 kinds), and no key to check", "refused, nothing written, alerted")


def test_a_genuine_restore_to_the_internet_needs_yes_and_is_alerted(stack, monkeypatch) -> None:
    aws, net = stack["aws"], stack["net"]
    act, key = signed_revoke(stack, monkeypatch)
    alerts(stack)
    first = restore(stack, act, key)
    assert first.result == "refused" and "pass --yes" in first.detail and not ssh_open(aws, net.sg_ssh_open)
    done = restore(stack, act, key, yes=True)
    assert done.result == "restored" and ssh_open(aws, net.sg_ssh_open)
    sent = [a["message"] for a in alerts(stack)]
    assert [n["title"] for n in sent] == ["netguard restore refused", "netguard restore restored"]
    assert act in sent[1]["text"] and net.sg_ssh_open in sent[1]["text"]
    assert done.alerted == ["slack: delivered", "sns: delivered"]
    report("a genuine restore re-opening SSH to the world", "refused without --yes; with it, restored and alerted")


def test_a_record_whose_rules_are_not_those_it_says_it_revoked_is_refused(stack, monkeypatch) -> None:
    aws, net = stack["aws"], stack["net"]
    act, _ = signed_revoke(stack, monkeypatch)
    ddb = aws.client("dynamodb")
    ddb.update_item(TableName=TABLE, Key={"pk": {"S": f"action#{act}"}, "sk": {"S": "action"}},
                    UpdateExpression="SET detail = :d", ExpressionAttributeValues={":d": {"S": "revoked rules sgr-1"}})
    inconsistent = restore(stack, act, None, yes=True, allow_unsigned=True)
    assert inconsistent.result == "refused" and "inconsistent" in inconsistent.detail
    assert not ssh_open(aws, net.sg_ssh_open)


def test_a_claim_planted_in_the_ledger_does_not_hold_a_violation_back(stack) -> None:
    """Whoever can write the ledger could plant the claim of a violation to come (its key is predictable:
    control, resource, evidence), settled far in the future or never expiring, so that the violation would
    be a "duplicate". A claim netguard cannot have written is taken."""
    aws, net = stack["aws"], stack["net"]
    ddb = aws.client("dynamodb")
    invoke(stack, "on_api_call", turn_dns_off(aws, net.vpc_id))  # a real claim: its key, for the forger
    [claim] = [i for i in ddb.scan(TableName=TABLE)["Items"] if i["sk"]["S"].startswith("claim#VPC.1#")]
    planted = [{"settled_at": {"S": "2999-01-01T00:00:00.000000Z"}},  # resolved "later" than any read
               {"expires_at": {"N": "32503680000"}, "result": {"S": "no-action"}}]  # never expires
    for change in planted:
        ddb.put_item(TableName=TABLE, Item={**claim, **change})
        result = invoke(stack, "on_api_call", turn_dns_off(aws, net.vpc_id))
        assert {d["result"] for d in result["decisions"] if d["control"] == "VPC.1"} == {"succeeded"}, change
        assert dns_support(aws.client("ec2"), net.vpc_id) is True
    report("claims planted in the ledger (settled in the future, never expiring)", "taken; the violation fixed")


def test_the_internet_through_a_prefix_list_is_the_internet(stack) -> None:
    """A customer-managed prefix list holds whatever its owner puts in it: a rule from one holding
    0.0.0.0/0 is open to the internet (neither Prowler's check nor netguard's looked inside, before)."""
    from netguard_testkit.moto_fidelity import attach_notebook_eni

    aws, net = stack["aws"], stack["net"]
    ec2 = aws.client("ec2")
    listed = ec2.create_managed_prefix_list(PrefixListName="partners", AddressFamily="IPv4", MaxEntries=5, Entries=[
        {"Cidr": "198.51.100.0/24", "Description": "partner"}, {"Cidr": "0.0.0.0/0", "Description": "oops"}]
    )["PrefixList"]["PrefixListId"]
    group = ec2.create_security_group(GroupName="via-list", Description="x", VpcId=net.vpc_id)["GroupId"]
    rule = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "PrefixListIds": [{"PrefixListId": listed}]}
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[rule])
    attach_notebook_eni(ec2, net.private_subnets[0], [group], "nb-list")
    result = invoke(stack, "on_api_call", events.authorize_ingress(group, [rule], aws.account, aws.region))
    assert {d["result"] for d in result["decisions"] if d["control"] == "SG.1"} == {"succeeded"}
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group]}])["SecurityGroupRules"]
    assert not [r for r in rules if not r["IsEgress"]]
    [alert] = [a["message"] for a in alerts(stack) if a["message"].get("control", {}).get("id") == "SG.1"]
    assert alert["evidence"]["OpenIngressRules"][0]["PrefixListCidrs"] == ["0.0.0.0/0", "198.51.100.0/24"]
    report("SSH open through a prefix list holding 0.0.0.0/0", "revoked (SG.1)")
