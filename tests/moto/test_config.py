"""AWS Config: the custom rule evaluator (`config_rule`) and managed rules' compliance changes
(`on_compliance_change`), with real-shaped invocations built from the published samples.

moto's PutEvaluations only works with TestMode=True, which netguard sets when Config's result token
is TESTMODE (what test invocations carry); what netguard sent is read from the calls themselves.
The batching limit is shown with botocore's Stubber against the real API shape.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from botocore.stub import Stubber

from chalicelib import configrule, handlers
from chalicelib.configrule import ANNOTATION_MAX, RuleInvocation, config_resource_name, parse_invocation
from chalicelib.errors import IgnoredEvent, InvalidEvent
from chalicelib.policy import load_policy
from conftest import alerts, invoke
from netguard_testkit import events
from netguard_testkit.moto_fidelity import attach_notebook_eni, set_status
from netguard_testkit.world import create_notebook

NOTEBOOK = "AWS::SageMaker::NotebookInstance"
SG = "AWS::EC2::SecurityGroup"


@pytest.fixture
def sent(aws) -> list[dict[str, Any]]:
    """The Evaluations netguard passes to PutEvaluations (each call's list, in order)."""
    calls: list[dict[str, Any]] = []

    def capture(params: dict[str, Any], **_: Any) -> None:
        calls.append({"Evaluations": list(params["Evaluations"]), "TestMode": params.get("TestMode"),
                      "ResultToken": params["ResultToken"]})

    aws.clients.session.events.register("provide-client-params.config.PutEvaluations", capture)
    return calls


def evaluations(sent: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["ComplianceResourceType"], e["ComplianceResourceId"]): e for call in sent for e in call["Evaluations"]}


# ---------------------------------------------------------------------------------- parsing, pure


def test_the_published_samples_parse() -> None:
    change = parse_invocation(events.sample("config-custom-rule-invocation-securitygroup.json"))
    assert (change.message_type, change.account, change.region) == (configrule.CHANGE, "123456789012", "eu-west-1")
    assert change.item["resourceId"] == "sg-e2fb6999" and not change.test_mode
    periodic = parse_invocation(events.sample("config-custom-rule-invocation-periodic.awsdocs.json"))
    assert periodic.message_type == configrule.SCHEDULED and periodic.region == "us-east-2" and periodic.item is None
    instance = parse_invocation(events.sample("config-custom-rule-invocation-change-triggered.awsdocs.json"))
    assert instance.item["resourceType"] == "AWS::EC2::Instance"


@pytest.mark.parametrize("event, error", [
    ("not an object", InvalidEvent),
    ({"configRuleName": "r"}, InvalidEvent),
    ({"configRuleName": "r", "resultToken": "t", "invokingEvent": "{not json"}, InvalidEvent),
    ({"configRuleName": "r", "resultToken": "t", "invokingEvent": json.dumps({"messageType": "Other"})}, IgnoredEvent),
    ({"configRuleName": "r", "resultToken": "t", "accountId": "123456789012",
      "invokingEvent": json.dumps({"messageType": "ConfigurationItemChangeNotification"})}, InvalidEvent),
])
def test_malformed_invocations_are_rejected_with_a_reason(event: Any, error: type) -> None:
    with pytest.raises(error):
        parse_invocation(event, "us-east-1")


def test_sagemaker_resources_are_read_by_name_whatever_id_config_gives() -> None:
    arn = "arn:aws:sagemaker:us-east-1:123456789012:notebook-instance/nb-one"  # SageMaker lower-cases ARNs
    assert config_resource_name(NOTEBOOK, {"resourceId": "NB-One", "resourceName": "NB-One", "ARN": arn}) == "NB-One"
    assert config_resource_name(NOTEBOOK, {"resourceId": "NB-One", "ARN": arn}) == "NB-One"
    assert config_resource_name(NOTEBOOK, {"resourceId": "x", "resourceName": "nb-two"}) == "nb-two"
    assert config_resource_name(NOTEBOOK, {"resourceId": arn}) == "nb-one"  # nothing better: the ARN's name
    assert config_resource_name(SG, {"resourceId": "sg-1", "resourceName": "web"}) == "sg-1"
    assert config_resource_name("AWS::SageMaker::Domain", {"resourceId": "d-abc", "resourceName": "studio"}) == "d-abc"


def test_annotations_stay_within_configs_limit() -> None:
    policy = load_policy()
    from chalicelib.model import NON_COMPLIANT, Finding, Resource, ResourceRef

    ref = ResourceRef(NOTEBOOK, "nb", "123456789012", "us-east-1")
    resource = Resource(ref, "arn", {})
    findings = [Finding(c, resource, NON_COMPLIANT, {}) for c in policy.controls]  # every control fails
    text = configrule.annotation(findings, {})
    assert len(text) == ANNOTATION_MAX and text.endswith("…") and text.startswith(policy.controls[0].id)


