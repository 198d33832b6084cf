"""Security groups: their rules (prefix lists resolved), VPC CIDRs and what they are attached to."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..model import SECURITY_GROUP, Resource, ResourceRef
from ..reads import tags_from_list
from .base import TAG_FIELDS, ResourceType, ec2_id_re

ID_RE = ec2_id_re("sg")


def collect(lookups: Any, ref: ResourceRef, hints: frozenset) -> Resource | None:
    group_id = ref.resource_id
    lookups.together(lambda: lookups.security_group(group_id), lambda: lookups.security_group_rules(group_id),
                     lambda: lookups.security_group_users(group_id))
    group = lookups.security_group(ref.resource_id)
    if group is None:
        return None
    rules = [dict(r) for r in lookups.security_group_rules(ref.resource_id)]
    for rule in rules:  # a customer-managed prefix list holds CIDRs of anyone's choosing: 0.0.0.0/0 too
        cidrs = lookups.prefix_list_cidrs(rule["PrefixListId"]) if rule.get("PrefixListId") else None
        if cidrs is not None:
            rule["PrefixListCidrs"] = cidrs
    vpc_id = group.get("VpcId")
    users = set(hints) | lookups.security_group_users(ref.resource_id)
    state = {
        "GroupId": group["GroupId"],
        "GroupName": group.get("GroupName"),
        "VpcId": vpc_id,
        "IsDefault": group.get("GroupName") == "default",
        "VpcCidrs": lookups.vpc_cidrs(vpc_id) if vpc_id else [],
        "AttachedTo": sorted(users),
        "Rules": rules,
    }
    arn = f"arn:aws:ec2:{ref.region}:{group.get('OwnerId', ref.account)}:security-group/{group['GroupId']}"
    return Resource(ref, arn, state, tags_from_list(group.get("Tags")), version="")



def call_refs(name: str, request: Mapping[str, Any], response: Mapping[str, Any]) -> list[Any]:
    """Security group ids named by a CloudTrail record, in both record formats."""
    if name == "CreateSecurityGroup":
        return [response.get("groupId")]
    if name == "ModifySecurityGroupRules":
        wrapped = request.get("ModifySecurityGroupRulesRequest")
        inner = wrapped if isinstance(wrapped, Mapping) else request
        return [inner.get("GroupId") or inner.get("groupId")]
    ids: list[Any] = []
    rule_set = response.get("securityGroupRuleSet")  # eventVersion >= 1.08 records
    if isinstance(rule_set, Mapping) and isinstance(rule_set.get("items"), list):
        ids = [item.get("groupId") for item in rule_set["items"] if isinstance(item, Mapping)]
    if request.get("groupId") is not None or not ids:
        ids.insert(0, request.get("groupId"))
    return ids


TYPE = ResourceType(
    type=SECURITY_GROUP, service="ec2", arn_resource="security-group", id_pattern=ID_RE,
    api_calls=("CreateSecurityGroup", "AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress",
               "ModifySecurityGroupRules"), call_refs=call_refs, config_recorded=True,
    state_fields=frozenset({"GroupId", "GroupName", "VpcId", "IsDefault", "VpcCidrs", "AttachedTo", "Rules"})
    | TAG_FIELDS,
    collect=collect,
)
