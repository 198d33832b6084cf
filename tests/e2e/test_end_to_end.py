"""End to end through chalice.test.Client: real-shaped events -> handlers -> moto account, ledger
(DynamoDB), SNS (read back through a subscribed SQS queue) and Slack (a local webhook receiver)."""
from __future__ import annotations

import copy
import datetime as dt
import json

import pytest

from chalicelib import handlers
from chalicelib.collect import Collector
from chalicelib.decide import decide
from chalicelib.evaluate import evaluate
from chalicelib.model import DUPLICATE
from chalicelib.pipeline import Pipeline
from chalicelib.remediate import QUARANTINE_TAG
from chalicelib.triggers import from_api_call
from conftest import TABLE, alerts, invoke, json_lines, ledger_items, sagemaker_accepts_tag
from netguard_testkit import events
from netguard_testkit.moto_fidelity import attach_notebook_eni, notebook_status, set_status
from netguard_testkit.moto_sagemaker import job_status, set_job_status
from netguard_testkit.world import (
    TAGS,
    create_notebook,
    ingress_rule_ids,
    tcp,
)


def test_notebook_with_internet_in_a_public_subnet_is_deferred_then_stopped(stack):
    aws, net = stack["aws"], stack["net"]
    acct, region = aws.account, aws.region
    create_notebook(aws.client("sagemaker"), acct, "nb-public", net.public_subnet, [net.sg_notebook_ok])
    result = invoke(stack, "on_api_call",
                    events.create_notebook("nb-public", acct, region, net.public_subnet, [net.sg_notebook_ok]))
    kinds = {(d["control"], d["decision"]) for d in result["decisions"]}
    assert kinds == {("NB.1", "deferred"), ("NB.3", "deferred")}
    assert aws.calls.writes() == []  # Pending: nothing can be stopped yet
    deferred = alerts(stack)
    assert {a["attributes"]["action"] for a in deferred} == {"deferred"}
    assert all(a["message"]["principal"].endswith(":user/data-scientist") for a in deferred)

    set_status(acct, region, "nb-public", "InService")
    state_event = events.notebook_state_change("nb-public", "InService", acct, region, net.public_subnet,
                                               [net.sg_notebook_ok])
    result = invoke(stack, "on_state_change", state_event)
    assert {(d["control"], d["result"]) for d in result["decisions"]} == {("NB.1", "succeeded"), ("NB.3", "succeeded")}
    assert notebook_status(acct, region, "nb-public") == "Stopping"
    assert aws.calls.writes() == ["sagemaker:StopNotebookInstance", "sagemaker:AddTags"]
    tags = {t["Key"]: t["Value"] for t in aws.client("sagemaker").list_tags(
        ResourceArn=f"arn:aws:sagemaker:{region}:{acct}:notebook-instance/nb-public")["Tags"]}
    assert tags[QUARANTINE_TAG] == "NB.1 NB.3" and sagemaker_accepts_tag(QUARANTINE_TAG, tags[QUARANTINE_TAG])
    done = alerts(stack)
    assert len(done) == 2 and all(a["message"]["result"] == "succeeded" for a in done)
    assert "recreate" in done[0]["message"]["detail"]
    assert len(stack["slack"].payloads) == 4

    # the ledger holds both decisions per control, and the action with its before-state
    decisions = ledger_items(stack, "decision#")
    assert sorted((d["control"], d["decision"]) for d in decisions) == [
        ("NB.1", "deferred"), ("NB.1", "remediate"), ("NB.3", "deferred"), ("NB.3", "remediate")]
    assert all(d["event_id"] in (state_event["id"],) or d["decision"] == "deferred" for d in decisions)
    action = ledger_items(stack, "action")
    assert len(action) == 1 and json.loads(action[0]["before"])["NotebookInstanceStatus"] == "InService"
    assert action[0]["result"] == "succeeded"

    # the same event delivered again, and another event for the same state: no second stop, no alert
    aws.calls.calls.clear()
    invoke(stack, "on_state_change", state_event)
    invoke(stack, "on_state_change", events.notebook_state_change("nb-public", "InService", acct, region))
    assert aws.calls.writes() == []
    assert alerts(stack) == []