def test_evaluations_go_out_in_calls_of_at_most_100(aws) -> None:
    """250 evaluations: three PutEvaluations calls (100, 100, 50), against the real API shape."""
    client = aws.clients.client("config", aws.region, aws.account)
    inv = RuleInvocation(configrule.SCHEDULED, "rule", aws.account, aws.region, "real-token", False,
                         dt.datetime(2026, 11, 27, tzinfo=dt.UTC), None)
    evals = [{"ComplianceResourceType": SG, "ComplianceResourceId": f"sg-{i:08x}", "ComplianceType": "COMPLIANT",
              "OrderingTimestamp": inv.notification_time} for i in range(250)]
    with Stubber(client) as stub:
        for size, start in ((100, 0), (100, 100), (50, 200)):
            stub.add_response("put_evaluations", {"FailedEvaluations": []},
                              {"Evaluations": evals[start:start + size], "ResultToken": "real-token",
                               "TestMode": False})
        assert configrule.put_evaluations(aws.clients, inv, evals) == 0
        stub.assert_no_pending_responses()


# ----------------------------------------------------------------------- the handler, end to end


def test_change_triggered_notebook_is_evaluated_live_and_contained(stack, sent) -> None:
    aws, net = stack["aws"], stack["net"]
    create_notebook(aws.client("sagemaker"), aws.account, "nb-open", net.public_subnet, [net.sg_notebook_ok])
    set_status(aws.account, aws.region, "nb-open", "InService")
    event = events.config_rule_invocation(NOTEBOOK, "nb-open-config-id", aws.account, aws.region, "nb-open")
    result = invoke(stack, "config_rule", event)
    assert result["by_compliance"] == {"NON_COMPLIANT": 1}
    found = evaluations(sent)[(NOTEBOOK, "nb-open-config-id")]  # answered with Config's own id
    assert found["ComplianceType"] == "NON_COMPLIANT" and sent[0]["TestMode"] is True
    assert found["Annotation"].startswith("NB.1") and "NB.3" in found["Annotation"]
    assert "remediate: succeeded" in found["Annotation"]
    # the enforce-mode controls were acted on through the normal pipeline, and alerted
    assert aws.calls.writes() == ["sagemaker:StopNotebookInstance", "sagemaker:AddTags"]
    assert {a["message"]["trigger"] for a in alerts(stack)} == {"config-rule"}


def test_alert_mode_never_remediates_from_config(stack, sent, monkeypatch) -> None:
    aws, net = stack["aws"], stack["net"]
    monkeypatch.setenv("NETGUARD_MODE", "alert")
    handlers.runtime.cache_clear()
    create_notebook(aws.client("sagemaker"), aws.account, "nb-alert", net.public_subnet, [net.sg_notebook_ok])
    set_status(aws.account, aws.region, "nb-alert", "InService")
    result = invoke(stack, "config_rule", events.config_rule_invocation(NOTEBOOK, "nb-alert", aws.account,
                                                                        aws.region, "nb-alert"))
    assert result["by_compliance"] == {"NON_COMPLIANT": 1}
    assert aws.calls.writes() == []
    assert "alert-only" in evaluations(sent)[(NOTEBOOK, "nb-alert")]["Annotation"]


def test_compliant_security_group_and_deleted_or_out_of_scope_resources(stack, sent) -> None:
    aws, net = stack["aws"], stack["net"]
    invoke(stack, "config_rule", events.config_rule_invocation(SG, net.sg_notebook_ok, aws.account, aws.region))
    invoke(stack, "config_rule", events.config_rule_invocation(SG, "sg-0123456789abcdef0", aws.account, aws.region,
                                                               status="ResourceDeleted"))
    invoke(stack, "config_rule", events.config_rule_invocation(SG, net.sg_ssh_open, aws.account, aws.region,
                                                               left_scope=True))
    invoke(stack, "config_rule", events.config_rule_invocation("AWS::EC2::Instance", "i-0abc", aws.account,
                                                               aws.region))
    # a security group Config still lists but that is gone by the time netguard reads it
    invoke(stack, "config_rule", events.config_rule_invocation(SG, "sg-0fedcba9876543210", aws.account, aws.region))
    # the same for a VPC (fuzzing found it: its lookups read together, DescribeVpcAttribute fails on it)
    invoke(stack, "config_rule", events.config_rule_invocation("AWS::EC2::VPC", "vpc-0fedcba9876543210", aws.account,
                                                               aws.region))
    got = {key: e["ComplianceType"] for key, e in evaluations(sent).items()}
    assert got == {(SG, net.sg_notebook_ok): "COMPLIANT", (SG, "sg-0123456789abcdef0"): "NOT_APPLICABLE",
                   (SG, net.sg_ssh_open): "NOT_APPLICABLE", ("AWS::EC2::Instance", "i-0abc"): "NOT_APPLICABLE",
                   (SG, "sg-0fedcba9876543210"): "NOT_APPLICABLE",
                   ("AWS::EC2::VPC", "vpc-0fedcba9876543210"): "NOT_APPLICABLE"}
    assert aws.calls.writes() == []


