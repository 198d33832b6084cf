"""Triggers: every event shape -> resource refs (table-driven), rejects, and the EventBridge patterns
proven against real event shapes by moto's EventBridge (rule -> SQS target)."""
from __future__ import annotations

import copy
import json

import boto3
import pytest
from moto import mock_aws

from chalicelib.errors import IgnoredEvent, InvalidEvent
from chalicelib.handlers import event_patterns
from chalicelib.model import NOTEBOOK, SECURITY_GROUP, ResourceRef
from chalicelib.policy import load_policy
from chalicelib.triggers import from_api_call, from_state_change
from netguard_demo import events

ACCT, REGION = "111122223333", "eu-west-1"
SG, SG2 = "sg-0123456789abcdef0", "sg-0fedcba9876543210"


def nb(name):
    return ResourceRef(NOTEBOOK, name, ACCT, REGION)


def sg(group_id):
    return ResourceRef(SECURITY_GROUP, group_id, ACCT, REGION)


def published_sg_sample():
    """The published 1.05 AuthorizeSecurityGroupIngress event, moved to our account and a real group id."""
    event = copy.deepcopy(events.sample("eventbridge-cloudtrail-ec2-AuthorizeSecurityGroupIngress.json"))
    event.update(account=ACCT, region=REGION)
    event["detail"]["requestParameters"]["groupId"] = SG
    return event


