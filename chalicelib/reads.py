"""What AWS answers, as plain data: not-found errors, the kinds of users an ENI tells, rules, CIDRs, flow
logs and tags in the shapes the collectors and checks read. No client state (see lookups.Lookups)."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import ClientError

from .aws import error_code, error_message

# Kinds of users a network resource can have (the `UsedBy` / `AttachedTo` fields, SG.1/SG.2 scope).
USED_BY_NOTEBOOK = "notebook"
USED_BY_SAGEMAKER = "sagemaker"
USED_BY_VPC_ENDPOINT = "vpc-endpoint"
USED_BY_TRAINING = "training"  # training, processing, tuning and transform jobs
USED_BY_ENDPOINT = "endpoint"  # models served by endpoints
USED_BY_STUDIO = "studio"
USED_BY_OTHER = "other"


def tags_from_list(items: Iterable[Any] | None) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in items or [] if "Key" in t}


NOT_FOUND_CODES = {
    "InvalidGroup.NotFound", "InvalidGroupId.Malformed", "InvalidSubnetID.NotFound",
    "InvalidVpcID.NotFound", "InvalidVpcEndpointId.NotFound", "InvalidVpcEndpoint.NotFound",
    "InvalidRouteTableID.NotFound", "InvalidNetworkAclID.NotFound", "InvalidPrefixListID.NotFound",
    "ResourceNotFound",
}


def missing(exc: ClientError) -> bool:
    code = error_code(exc)
    if code in NOT_FOUND_CODES:
        return True
    # SageMaker answers ValidationException: "RecordNotFound" for a missing notebook, 'Could not find
    # model "arn:..."' (endpoint configuration, endpoint) for the hosting resources.
    message = error_message(exc).lower()
    return code == "ValidationException" and any(words in message for words in ("recordnotfound", "not found",
                                                                                  "could not find"))


def classify_eni(eni: dict[str, Any]) -> set[str]:
    """What kind of resource uses an ENI, from the fields AWS sets on managed interfaces."""
    if eni.get("InterfaceType") == "vpc_endpoint":
        return {USED_BY_VPC_ENDPOINT}
    text = " ".join(str(eni.get(k, "")) for k in ("Description", "RequesterId")).lower()
    if "sagemaker" not in text:
        return {USED_BY_OTHER}
    # The kind of SageMaker user, from the interface description (a heuristic: the resources that name
    # the group or subnet say it for sure, and are merged in as hints).
    for words, kind in ((("notebook",), USED_BY_NOTEBOOK), (("training", "processing", "transform", "tuning"),
                        USED_BY_TRAINING), (("endpoint",), USED_BY_ENDPOINT), (("studio", "domain"), USED_BY_STUDIO)):
        if any(w in text for w in words):
            return {USED_BY_SAGEMAKER, kind}
    return {USED_BY_SAGEMAKER}


def normalize_rule(rule: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: rule[k] for k in ("SecurityGroupRuleId", "GroupId", "IsEgress", "IpProtocol", "FromPort",
                                                "ToPort", "CidrIpv4", "CidrIpv6", "PrefixListId", "Description")
                           if k in rule}
    referenced = (rule.get("ReferencedGroupInfo") or {}).get("GroupId")
    if referenced:
        out["ReferencedGroupId"] = referenced
    return out


def vpc_cidrs(vpc: dict[str, Any]) -> list[str]:
    """The VPC's associated IPv4 and IPv6 CIDR blocks."""
    cidrs = [a["CidrBlock"] for a in vpc.get("CidrBlockAssociationSet", [])
             if a.get("CidrBlockState", {}).get("State", "associated") == "associated"]
    cidrs += [a["Ipv6CidrBlock"] for a in vpc.get("Ipv6CidrBlockAssociationSet", [])
              if a.get("Ipv6CidrBlockState", {}).get("State", "associated") == "associated"]
    if not cidrs and vpc.get("CidrBlock"):
        cidrs.append(vpc["CidrBlock"])
    return sorted(set(cidrs))


def flow_log_view(flow_log: dict[str, Any]) -> dict[str, Any]:
    return {k: flow_log[k] for k in ("FlowLogId", "ResourceId", "TrafficType", "FlowLogStatus", "DeliverLogsStatus",
                                     "LogDestinationType", "LogDestination", "LogGroupName") if k in flow_log}


class BulkTags(dict):
    """Tags read in bulk at the start of a scan or sweep (minutes old, and the tagging index is
    eventually consistent): the pipeline reads them again before acting on the resource."""


def sagemaker_tags_of(lookups: Any, arn: str) -> dict[str, str]:
    """A SageMaker resource's tags: from the bulk read of a scan or sweep (BulkTags), else ListTags."""
    bulk = lookups.bulk_tags(arn)
    if bulk is not None:
        return BulkTags(bulk)
    return sagemaker_tags(lookups.sagemaker, arn)


def sagemaker_tags(sagemaker: Any, arn: str) -> dict[str, str]:
    """A SageMaker resource's tags now (ListTags)."""
    tags: dict[str, str] = {}
    for page in sagemaker.get_paginator("list_tags").paginate(ResourceArn=arn):
        tags.update(tags_from_list(page.get("Tags")))
    return tags


def describe_or_none(describe: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    try:
        return describe()
    except ClientError as exc:
        if missing(exc):
            return None
        raise


def endpoint_service(endpoint: dict[str, Any]) -> str:
    """`com.amazonaws.eu-west-1.sagemaker.api` -> `sagemaker.api`."""
    parts = str(endpoint.get("ServiceName", "")).split(".")
    return ".".join(parts[3:]) if len(parts) > 3 and parts[0] == "com" else str(endpoint.get("ServiceName"))
