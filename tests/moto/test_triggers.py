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
from chalicelib.model import (
    DOMAIN,
    ENDPOINT,
    MODEL,
    NOTEBOOK,
    PROCESSING_JOB,
    SECURITY_GROUP,
    SUBNET,
    TRAINING_JOB,
    TRANSFORM_JOB,
    TUNING_JOB,
    VPC,
    VPC_ENDPOINT,
    ResourceRef,
)
from chalicelib.policy import load_policy
from chalicelib.triggers import from_api_call, from_state_change
from netguard_testkit import events

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


def _published_create_endpoint():
    """The published CloudTrail record of CreateEndpoint, in the EventBridge envelope of the EC2 sample."""
    envelope = copy.deepcopy(events.sample("eventbridge-cloudtrail-ec2-AuthorizeSecurityGroupIngress.json"))
    envelope.update(source="aws.sagemaker", account=ACCT, region=REGION,
                    detail=copy.deepcopy(events.sample("cloudtrail-record-sagemaker-CreateEndpoint.awsdocs.json")))
    return envelope


API_CASES = [
    ("CreateNotebookInstance", events.create_notebook("MyNotebook-1", ACCT, REGION, "subnet-0a", [SG]),
     [nb("MyNotebook-1")]),
    ("CreateNotebookInstance without VPC", events.create_notebook("nb2", ACCT, REGION, None, []), [nb("nb2")]),
    ("StartNotebookInstance", events.start_notebook("nb3", ACCT, REGION), [nb("nb3")]),
    ("UpdateNotebookInstance", events.api_call("UpdateNotebookInstance", "aws.sagemaker",
                                               {"notebookInstanceName": "nb4", "rootAccess": "Enabled"},
                                               None, ACCT, REGION),
     [nb("nb4")]),
    ("CreateSecurityGroup", events.create_security_group(SG, "web", "vpc-0a", ACCT, REGION), [sg(SG)]),
    ("AuthorizeSecurityGroupIngress 1.05 (published sample)", published_sg_sample(), [sg(SG)]),
    ("AuthorizeSecurityGroupIngress 1.08 with securityGroupRuleSet", events.authorize_ingress(
        SG, [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}], ACCT, REGION,
        rule_set=[{"SecurityGroupRuleId": "sgr-0abc", "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                   "CidrIpv4": "0.0.0.0/0"}]), [sg(SG)]),
    ("CreateTrainingJob", events.api_call("CreateTrainingJob", "aws.sagemaker", {"trainingJobName": "train-1"},
                                          {"trainingJobArn": "arn"}, ACCT, REGION),
     [ResourceRef(TRAINING_JOB, "train-1", ACCT, REGION)]),
    ("CreateProcessingJob", events.api_call("CreateProcessingJob", "aws.sagemaker", {"processingJobName": "prep-1"},
                                            None, ACCT, REGION), [ResourceRef(PROCESSING_JOB, "prep-1", ACCT, REGION)]),
    ("CreateHyperParameterTuningJob", events.api_call("CreateHyperParameterTuningJob", "aws.sagemaker",
                                                      {"hyperParameterTuningJobName": "hpo-1"}, None, ACCT, REGION),
     [ResourceRef(TUNING_JOB, "hpo-1", ACCT, REGION)]),
    ("CreateTransformJob", events.api_call("CreateTransformJob", "aws.sagemaker", {"transformJobName": "batch-1"},
                                           None, ACCT, REGION), [ResourceRef(TRANSFORM_JOB, "batch-1", ACCT, REGION)]),
    ("CreateModel", events.api_call("CreateModel", "aws.sagemaker", {"modelName": "m-1"}, None, ACCT, REGION),
     [ResourceRef(MODEL, "m-1", ACCT, REGION)]),
    ("CreateEndpoint (the published record)", _published_create_endpoint(), [ResourceRef(ENDPOINT, "ExampleEndpoint",
                                                                                          ACCT, REGION)]),
    ("CreateDomain (id from the response ARN)", events.api_call(
        "CreateDomain", "aws.sagemaker", {"domainName": "studio"},
        {"domainArn": f"arn:aws:sagemaker:{REGION}:{ACCT}:domain/d-abc123xyz", "url": "https://x"}, ACCT, REGION),
     [ResourceRef(DOMAIN, "d-abc123xyz", ACCT, REGION)]),
    ("UpdateDomain", events.api_call("UpdateDomain", "aws.sagemaker", {"domainId": "d-abc123xyz"}, None, ACCT, REGION),
     [ResourceRef(DOMAIN, "d-abc123xyz", ACCT, REGION)]),
    ("ModifyVpcAttribute", events.api_call("ModifyVpcAttribute", "aws.ec2", {"vpcId": "vpc-0123456789abcdef0",
                                                                             "enableDnsSupport": {"value": False}},
                                           {"_return": True}, ACCT, REGION),
     [ResourceRef(VPC, "vpc-0123456789abcdef0", ACCT, REGION)]),
    ("CreateVpc (id only in the response)", events.api_call("CreateVpc", "aws.ec2", {"cidrBlock": "10.0.0.0/16"},
                                                            {"vpc": {"vpcId": "vpc-0123456789abcdef1"}}, ACCT, REGION),
     [ResourceRef(VPC, "vpc-0123456789abcdef1", ACCT, REGION)]),
    ("CreateFlowLogs (wrapped request)", events.api_call(
        "CreateFlowLogs", "aws.ec2", {"CreateFlowLogsRequest": {"ResourceId": {"tag": 1,
                                                                               "content": "vpc-0123456789abcdef0"},
                                                                "ResourceType": "VPC", "TrafficType": "REJECT"}},
        None, ACCT, REGION), [ResourceRef(VPC, "vpc-0123456789abcdef0", ACCT, REGION)]),
    ("CreateVpcEndpoint: the VPC and the endpoint", events.api_call(
        "CreateVpcEndpoint", "aws.ec2", {"CreateVpcEndpointRequest": {"VpcId": "vpc-0123456789abcdef0",
                                                                      "ServiceName": "com.amazonaws.eu-west-1.sts"}},
        {"CreateVpcEndpointResponse": {"vpcEndpoint": {"vpcEndpointId": "vpce-0123456789abcdef0",
                                                       "vpcId": "vpc-0123456789abcdef0"}}}, ACCT, REGION),
     [ResourceRef(VPC, "vpc-0123456789abcdef0", ACCT, REGION),
      ResourceRef(VPC_ENDPOINT, "vpce-0123456789abcdef0", ACCT, REGION)]),
    ("CreateTags on two EC2 resources", events.api_call(
        "CreateTags", "aws.ec2", {"resourcesSet": {"items": [{"resourceId": "sg-0123456789abcdef0"},
                                                             {"resourceId": "subnet-0123456789abcdef0"}]},
                                  "tagSet": {"items": [{"key": "netguard:exempt", "value": "*"}]}},
        {"_return": True}, ACCT, REGION),
     [ResourceRef(SUBNET, "subnet-0123456789abcdef0", ACCT, REGION),
      ResourceRef(SECURITY_GROUP, "sg-0123456789abcdef0", ACCT, REGION)]),
    ("DeleteTags on a notebook (SageMaker ARN)", events.api_call(
        "DeleteTags", "aws.sagemaker", {"resourceArn": f"arn:aws:sagemaker:{REGION}:{ACCT}:notebook-instance/nb-7",
                                        "tagKeys": ["Owner"]}, None, ACCT, REGION),
     [ResourceRef(NOTEBOOK, "nb-7", ACCT, REGION)]),
    ("ModifySubnetAttribute", events.api_call("ModifySubnetAttribute", "aws.ec2",
                                              {"subnetId": "subnet-0123456789abcdef0",
                                               "mapPublicIpOnLaunch": {"value": True}},
                                              None, ACCT, REGION),
     [ResourceRef(SUBNET, "subnet-0123456789abcdef0", ACCT, REGION)]),
    ("ModifySecurityGroupRules", events.modify_rules(SG2, "sgr-0abc", {"IpProtocol": "tcp", "FromPort": 22,
                                                                       "ToPort": 22, "CidrIpv4": "0.0.0.0/0"},
                                                     ACCT, REGION), [sg(SG2)]),
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
    ("notebook name with a slash", _with(CREATE, "../etc", "detail", "requestParameters", "notebookInstanceName"),
     InvalidEvent),
    ("requestParameters null", _with(CREATE, None, "detail", "requestParameters"), InvalidEvent),
    ("sg id not an sg id", _with(published_sg_sample(), "sg-'; drop", "detail", "requestParameters", "groupId"),
     InvalidEvent),
    ("forged source", _with(CREATE, "my.app", "source"), IgnoredEvent),
    ("another detail-type", _with(CREATE, "Scheduled Event", "detail-type"), IgnoredEvent),
    ("the call failed", _with(CREATE, "ValidationException", "detail", "errorCode"), IgnoredEvent),
    ("a call we do not watch", _with(CREATE, "DeleteNotebookInstance", "detail", "eventName"), IgnoredEvent),
    ("tags on something netguard does not cover", events.api_call(
        "CreateTags", "aws.ec2", {"resourcesSet": {"items": [{"resourceId": "i-0123456789abcdef0"}]}}, None,
        ACCT, REGION), IgnoredEvent),
    ("a VPC call naming no VPC", events.api_call("ModifyVpcAttribute", "aws.ec2", {"vpcId": "not-a-vpc"}, None,
                                                 ACCT, REGION), InvalidEvent),
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
    assert pattern["source"] == ["aws.ec2", "aws.elasticfilesystem", "aws.sagemaker"]
    assert set(pattern["detail"]["eventName"]) == {
        "CreateNotebookInstance", "UpdateNotebookInstance", "StartNotebookInstance",
        "CreateTrainingJob", "CreateProcessingJob", "CreateHyperParameterTuningJob", "CreateTransformJob",
        "CreateModel", "CreateEndpointConfig", "CreateEndpoint", "UpdateEndpoint", "CreateDomain", "UpdateDomain",
        "CreateVpc", "ModifyVpcAttribute", "CreateFlowLogs", "CreateSubnet", "ModifySubnetAttribute",
        "CreateVpcEndpoint", "ModifyVpcEndpoint", "CreateRoute", "ReplaceRoute", "AssociateRouteTable",
        "ReplaceRouteTableAssociation", "DeleteFlowLogs", "CreateTags", "DeleteTags", "AddTags",
        "CreateSecurityGroup", "AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress",
        "ModifySecurityGroupRules", "CreateMountTarget", "ModifyMountTargetSecurityGroups"}
    only_notebooks = event_patterns(load_policy_only("NB.1"))["on_api_call"]
    assert only_notebooks["source"] == ["aws.ec2", "aws.sagemaker"]  # route changes can make a subnet public
    assert set(only_notebooks["detail"]["eventName"]) == {
        "CreateNotebookInstance", "UpdateNotebookInstance", "StartNotebookInstance",
        "CreateRoute", "ReplaceRoute", "AssociateRouteTable", "ReplaceRouteTableAssociation",
        "DeleteTags", "AddTags"}  # SageMaker's tagging calls only
    only_groups = event_patterns(load_policy_only("SG.1"))["on_api_call"]
    assert only_groups["source"] == ["aws.ec2"] and "DeleteFlowLogs" not in only_groups["detail"]["eventName"]


def load_policy_only(*ids):
    import dataclasses

    policy = load_policy()
    return dataclasses.replace(policy, controls=tuple(c for c in policy.controls if c.id in ids))


def test_state_change_pattern_takes_the_covered_types_and_code_takes_the_statuses_that_need_work():
    states = ["Pending", "InService", "Stopping", "Stopped", "Failed", "Deleting", "Updating"]
    notebooks = [events.notebook_state_change(f"nb-{s.lower()}", s, ACCT, REGION) for s in states]
    training = events.sample("eventbridge-sagemaker-training-job-state-change.awsdocs.json")
    endpoint = events.sample("eventbridge-sagemaker-endpoint-state-change.awsdocs.json")
    got = _delivered(PATTERNS["on_state_change"], notebooks + [training, endpoint, CREATE])
    assert sorted(e["detail-type"] for e in got) == sorted(
        ["SageMaker Notebook Instance State Change"] * len(states) + ["SageMaker Training Job State Change",
                                                                      "SageMaker Endpoint State Change"])
    acted = []
    for event in notebooks:
        try:
            acted.append(from_state_change(event).context.event_name)
        except IgnoredEvent:
            pass
    assert acted == ["NotebookInstanceStatus=Pending", "NotebookInstanceStatus=InService"]


def test_published_training_job_state_change_names_the_job_when_it_runs():
    event = copy.deepcopy(events.sample("eventbridge-sagemaker-training-job-state-change.awsdocs.json"))
    with pytest.raises(IgnoredEvent, match="Completed needs nothing"):
        from_state_change(event)  # the published sample is a Completed job: nothing to stop
    event["detail"]["TrainingJobStatus"] = "InProgress"
    trigger = from_state_change(event)
    assert trigger.refs == (ResourceRef(TRAINING_JOB, "89c96cc8-dded-4739-afcc-6f1dc936701d", "123456789012",
                                        "us-east-1"),)