def test_the_published_security_group_invocation_shape_revokes_open_ssh(stack, sent) -> None:
    """The sample's configuration item (ssh open to the world), pointed at a real group with that rule."""
    aws, net = stack["aws"], stack["net"]
    attach_notebook_eni(aws.client("ec2"), net.private_subnets[0], [net.sg_ssh_open], "nb")  # SG.1's scope
    event = events.sample("config-custom-rule-invocation-securitygroup.json")
    invoking = json.loads(event["invokingEvent"])
    item = invoking["configurationItem"]
    item.update(resourceId=net.sg_ssh_open, awsAccountId=aws.account, awsRegion=aws.region)
    event = {**event, "invokingEvent": json.dumps(invoking), "resultToken": "TESTMODE", "accountId": aws.account}
    result = invoke(stack, "config_rule", event)
    assert result["by_compliance"] == {"NON_COMPLIANT": 1}
    assert "SG.1" in evaluations(sent)[(SG, net.sg_ssh_open)]["Annotation"]
    assert "ec2:RevokeSecurityGroupIngress" in aws.calls.writes()


def test_oversized_notification_fetches_the_item(stack, sent) -> None:
    """moto records no configuration history (ResourceNotDiscovered): the summary's status is used."""
    aws, net = stack["aws"], stack["net"]
    event = events.config_oversized_invocation(SG, net.sg_notebook_ok, aws.account, aws.region)
    invoke(stack, "config_rule", event)
    assert "GetResourceConfigHistory" in aws.calls.ops("config")
    assert evaluations(sent)[(SG, net.sg_notebook_ok)]["ComplianceType"] == "COMPLIANT"


def test_oversized_item_status_comes_from_the_fetched_history(aws) -> None:
    inv = parse_invocation(events.config_oversized_invocation(SG, "sg-1", aws.account, aws.region))
    client = aws.clients.client("config", aws.region, aws.account)
    with Stubber(client) as stub:
        stub.add_response("get_resource_config_history",
                          {"configurationItems": [{"resourceType": SG, "resourceId": "sg-1",
                                                   "configurationItemStatus": "ResourceDeleted"}]},
                          {"resourceType": SG, "resourceId": "sg-1", "limit": 1})
        assert configrule.fetch_item(aws.clients, inv)["configurationItemStatus"] == "ResourceDeleted"


def test_scheduled_notification_evaluates_every_resource_in_scope(stack, sent) -> None:
    aws, net = stack["aws"], stack["net"]
    create_notebook(aws.client("sagemaker"), aws.account, "nb-private", net.private_subnets[0], [net.sg_notebook_ok],
                    direct_internet="Disabled")
    attach_notebook_eni(aws.client("ec2"), net.private_subnets[0], [net.sg_ssh_open], "nb")
    result = invoke(stack, "config_rule", events.config_scheduled_invocation(aws.account, aws.region))
    got = evaluations(sent)
    types = {rtype for rtype, _ in got}
    assert types == {NOTEBOOK, SG, "AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::VPCEndpoint"}
    assert got[(NOTEBOOK, "nb-private")]["ComplianceType"] == "COMPLIANT"
    assert got[(SG, net.sg_ssh_open)]["ComplianceType"] == "NON_COMPLIANT"
    assert result["evaluations"] == len(got)
    assert all(len(call["Evaluations"]) <= 100 for call in sent)


def test_invalid_invocation_is_skipped_without_any_call(stack, sent) -> None:
    result = invoke(stack, "config_rule", {"configRuleName": "r", "resultToken": "t", "invokingEvent": "[]"})
    assert result["skipped"] == "invalid" and sent == [] and stack["aws"].calls.calls == []


# ------------------------------------------------------------------- managed rules' compliance changes


def test_compliance_change_of_a_mapped_rule_runs_the_pipeline(stack) -> None:
    aws, net = stack["aws"], stack["net"]
    attach_notebook_eni(aws.client("ec2"), net.private_subnets[0], [net.sg_ssh_open], "nb")
    event = events.compliance_change("securityhub-restricted-ssh-a1b2c3", SG, net.sg_ssh_open, aws.account,
                                     aws.region)
    result = invoke(stack, "on_compliance_change", event)
    assert ("SG.1", "remediate", "succeeded") in {(d["control"], d["decision"], d["result"])
                                                   for d in result["decisions"]}
    assert aws.calls.writes() == ["ec2:RevokeSecurityGroupIngress"]
    sent_alerts = alerts(stack)
    assert sent_alerts and sent_alerts[0]["message"]["trigger"] == "config-compliance-change"
    assert "INCOMING_SSH_DISABLED" in sent_alerts[0]["message"]["event_name"]


