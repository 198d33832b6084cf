"""Real-shaped events for tests and the demo, built from the published samples in tests/events/.

The EventBridge envelope comes from the EC2 CloudTrail sample, the CloudTrail record fields from
the SageMaker CreateEndpoint record, the notebook state change from the native sample. Only ids,
names, parameters, account and region are replaced.
"""
from __future__ import annotations

import copy
import functools
import json
import uuid
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent.parent / "tests" / "events"
PRINCIPAL = "arn:aws:iam::{account}:user/data-scientist"


@functools.cache
def sample(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))


def _new_id() -> str:
    return str(uuid.uuid4())


def api_call(event_name: str, source: str, request: dict[str, Any], response: dict[str, Any] | None,
             account: str, region: str, principal: str | None = None, event_version: str = "1.08",
             event_id: str | None = None) -> dict[str, Any]:
    """An EventBridge 'AWS API Call via CloudTrail' event for one successful call."""
    envelope = copy.deepcopy(sample("eventbridge-cloudtrail-ec2-AuthorizeSecurityGroupIngress.json"))
    record = copy.deepcopy(sample("cloudtrail-record-sagemaker-CreateEndpoint.awsdocs.json"))
    principal = principal or PRINCIPAL.format(account=account)
    record.update({
        "eventVersion": event_version,
        "eventSource": f"{source.split('.', 1)[1]}.amazonaws.com",
        "eventName": event_name,
        "awsRegion": region,
        "requestParameters": request,
        "responseElements": response,
        "requestID": _new_id(),
        "eventID": _new_id(),
        "recipientAccountId": account,
    })
    record["userIdentity"].update({"arn": principal, "accountId": account, "userName": principal.rsplit("/", 1)[-1]})
    envelope.update({"id": event_id or _new_id(), "source": source, "account": account, "region": region,
                     "detail": record})
    return envelope