def test_open_ssh_rule_on_a_notebook_group_is_revoked_by_rule_id(stack):
    aws, net = stack["aws"], stack["net"]
    ec2 = aws.client("ec2")
    attach_notebook_eni(ec2, net.private_subnets[0], [net.sg_ssh_open], "nb-ssh")
    ec2.authorize_security_group_ingress(GroupId=net.sg_ssh_open, IpPermissions=[tcp(443, net.vpc_cidr)])
    [(open_id, open_rule)] = [(i, r) for i, r in ingress_rule_ids(ec2, net.sg_ssh_open).items() if r["FromPort"] == 22]
    event = events.authorize_ingress(net.sg_ssh_open, [tcp(22, "0.0.0.0/0")], aws.account, aws.region,
                                     rule_set=[open_rule])
    result = invoke(stack, "on_api_call", event)
    assert {(d["control"], d["result"]) for d in result["decisions"]} == {("SG.1", "succeeded"), ("SG.2", "succeeded")}
    assert aws.calls.writes() == ["ec2:RevokeSecurityGroupIngress"]  # one call for both controls
    assert [r["FromPort"] for r in ingress_rule_ids(ec2, net.sg_ssh_open).values()] == [443]
    sent = alerts(stack)
    assert {a["attributes"]["control"] for a in sent} == {"SG.1", "SG.2"}
    assert {a["attributes"]["severity"] for a in sent} == {"critical", "high"}
    action = ledger_items(stack, "action")[0]
    assert json.loads(action["before"])["Rules"][0]["SecurityGroupRuleId"] == open_id  # recorded for restore

    # the published 1.05 shape for the same group: the rule is already gone, nothing more happens
    aws.calls.calls.clear()
    old = events.sample("eventbridge-cloudtrail-ec2-AuthorizeSecurityGroupIngress.json")
    old = {**old, "account": aws.account, "detail": {**old["detail"], "requestParameters": {
        **old["detail"]["requestParameters"], "groupId": net.sg_ssh_open}}}
    assert invoke(stack, "on_api_call", old)["decisions"] == []
    assert aws.calls.writes() == []


def test_two_events_for_one_violation_cause_one_remediation(stack):
    """Two invocations that both read the violation before either acted: the ledger claim lets one act."""
    aws, net = stack["aws"], stack["net"]
    rt = handlers.runtime()
    ev1 = events.authorize_ingress(net.sg_ssh_open, [tcp(22, "0.0.0.0/0")], aws.account, aws.region)
    ev2 = events.modify_rules(net.sg_ssh_open, "sgr-x", {}, aws.account, aws.region)
    attach_notebook_eni(aws.client("ec2"), net.private_subnets[0], [net.sg_ssh_open], "nb")
    first, second = (Pipeline(rt.policy, rt.settings, rt.clients, rt.ledger, None) for _ in range(2))

    def decisions(trigger):
        resources = Collector(rt.clients).collect(trigger.refs).resources
        return [d for f in evaluate(rt.policy.controls, resources)
                if (d := decide(f, rt.policy, rt.settings, dt.date.today())) is not None]

    t1, t2 = from_api_call(ev1), from_api_call(ev2)
    d1, d2 = decisions(t1), decisions(t2)  # both saw the open rule
    out1 = first.act(t1.context, d1)
    out2 = second.act(t2.context, d2)
    assert aws.calls.writes() == ["ec2:RevokeSecurityGroupIngress"]
    assert {o.result for o in out1} == {"succeeded"} and {o.result for o in out2} == {DUPLICATE}


@pytest.mark.parametrize("mode, kind", [("dry-run", "dry-run"), ("alert", "alert-only")])
def test_dry_run_and_alert_modes_write_nothing_to_resources_but_say_what_they_would_do(stack, monkeypatch, mode, kind):
    aws, net = stack["aws"], stack["net"]
    monkeypatch.setenv("NETGUARD_MODE", mode)
    handlers.runtime.cache_clear()
    create_notebook(aws.client("sagemaker"), aws.account, "nb-novpc")
    set_status(aws.account, aws.region, "nb-novpc", "InService")
    result = invoke(stack, "on_state_change",
                    events.notebook_state_change("nb-novpc", "InService", aws.account, aws.region))
    invoke(stack, "on_api_call",
           events.authorize_ingress(net.sg_ssh_open, [tcp(22, "0.0.0.0/0")], aws.account, aws.region))
    attach_notebook_eni(aws.client("ec2"), net.private_subnets[0], [net.sg_ssh_open], "nb")
    invoke(stack, "on_api_call",
           events.authorize_ingress(net.sg_ssh_open, [tcp(22, "0.0.0.0/0")], aws.account, aws.region))
    assert {d["decision"] for d in result["decisions"]} == {kind}
    assert aws.calls.writes() == []
    assert notebook_status(aws.account, aws.region, "nb-novpc") == "InService"
    assert len(ingress_rule_ids(aws.client("ec2"), net.sg_ssh_open)) == 1
    sent = alerts(stack)
    assert {a["message"]["control"]["id"] for a in sent} == {"NB.1", "NB.2", "SG.1", "SG.2"}
    assert all("would" in a["message"]["detail"] for a in sent)