@pytest.mark.parametrize("rule, compliance, reason", [
    ("cloudtrail-enabled", "NON_COMPLIANT", "not one netguard maps"),
    ("restricted-ssh", "COMPLIANT", "not NON_COMPLIANT"),
])
def test_other_rules_and_compliant_results_are_ignored(stack, rule, compliance, reason) -> None:
    aws, net = stack["aws"], stack["net"]
    result = invoke(stack, "on_compliance_change",
                    events.compliance_change(rule, SG, net.sg_ssh_open, aws.account, aws.region, compliance))
    assert result["skipped"] == "ignored" and reason in result["reason"]
    assert aws.calls.writes() == []


def test_a_rule_reporting_a_type_it_does_not_evaluate_is_invalid(stack) -> None:
    aws = stack["aws"]
    result = invoke(stack, "on_compliance_change", events.compliance_change(
        "restricted-ssh", "AWS::EC2::Instance", "i-0abc", aws.account, aws.region))
    assert result["skipped"] == "invalid" and aws.calls.writes() == []


def test_events_from_accounts_netguard_is_not_configured_for_are_ignored(stack, monkeypatch) -> None:
    aws, net = stack["aws"], stack["net"]
    monkeypatch.setenv("NETGUARD_ACCOUNTS", "111111111111")
    monkeypatch.setenv("NETGUARD_HOME_ACCOUNT", "222222222222")
    handlers.runtime.cache_clear()
    result = invoke(stack, "on_compliance_change",
                    events.compliance_change("restricted-ssh", SG, net.sg_ssh_open, aws.account, aws.region))
    assert result["skipped"] == "ignored" and "not one netguard is configured for" in result["reason"]
    assert aws.calls.writes() == []


def test_a_rule_invocation_for_a_region_netguard_does_not_cover_is_ignored(stack, sent, monkeypatch) -> None:
    """Whoever may invoke the function could name any region in the configuration item."""
    aws, net = stack["aws"], stack["net"]
    monkeypatch.setenv("NETGUARD_REGIONS", aws.region)
    handlers.runtime.cache_clear()
    result = invoke(stack, "config_rule", events.config_rule_invocation(SG, net.sg_ssh_open, aws.account,
                                                                        "eu-west-3"))
    assert result["skipped"] == "ignored" and "region eu-west-3" in result["reason"]
    assert aws.calls.writes() == [] and sent == []


def test_compliance_change_pattern_matches_real_events() -> None:
    """The pattern of on_compliance_change, applied by moto's EventBridge to real-shaped events."""
    from test_triggers import _delivered

    from chalicelib.handlers import event_patterns

    pattern = event_patterns(load_policy())["on_compliance_change"]
    acct, region = "123456789012", "us-east-1"
    matching = events.compliance_change("restricted-ssh", SG, "sg-1", acct, region)
    notebook = events.compliance_change("sagemaker-notebook-no-direct-internet-access", NOTEBOOK, "nb", acct, region)
    compliant = events.compliance_change("restricted-ssh", SG, "sg-2", acct, region, "COMPLIANT")
    other_type = events.compliance_change("s3-bucket-public-read-prohibited", "AWS::S3::Bucket", "b", acct, region)
    got = _delivered(pattern, [matching, notebook, compliant, other_type])
    assert sorted(e["detail"]["resourceId"] for e in got) == ["nb", "sg-1"]


def test_a_notebook_named_with_capitals_is_evaluated_not_reported_not_applicable(stack, sent) -> None:
    """The configuration item's ARN is lower-cased; its resourceName and resourceId keep the name's case.
    The evaluation is ordered by the item's capture time, as Config orders its items."""
    aws, net = stack["aws"], stack["net"]
    create_notebook(aws.client("sagemaker"), aws.account, "NB-Prod", net.public_subnet, [net.sg_notebook_ok])
    set_status(aws.account, aws.region, "NB-Prod", "InService")
    event = events.config_rule_invocation(NOTEBOOK, "NB-Prod", aws.account, aws.region, "NB-Prod")
    item = json.loads(event["invokingEvent"])["configurationItem"]
    assert item["ARN"].endswith("notebook-instance/nb-prod")
    result = invoke(stack, "config_rule", event)
    found = evaluations(sent)[(NOTEBOOK, "NB-Prod")]
    assert result["by_compliance"] == {"NON_COMPLIANT": 1} and found["ComplianceType"] == "NON_COMPLIANT"
    captured = dt.datetime.fromisoformat(item["configurationItemCaptureTime"].replace("Z", "+00:00"))
    assert found["OrderingTimestamp"] == captured