def create_notebook(name: str, account: str, region: str, subnet_id: str | None, group_ids: list[str],
                    direct_internet: str = "Enabled", tags: dict[str, str] | None = None, **kw: Any) -> dict[str, Any]:
    request: dict[str, Any] = {"notebookInstanceName": name, "instanceType": "ml.t3.medium",
                               "roleArn": f"arn:aws:iam::{account}:role/sagemaker-notebook",
                               "directInternetAccess": direct_internet}
    if tags:
        request["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
    if subnet_id:
        request.update(subnetId=subnet_id, securityGroupIds=group_ids)
    response = {"notebookInstanceArn": f"arn:aws:sagemaker:{region}:{account}:notebook-instance/{name.lower()}"}
    return api_call("CreateNotebookInstance", "aws.sagemaker", request, response, account, region, **kw)


def start_notebook(name: str, account: str, region: str, **kw: Any) -> dict[str, Any]:
    return api_call("StartNotebookInstance", "aws.sagemaker", {"notebookInstanceName": name}, None,
                    account, region, **kw)


def create_security_group(group_id: str, name: str, vpc_id: str, account: str, region: str,
                          **kw: Any) -> dict[str, Any]:
    request = {"groupName": name, "groupDescription": name, "vpcId": vpc_id}
    response = {"requestId": _new_id(), "_return": True, "groupId": group_id}
    return api_call("CreateSecurityGroup", "aws.ec2", request, response, account, region, **kw)


def authorize_ingress(group_id: str, permissions: list[dict[str, Any]], account: str, region: str,
                      rule_set: list[dict[str, Any]] | None = None, **kw: Any) -> dict[str, Any]:
    """Old records (eventVersion 1.05) carry only ipPermissions; newer ones add securityGroupRuleSet."""
    items = []
    for perm in permissions:
        item: dict[str, Any] = {"ipProtocol": perm["IpProtocol"], "fromPort": perm.get("FromPort"),
                                "toPort": perm.get("ToPort"), "groups": {}, "ipRanges": {}, "ipv6Ranges": {},
                                "prefixListIds": {}}
        if perm.get("IpRanges"):
            item["ipRanges"] = {"items": [{"cidrIp": r["CidrIp"]} for r in perm["IpRanges"]]}
        if perm.get("Ipv6Ranges"):
            item["ipv6Ranges"] = {"items": [{"cidrIpv6": r["CidrIpv6"]} for r in perm["Ipv6Ranges"]]}
        items.append(item)
    request = {"groupId": group_id, "ipPermissions": {"items": items}}
    response: dict[str, Any] = {"requestId": _new_id(), "_return": True}
    if rule_set is not None:
        response["securityGroupRuleSet"] = {"items": [
            {"securityGroupRuleId": r["SecurityGroupRuleId"], "groupId": group_id, "groupOwnerId": account,
             "isEgress": False, "ipProtocol": r.get("IpProtocol"), "fromPort": r.get("FromPort"),
             "toPort": r.get("ToPort"), **({"cidrIpv4": r["CidrIpv4"]} if r.get("CidrIpv4") else {}),
             **({"cidrIpv6": r["CidrIpv6"]} if r.get("CidrIpv6") else {})}
            for r in rule_set]}
    version = "1.08" if rule_set is not None else "1.05"
    return api_call("AuthorizeSecurityGroupIngress", "aws.ec2", request, response, account, region,
                    event_version=version, **kw)


def modify_rules(group_id: str, rule_id: str, rule: dict[str, Any], account: str, region: str,
                 **kw: Any) -> dict[str, Any]:
    request = {"ModifySecurityGroupRulesRequest": {"GroupId": group_id, "SecurityGroupRule": {
        "SecurityGroupRuleId": rule_id, "SecurityGroupRule": rule}}}
    return api_call("ModifySecurityGroupRules", "aws.ec2", request, {"_return": True}, account, region, **kw)


def notebook_state_change(name: str, status: str, account: str, region: str, subnet_id: str | None = None,
                          group_ids: list[str] | None = None, direct_internet: str = "Enabled",
                          event_id: str | None = None) -> dict[str, Any]:
    event = copy.deepcopy(sample("eventbridge-sagemaker-notebook-instance-state-change.json"))
    arn = f"arn:aws:sagemaker:{region}:{account}:notebook-instance/{name.lower()}"
    event.update({"id": event_id or _new_id(), "account": account, "region": region, "resources": [arn]})
    detail = event["detail"]
    detail.update({"NotebookInstanceArn": arn, "NotebookInstanceName": name, "NotebookInstanceStatus": status,
                   "DirectInternetAccess": direct_internet, "SecurityGroups": group_ids or [],
                   "RoleArn": f"arn:aws:iam::{account}:role/sagemaker-notebook", "Tags": {}})
    if subnet_id:
        detail["SubnetId"] = subnet_id
    else:
        detail.pop("SubnetId", None)
        detail.pop("NetworkInterfaceId", None)
    detail.pop("KmsKeyId", None)
    return event


# ------------------------------------------------------------------------------------- AWS Config


def config_rule_invocation(resource_type: str, resource_id: str, account: str, region: str,
                           resource_name: str | None = None, status: str = "OK", left_scope: bool = False,
                           rule_name: str = "netguard-sagemaker-network", token: str = "TESTMODE",
                           configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """A custom rule invocation for one configuration item, shaped like the published security-group
    sample (its configurationItem fields), with the resource replaced."""
    event = copy.deepcopy(sample("config-custom-rule-invocation-securitygroup.json"))
    invoking = json.loads(event["invokingEvent"])
    item = invoking["configurationItem"]
    arn_kind = {"AWS::SageMaker::NotebookInstance": ("sagemaker", "notebook-instance/"),
                "AWS::EC2::SecurityGroup": ("ec2", "security-group/"), "AWS::EC2::VPC": ("ec2", "vpc/"),
                "AWS::EC2::Subnet": ("ec2", "subnet/"), "AWS::SageMaker::Model": ("sagemaker", "model/")}
    service, prefix = arn_kind.get(resource_type, ("ec2", ""))
    item.update({"resourceType": resource_type, "resourceId": resource_id, "resourceName": resource_name,
                 "awsAccountId": account, "awsRegion": region, "configurationItemStatus": status,
                 # SageMaker lower-cases the names in its ARNs; Config copies the ARN as is
                 "ARN": f"arn:aws:{service}:{region}:{account}:{prefix}" + (
                     (resource_name or resource_id).lower() if service == "sagemaker" else resource_id),
                 "configuration": configuration if configuration is not None else {}, "relationships": []})
    event.update({"invokingEvent": json.dumps(invoking), "resultToken": token, "eventLeftScope": left_scope,
                  "configRuleName": rule_name, "accountId": account,
                  "configRuleArn": f"arn:aws:config:{region}:{account}:config-rule/config-rule-abc123"})
    return event


def config_oversized_invocation(resource_type: str, resource_id: str, account: str, region: str,
                                resource_name: str | None = None, token: str = "TESTMODE") -> dict[str, Any]:
    """An OversizedConfigurationItemChangeNotification: Config sends a summary, not the item."""
    event = config_rule_invocation(resource_type, resource_id, account, region, resource_name, token=token)
    item = json.loads(event["invokingEvent"])["configurationItem"]
    summary = {k: item[k] for k in ("configurationItemCaptureTime", "awsAccountId", "configurationItemStatus",
                                    "resourceType", "resourceId", "resourceName", "awsRegion",
                                    "configurationStateId", "ARN")}
    event["invokingEvent"] = json.dumps({"configurationItemSummary": summary,
                                         "messageType": "OversizedConfigurationItemChangeNotification",
                                         "notificationCreationTime": "2026-11-27T10:00:00.000Z",
                                         "recordVersion": "1.0"})
    return event


def config_scheduled_invocation(account: str, region: str, token: str = "TESTMODE",
                                rule_name: str = "netguard-sagemaker-network") -> dict[str, Any]:
    """The published periodic invocation, for our account, region and rule."""
    event = copy.deepcopy(sample("config-custom-rule-invocation-periodic.awsdocs.json"))
    invoking = json.loads(event["invokingEvent"])
    invoking["awsAccountId"] = account
    event.update({"invokingEvent": json.dumps(invoking), "resultToken": token, "accountId": account,
                  "configRuleName": rule_name,
                  "configRuleArn": f"arn:aws:config:{region}:{account}:config-rule/config-rule-abc123"})
    return event


def compliance_change(rule_name: str, resource_type: str, resource_id: str, account: str, region: str,
                      compliance: str = "NON_COMPLIANT") -> dict[str, Any]:
    """An EventBridge "Config Rules Compliance Change" event: the envelope of the EventBridge sample,
    the detail of the published compliance notification (the same fields Config puts in `detail`)."""
    envelope = copy.deepcopy(sample("eventbridge-cloudtrail-ec2-AuthorizeSecurityGroupIngress.json"))
    detail = copy.deepcopy(sample("config-compliance-change-notification-sns.awsdocs.json")["Message"])
    qualifier = {"configRuleName": rule_name, "resourceType": resource_type, "resourceId": resource_id}
    detail.update({"awsAccountId": account, "configRuleName": rule_name, "resourceType": resource_type,
                   "resourceId": resource_id, "awsRegion": region,
                   "configRuleARN": f"arn:aws:config:{region}:{account}:config-rule/config-rule-xyz789"})
    detail["newEvaluationResult"]["complianceType"] = compliance
    detail["newEvaluationResult"]["evaluationResultIdentifier"]["evaluationResultQualifier"] = qualifier
    detail["oldEvaluationResult"]["evaluationResultIdentifier"]["evaluationResultQualifier"] = dict(qualifier)
    detail["oldEvaluationResult"]["complianceType"] = "COMPLIANT" if compliance != "COMPLIANT" else "NON_COMPLIANT"
    envelope.update({"id": _new_id(), "source": "aws.config", "detail-type": "Config Rules Compliance Change",
                     "account": account, "region": region, "detail": detail, "resources": []})
    return envelope


def create_mount_target(answer: dict[str, Any], account: str, region: str,
                        principal: str | None = None) -> dict[str, Any]:
    """CreateMountTarget, as CloudTrail records it: the request names the file system and subnet, the
    response (the MountTargetDescription, camelCase) the new mount target's id."""
    request = {"fileSystemId": answer["FileSystemId"], "subnetId": answer["SubnetId"]}
    response = {"ownerId": account, "mountTargetId": answer["MountTargetId"], "fileSystemId": answer["FileSystemId"],
                "subnetId": answer["SubnetId"], "lifeCycleState": answer.get("LifeCycleState", "creating"),
                "ipAddress": answer.get("IpAddress"), "networkInterfaceId": answer.get("NetworkInterfaceId"),
                "vpcId": answer.get("VpcId")}
    return api_call("CreateMountTarget", "aws.elasticfilesystem", request, response, account, region, principal)