def in_days(days: int) -> str:
    import datetime as dt

    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=days)).isoformat()


def test_exempt_notebook_is_reported_not_touched(stack):
    aws = stack["aws"]
    create_notebook(aws.client("sagemaker"), aws.account, "nb-lab",
                    tags={"netguard:exempt": "*", "netguard:exempt-until": in_days(30),
                          "netguard:exempt-reason": "isolated lab account"})
    set_status(aws.account, aws.region, "nb-lab", "InService")
    result = invoke(stack, "on_state_change",
                    events.notebook_state_change("nb-lab", "InService", aws.account, aws.region))
    assert {d["decision"] for d in result["decisions"]} == {"exempt"}
    assert aws.calls.writes() == []
    assert all("isolated lab account" in a["message"]["reason"] for a in alerts(stack))


BAD_EVENTS = [
    "not even json",
    [1, 2, 3],
    {},
    {"id": "evt-no-envelope"},
    {"version": "0", "id": "evt-forged", "detail-type": "AWS API Call via CloudTrail", "source": "evil.app",
     "account": "111122223333", "region": "us-east-1", "time": "t", "resources": [], "detail": {}},
]


@pytest.mark.parametrize("bad", BAD_EVENTS, ids=["string", "list", "empty", "no-envelope", "forged-source"])
def test_malformed_and_foreign_events_are_logged_and_skipped_without_action(stack, bad, engine_log):
    result = invoke(stack, "on_api_call", bad)
    assert result["skipped"] in ("invalid", "ignored")
    assert stack["aws"].calls.writes() == []
    assert alerts(stack) == []
    skip_lines = [line for line in json_lines(engine_log)
                  if line.get("message") in ("malformed event skipped", "event ignored")]
    assert skip_lines and skip_lines[0]["service"] == "netguard-engine"
    if isinstance(bad, dict) and "id" in bad:
        assert skip_lines[0]["event_id"] == bad["id"]


def test_failed_call_event_is_ignored(stack):
    aws, net = stack["aws"], stack["net"]
    event = events.authorize_ingress(net.sg_ssh_open, [tcp(22, "0.0.0.0/0")], aws.account, aws.region)
    event["detail"]["errorCode"] = "Client.UnauthorizedOperation"
    assert invoke(stack, "on_api_call", event)["skipped"] == "ignored"
    assert aws.calls.writes() == []