API_CASES = [
    ("CreateNotebookInstance", events.create_notebook("MyNotebook-1", ACCT, REGION, "subnet-0a", [SG]), [nb("MyNotebook-1")]),
    ("CreateNotebookInstance without VPC", events.create_notebook("nb2", ACCT, REGION, None, []), [nb("nb2")]),
    ("StartNotebookInstance", events.start_notebook("nb3", ACCT, REGION), [nb("nb3")]),
    ("UpdateNotebookInstance", events.api_call("UpdateNotebookInstance", "aws.sagemaker",
                                               {"notebookInstanceName": "nb4", "rootAccess": "Enabled"}, None, ACCT, REGION), [nb("nb4")]),
    ("CreateSecurityGroup", events.create_security_group(SG, "web", "vpc-0a", ACCT, REGION), [sg(SG)]),
    ("AuthorizeSecurityGroupIngress 1.05 (published sample)", published_sg_sample(), [sg(SG)]),
    ("AuthorizeSecurityGroupIngress 1.08 with securityGroupRuleSet", events.authorize_ingress(
        SG, [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}], ACCT, REGION,
        rule_set=[{"SecurityGroupRuleId": "sgr-0abc", "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                   "CidrIpv4": "0.0.0.0/0"}]), [sg(SG)]),
    ("ModifySecurityGroupRules", events.modify_rules(SG2, "sgr-0abc", {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                                                       "CidrIpv4": "0.0.0.0/0"}, ACCT, REGION), [sg(SG2)]),
]


@pytest.mark.parametrize("name, event, refs", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_calls_name_the_resources_to_read(name, event, refs):
    trigger = from_api_call(event)
    assert list(trigger.refs) == refs
    assert trigger.context.event_id == event["id"]
    assert trigger.context.principal == event["detail"]["userIdentity"]["arn"]


def test_the_published_sample_keeps_its_principal_and_event_id():
    trigger = from_api_call(published_sg_sample())
    assert trigger.context.principal == "arn:aws:iam::000000000000:user/test"
    assert trigger.context.event_name == "AuthorizeSecurityGroupIngress"


def test_state_change_names_the_notebook_and_takes_nothing_else_from_the_event():
    event = events.notebook_state_change("BasicNotebookInstance-x4CC6ZFJzqJJ", "InService", ACCT, REGION,
                                         "subnet-0bd8f38199152daa5", [SG])
    trigger = from_state_change(event)
    assert trigger.refs == (nb("BasicNotebookInstance-x4CC6ZFJzqJJ"),)
    assert trigger.context.trigger == "state-change"


def _without(event, *path):
    event = copy.deepcopy(event)
    target = event
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return event


def _with(event, value, *path):
    event = copy.deepcopy(event)
    target = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return event


CREATE = events.create_notebook("nb", ACCT, REGION, "subnet-0a", [SG])

REJECTS = [
    ("not an object", [CREATE], InvalidEvent),
    ("no id", _without(CREATE, "id"), InvalidEvent),
    ("no detail", _without(CREATE, "detail"), InvalidEvent),
    ("detail is a string", _with(CREATE, "oops", "detail"), InvalidEvent),
    ("bad account", _with(CREATE, "<hostingAccountId>", "account"), InvalidEvent),
    ("bad region", _with(CREATE, "mars-1", "region"), InvalidEvent),
    ("no eventName", _without(CREATE, "detail", "eventName"), InvalidEvent),
    ("no notebook name", _without(CREATE, "detail", "requestParameters", "notebookInstanceName"), InvalidEvent),
    ("notebook name with a slash", _with(CREATE, "../etc", "detail", "requestParameters", "notebookInstanceName"), InvalidEvent),
    ("requestParameters null", _with(CREATE, None, "detail", "requestParameters"), InvalidEvent),
    ("sg id not an sg id", _with(published_sg_sample(), "sg-'; drop", "detail", "requestParameters", "groupId"), InvalidEvent),
    ("forged source", _with(CREATE, "my.app", "source"), IgnoredEvent),
    ("another detail-type", _with(CREATE, "Scheduled Event", "detail-type"), IgnoredEvent),
    ("the call failed", _with(CREATE, "ValidationException", "detail", "errorCode"), IgnoredEvent),
    ("a call we do not watch", _with(CREATE, "DeleteNotebookInstance", "detail", "eventName"), IgnoredEvent),
]


@pytest.mark.parametrize("name, event, error", REJECTS, ids=[r[0] for r in REJECTS])
def test_malformed_and_foreign_events_are_rejected_with_their_id(name, event, error):
    with pytest.raises(error) as err:
        from_api_call(event)
    if isinstance(event, dict) and "id" in event:
        assert err.value.event_id == event["id"]


def test_state_change_rejects_missing_status_and_the_sample_placeholder_account():
    sample = events.sample("eventbridge-sagemaker-notebook-instance-state-change.json")
    with pytest.raises(InvalidEvent, match="account"):
        from_state_change(sample)  # the published sample's account is the literal "<hostingAccountId>"
    event = events.notebook_state_change("nb", "InService", ACCT, REGION)
    with pytest.raises(InvalidEvent, match="NotebookInstanceStatus"):
        from_state_change(_without(event, "detail", "NotebookInstanceStatus"))


# --- EventBridge patterns, applied by moto's EventBridge to the real shapes ---------------------

def _delivered(pattern, candidates):
    """Which candidate events an EventBridge rule with `pattern` delivers to its SQS target."""
    with mock_aws():
        evb = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(QueueName="t")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        evb.put_rule(Name="r", EventPattern=json.dumps(pattern))
        evb.put_targets(Rule="r", Targets=[{"Id": "q", "Arn": arn}])
        for event in candidates:
            evb.put_events(Entries=[{"Source": event["source"], "DetailType": event["detail-type"],
                                     "Detail": json.dumps(event["detail"])}])
        got = []
        while True:
            msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not msgs:
                break
            for m in msgs:
                got.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return got


PATTERNS = event_patterns(load_policy())


def test_api_call_pattern_matches_every_watched_call_and_nothing_else():
    wanted = [case[1] for case in API_CASES]
    unwanted = [
        _with(CREATE, "DeleteNotebookInstance", "detail", "eventName"),
        _with(CREATE, "AccessDenied", "detail", "errorCode"),  # failed calls never reach the function
        events.sample("eventbridge-sagemaker-endpoint-state-change.awsdocs.json"),
        events.notebook_state_change("nb", "InService", ACCT, REGION),
    ]
    got = _delivered(PATTERNS["on_api_call"], wanted + unwanted)
    assert sorted(e["detail"]["eventID"] for e in got) == sorted(e["detail"]["eventID"] for e in wanted)


def test_api_call_pattern_is_derived_from_the_controls():
    pattern = PATTERNS["on_api_call"]
    assert pattern["source"] == ["aws.ec2", "aws.sagemaker"]
    assert set(pattern["detail"]["eventName"]) == {
        "CreateNotebookInstance", "UpdateNotebookInstance", "StartNotebookInstance",
        "CreateSecurityGroup", "AuthorizeSecurityGroupIngress", "ModifySecurityGroupRules"}


def test_state_change_pattern_takes_pending_and_inservice_notebooks_only():
    states = ["Pending", "InService", "Stopping", "Stopped", "Failed", "Deleting", "Updating"]
    candidates = [events.notebook_state_change(f"nb-{s.lower()}", s, ACCT, REGION) for s in states]
    got = _delivered(PATTERNS["on_state_change"], candidates + [CREATE])
    assert sorted(e["detail"]["NotebookInstanceStatus"] for e in got) == ["InService", "Pending"]
