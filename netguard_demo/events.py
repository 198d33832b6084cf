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


@functools.lru_cache(maxsize=None)
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
                    direct_internet: str = "Enabled", **kw: Any) -> dict[str, Any]:
    request: dict[str, Any] = {"notebookInstanceName": name, "instanceType": "ml.t3.medium",
                               "roleArn": f"arn:aws:iam::{account}:role/sagemaker-notebook",
                               "directInternetAccess": direct_internet}
    if subnet_id:
        request.update(subnetId=subnet_id, securityGroupIds=group_ids)
    response = {"notebookInstanceArn": f"arn:aws:sagemaker:{region}:{account}:notebook-instance/{name.lower()}"}
    return api_call("CreateNotebookInstance", "aws.sagemaker", request, response, account, region, **kw)


def start_notebook(name: str, account: str, region: str, **kw: Any) -> dict[str, Any]:
    return api_call("StartNotebookInstance", "aws.sagemaker", {"notebookInstanceName": name}, None,
                    account, region, **kw)


def create_security_group(group_id: str, name: str, vpc_id: str, account: str, region: str, **kw: Any) -> dict[str, Any]:
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


def modify_rules(group_id: str, rule_id: str, rule: dict[str, Any], account: str, region: str, **kw: Any) -> dict[str, Any]:
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