def test_log_lines_are_json_with_the_event_id_as_correlation_id(stack, engine_log, capsys):
    aws, net = stack["aws"], stack["net"]
    attach_notebook_eni(aws.client("ec2"), net.private_subnets[0], [net.sg_ssh_open], "nb")
    event = events.create_security_group(net.sg_ssh_open, "x", net.vpc_id, aws.account, aws.region)
    invoke(stack, "on_api_call", event)
    lines = json_lines(engine_log)
    processed = [line for line in lines if line.get("message") == "event processed"]
    assert processed and processed[0]["correlation_id"] == event["id"]
    # the stage modules' standard loggers print the same JSON, with the same correlation id
    stage_lines = [line for line in lines if line.get("message", "").startswith("action ")]
    assert stage_lines and stage_lines[0]["correlation_id"] == event["id"]
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert {m["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] for m in emf} >= {"evaluations"}
    assert all(m["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "netguard" for m in emf)


def test_slack_outage_is_recorded_in_the_ledger_not_lost(stack):
    aws = stack["aws"]
    stack["slack"].fail_next(500, count=10)
    create_notebook(aws.client("sagemaker"), aws.account, "nb-x")
    set_status(aws.account, aws.region, "nb-x", "InService")
    rt = handlers.runtime()
    rt.notifier.slack_sleep = lambda seconds: None
    invoke(stack, "on_state_change", events.notebook_state_change("nb-x", "InService", aws.account, aws.region))
    undelivered = [i for i in stack["aws"].client("dynamodb").scan(TableName=TABLE)["Items"]
                   if i["pk"]["S"] == "alert#undelivered"]
    assert {i["channel"]["S"] for i in undelivered} == {"slack"}
    assert len(undelivered) == 2  # NB.1 and NB.2, each recorded with its error
    assert all("500" in i["error"]["S"] for i in undelivered)
    assert stack["slack"].attempts == 4  # one alert's bounded retries; the second is not retried into the outage
    assert len(alerts(stack)) == 2  # SNS still delivered


def test_the_next_sweep_delivers_what_an_outage_left_undelivered(stack, monkeypatch):
    """Slack down while two alerts go out: recorded as undelivered; the next sweep re-sends both (after
    recovery), removes them from the ledger, and sends its digest."""
    aws = stack["aws"]
    stack["slack"].fail_next(500, count=10)
    create_notebook(aws.client("sagemaker"), aws.account, "nb-y")
    set_status(aws.account, aws.region, "nb-y", "InService")
    rt = handlers.runtime()
    rt.notifier.slack_sleep = lambda seconds: None
    invoke(stack, "on_state_change", events.notebook_state_change("nb-y", "InService", aws.account, aws.region))
    assert len([i for i in ledger_items(stack, "") if i["pk"] == "alert#undelivered"]) == 2
    lost = {p["text"] for p in stack["slack"].payloads}
    stack["slack"].recover()
    monkeypatch.setenv("NETGUARD_REGIONS", aws.region)
    handlers.runtime.cache_clear()  # a new container: the channel pause of the old one is gone too
    result = invoke(stack, "sweep", {"version": "0", "id": "sweep-1", "detail-type": "Scheduled Event",
                                     "source": "aws.events", "account": aws.account, "time": "2026-11-27T06:00:00Z",
                                     "region": aws.region, "resources": [], "detail": {}})
    assert result["undelivered_alerts"] == {"resent": 2, "still_undelivered": 0, "left_for_next_sweep": 0}
    texts = [p["text"] for p in stack["slack"].payloads]
    assert sum("NB.1" in t or "NB.2" in t for t in texts) >= 2 and not lost
    assert [i for i in ledger_items(stack, "") if i["pk"] == "alert#undelivered"] == []
    assert any(t.startswith("[netguard] sweep") for t in texts)


def test_an_event_another_invocation_is_processing_fails_for_a_retry_without_acting(stack):
    """Powertools idempotency: while an in-progress record exists, a second delivery does nothing and
    raises, so that Lambda retries it after the first has stored its result."""
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
    )

    aws, net = stack["aws"], stack["net"]
    attach_notebook_eni(aws.client("ec2"), net.private_subnets[0], [net.sg_ssh_open], "nb")
    event = events.authorize_ingress(net.sg_ssh_open, [tcp(22, "0.0.0.0/0")], aws.account, aws.region)
    rt = handlers.runtime()
    original = rt.ledger.claim_many
    seen = []

    def claim_while_a_second_delivery_arrives(*args, **kwargs):
        if not seen:
            seen.append(True)
            with pytest.raises(IdempotencyAlreadyInProgressError):
                invoke(stack, "on_api_call", event)
        return original(*args, **kwargs)

    rt.ledger.claim_many = claim_while_a_second_delivery_arrives
    result = invoke(stack, "on_api_call", event)
    assert seen and {d["result"] for d in result["decisions"]} == {"succeeded"}
    assert aws.calls.writes() == ["ec2:RevokeSecurityGroupIngress"]
    assert invoke(stack, "on_api_call", event) == result  # the retry gets the stored result


def _training_job(aws, net, name, **changes):
    params = {
        "TrainingJobName": name, "RoleArn": f"arn:aws:iam::{aws.account}:role/sagemaker",
        "AlgorithmSpecification": {"TrainingImage": "123.dkr.ecr.us-east-1.amazonaws.com/x:1",
                                   "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": "s3://b/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "VpcConfig": {"SecurityGroupIds": [net.sg_notebook_ok], "Subnets": list(net.private_subnets)},
        "EnableNetworkIsolation": True, "Tags": [{"Key": k, "Value": v} for k, v in TAGS.items()],
    }
    params.update(changes)
    aws.client("sagemaker").create_training_job(**params)


def test_training_job_without_isolation_is_stopped_from_its_cloudtrail_event(stack):
    aws, net = stack["aws"], stack["net"]
    _training_job(aws, net, "train-open", EnableNetworkIsolation=False)
    event = events.api_call("CreateTrainingJob", "aws.sagemaker", {"trainingJobName": "train-open"},
                            {"trainingJobArn": f"arn:aws:sagemaker:{aws.region}:{aws.account}:training-job/train-open"},
                            aws.account, aws.region)
    result = invoke(stack, "on_api_call", event)
    assert {(d["control"], d["result"]) for d in result["decisions"]} == {("JOB.1", "succeeded")}
    assert aws.calls.writes() == ["sagemaker:StopTrainingJob"]
    assert job_status(aws.account, aws.region, "training", "train-open") == "Stopping"
    [alert] = alerts(stack)
    assert alert["message"]["resource"]["type"] == "AWS::SageMaker::TrainingJob"
    assert "immutable" in alert["message"]["detail"]


def test_a_job_found_through_its_state_change_event_after_it_finished_is_reported_not_stopped(stack):
    aws, net = stack["aws"], stack["net"]
    _training_job(aws, net, "train-done", EnableNetworkIsolation=False)
    event = copy.deepcopy(events.sample("eventbridge-sagemaker-training-job-state-change.awsdocs.json"))
    event.update(account=aws.account, region=aws.region)
    event["detail"].update(TrainingJobName="train-done", TrainingJobStatus="InProgress")
    set_job_status(aws.account, aws.region, "training", "train-done", "Completed")  # it finished meanwhile
    result = invoke(stack, "on_state_change", event)
    assert {(d["control"], d["decision"]) for d in result["decisions"]} == {("JOB.1", "not-actionable")}
    assert aws.calls.writes() == []
    assert "Completed" in alerts(stack)[0]["message"]["reason"]


def test_vpc_dns_turned_off_is_turned_back_on_support_first(stack):
    aws, net = stack["aws"], stack["net"]
    ec2 = aws.client("ec2")
    ec2.modify_vpc_attribute(VpcId=net.vpc_id, EnableDnsHostnames={"Value": False})
    ec2.modify_vpc_attribute(VpcId=net.vpc_id, EnableDnsSupport={"Value": False})
    event = events.api_call("ModifyVpcAttribute", "aws.ec2",
                            {"vpcId": net.vpc_id, "enableDnsSupport": {"value": False}},
                            {"_return": True}, aws.account, aws.region)
    result = invoke(stack, "on_api_call", event)
    assert {(d["control"], d["result"]) for d in result["decisions"]} == {("VPC.1", "succeeded"),
                                                                           ("VPC.2", "succeeded")}
    assert aws.calls.writes() == ["ec2:ModifyVpcAttribute"] * 2  # one action for both: support, then hostnames
    attrs = [ec2.describe_vpc_attribute(VpcId=net.vpc_id, Attribute=a)
             for a in ("enableDnsSupport", "enableDnsHostnames")]
    assert attrs[0]["EnableDnsSupport"]["Value"] and attrs[1]["EnableDnsHostnames"]["Value"]


def test_untagged_group_gets_its_owner_from_the_principal_and_an_alert_for_the_rest(stack):
    aws, net = stack["aws"], stack["net"]
    ec2 = aws.client("ec2")
    group = ec2.create_security_group(GroupName="adhoc", Description="adhoc", VpcId=net.vpc_id)["GroupId"]
    event = events.create_security_group(group, "adhoc", net.vpc_id, aws.account, aws.region,
                                         principal=f"arn:aws:iam::{aws.account}:user/alice")
    result = invoke(stack, "on_api_call", event)
    assert ("TAG.1", "succeeded") in {(d["control"], d["result"]) for d in result["decisions"]}
    tags = {t["Key"]: t["Value"] for t in ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"][0]["Tags"]}
    assert tags == {"Owner": f"arn:aws:iam::{aws.account}:user/alice"}
    tag_alert = next(a for a in alerts(stack) if a["message"]["control"]["id"] == "TAG.1")
    assert set(tag_alert["message"]["evidence"]["MissingTags"]) == {"Environment", "Project", "Owner", "CostCenter",
                                                                     "Compliance"}


def test_a_route_to_the_internet_added_to_a_notebooks_route_table_stops_the_notebook(stack):
    """The route table event names no notebook: the ledger's index of what uses each subnet finds it."""
    aws, net = stack["aws"], stack["net"]
    ec2 = aws.client("ec2")
    create_notebook(aws.client("sagemaker"), aws.account, "nb-private", net.private_subnets[0], [net.sg_notebook_ok],
                    direct_internet="Disabled")
    set_status(aws.account, aws.region, "nb-private", "InService")
    first = invoke(stack, "on_state_change", events.notebook_state_change("nb-private", "InService", aws.account,
                                                                          aws.region))
    assert first["decisions"] == []  # compliant, and now indexed as a user of its subnet
    table = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id",
                                                "Values": [net.private_subnets[0]]}])["RouteTables"][0]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=net.igw_id)
    event = events.api_call("CreateRoute", "aws.ec2", {"routeTableId": table, "destinationCidrBlock": "0.0.0.0/0",
                                                        "gatewayId": net.igw_id}, {"_return": True},
                            aws.account, aws.region)
    result = invoke(stack, "on_api_call", event)
    assert ("NB.3", "nb-private", "succeeded") in {(d["control"], d["resource"], d["result"])
                                                   for d in result["decisions"]}
    assert notebook_status(aws.account, aws.region, "nb-private") == "Stopping"
    assert "ListNotebookInstances" not in aws.calls.ops()


def test_a_deleted_flow_log_makes_its_vpc_create_an_all_flow_log_again(stack):
    aws, net = stack["aws"], stack["net"]
    ec2 = aws.client("ec2")
    # the VPC is read once (here through a notebook's event), which indexes its flow logs
    create_notebook(aws.client("sagemaker"), aws.account, "nb-ok", net.private_subnets[0], [net.sg_notebook_ok],
                    direct_internet="Disabled")
    invoke(stack, "on_api_call", events.create_notebook("nb-ok", aws.account, aws.region, net.private_subnets[0],
                                                        [net.sg_notebook_ok], "Disabled"))
    [flow_log] = ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [net.vpc_id]}])["FlowLogs"]
    ec2.delete_flow_logs(FlowLogIds=[flow_log["FlowLogId"]])
    event = events.api_call("DeleteFlowLogs", "aws.ec2", {"DeleteFlowLogsRequest": {"FlowLogId": {
        "tag": 1, "content": flow_log["FlowLogId"]}}}, {"DeleteFlowLogsResponse": {"unsuccessful": ""}},
        aws.account, aws.region)
    result = invoke(stack, "on_api_call", event)
    assert {(d["control"], d["resource"], d["result"]) for d in result["decisions"]} == {("VPC.3", net.vpc_id,
                                                                                          "succeeded")}
    [created] = ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [net.vpc_id]}])["FlowLogs"]
    assert created["TrafficType"] == "ALL" and created["LogGroupName"] == f"/netguard/vpc-flow-logs/{net.vpc_id}"


