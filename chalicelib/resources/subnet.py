"""Subnets: whether they are private (routes, public IPs on launch), their network ACL, and who uses them."""
from __future__ import annotations

from typing import Any

from ..model import SUBNET, Resource, ResourceRef
from ..reads import tags_from_list
from .base import TAG_FIELDS, ResourceType, ec2_id_re


def collect(lookups: Any, ref: ResourceRef, hints: frozenset) -> Resource | None:
    subnet_id = ref.resource_id
    lookups.together(lambda: lookups.subnet_view(subnet_id), lambda: lookups.network_acl(subnet_id),
                     lambda: lookups.subnet_users(subnet_id))
    view = lookups.subnet_view(ref.resource_id)
    if view is None:
        return None
    subnet = lookups.subnet(ref.resource_id) or {}
    acl = lookups.network_acl(ref.resource_id) or {}
    state = {**view, "UsedBy": sorted(set(hints) | lookups.subnet_users(ref.resource_id)),
             "NetworkAcl": {"NetworkAclId": acl.get("NetworkAclId"), "Entries": [
                 {k: e[k] for k in ("RuleNumber", "Egress", "Protocol", "RuleAction", "CidrBlock", "Ipv6CidrBlock",
                                    "PortRange") if k in e} for e in acl.get("Entries", [])]}}
    arn = subnet.get("SubnetArn") or f"arn:aws:ec2:{ref.region}:{ref.account}:subnet/{ref.resource_id}"
    return Resource(ref, arn, state, tags_from_list(subnet.get("Tags")))



TYPE = ResourceType(
    type=SUBNET, service="ec2", arn_resource="subnet", id_pattern=ec2_id_re("subnet"),
    api_calls=("CreateSubnet", "ModifySubnetAttribute", "AssociateRouteTable"), config_recorded=True,
    # what a subnet view holds (Lookups.subnet_view), its users and network ACL
    state_fields=frozenset({"SubnetId", "VpcId", "AvailabilityZone", "MapPublicIpOnLaunch", "RouteTable", "UsedBy",
                            "NetworkAcl"}) | TAG_FIELDS,
    collect=collect,
)