def test_a_notebook_quarantined_for_one_control_is_tagged_for_the_other_without_redoing_the_first(stack):
    """Quarantined (stopped, tagged) for NB.3 by an earlier run whose NB.1 claim failed: the next run
    acts for NB.1 only; NB.3's containment already holds, so it is neither redone nor alerted again."""
    aws, net = stack["aws"], stack["net"]
    acct, region = aws.account, aws.region
    sm = aws.client("sagemaker")
    arn = create_notebook(sm, acct, "nb-half", net.public_subnet, [net.sg_notebook_ok])
    set_status(acct, region, "nb-half", "Stopped")
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": QUARANTINE_TAG, "Value": "NB.3"}])
    result = invoke(stack, "on_api_call", events.api_call(
        "UpdateNotebookInstance", "aws.sagemaker", {"notebookInstanceName": "nb-half"}, None, acct, region))
    assert {(d["control"], d["result"]) for d in result["decisions"]} == {("NB.1", "succeeded"),
                                                                         ("NB.3", "already-done")}
    [action] = ledger_items(stack, "action")
    assert [c["S"] for c in action["controls"]] == ["NB.1"]
    assert [a["message"]["control"]["id"] for a in alerts(stack)] == ["NB.1"]
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}
    assert tags[QUARANTINE_TAG] == "NB.1 NB.3" and sagemaker_accepts_tag(QUARANTINE_TAG, tags[QUARANTINE_TAG])
