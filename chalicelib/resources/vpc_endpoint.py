"""VPC endpoints: private DNS (and what would conflict with it), policy, security groups, subnets."""
from __future__ import annotations

from typing import Any

from ..checks import live_endpoint
from ..model import VPC_ENDPOINT, Resource, ResourceRef
from ..reads import endpoint_service, tags_from_list
from .base import (
    IN_VPC_FIELDS,
    TAG_FIELDS,
    USED_BY_OTHER,
    USED_BY_VPC_ENDPOINT,
    ResourceType,
    ec2_id_re,
    in_vpc,
)


def private_dns_name(endpoint: dict[str, Any], region: str) -> str:
    """The name private DNS would take over: com.amazonaws.<region>.sagemaker.api ->
    api.sagemaker.<region>.amazonaws.com (the service's labels, most specific first)."""
    return ".".join([*reversed(endpoint_service(endpoint).split(".")), region, "amazonaws.com"])


def private_dns_conflict(lookups: Any, endpoint: dict[str, Any]) -> str | None:
    """What in the VPC already serves the endpoint's private DNS name, so that AWS would refuse to enable
    it: another live endpoint of the service with private DNS, or a private hosted zone associated with
    the VPC for that name or a parent of it. None when nothing does."""
    service = endpoint_service(endpoint)
    for other in lookups.vpc_endpoints(endpoint["VpcId"]):
        if (other["VpcEndpointId"] != endpoint["VpcEndpointId"] and endpoint_service(other) == service
                and other.get("PrivateDnsEnabled") and live_endpoint(other)):
            return f"endpoint {other['VpcEndpointId']} of {service} already has private DNS in {endpoint['VpcId']}"
    name = private_dns_name(endpoint, lookups.region)
    for zone in lookups.private_zones(endpoint["VpcId"]):
        zone_name = str(zone.get("Name", "")).rstrip(".").lower()
        if zone_name and (name == zone_name or name.endswith("." + zone_name)):
            return (f"private hosted zone {zone.get('Id')} ({zone_name}) associated with {endpoint['VpcId']} "
                    f"serves {name}")
    return None


def collect(lookups: Any, ref: ResourceRef, hints: frozenset) -> Resource | None:
    endpoint = lookups.vpc_endpoint(ref.resource_id)
    if endpoint is None or not live_endpoint(endpoint):
        return None  # gone, or going: nothing to evaluate
    dns = lookups.vpc_attributes(endpoint["VpcId"])
    groups = []
    for group in endpoint.get("Groups", []):
        found = lookups.security_group(group["GroupId"]) or {}
        users = lookups.security_group_users(group["GroupId"]) - {USED_BY_VPC_ENDPOINT, USED_BY_OTHER}
        groups.append({"GroupId": group["GroupId"], "IsDefault": found.get("GroupName") == "default",
                       "UsedBy": sorted(users)})
    subnets = list(endpoint.get("SubnetIds", []))
    state = {
        "VpcEndpointId": ref.resource_id, "VpcId": endpoint["VpcId"], "Service": endpoint_service(endpoint),
        "VpcEndpointType": endpoint.get("VpcEndpointType"), "State": endpoint.get("State"),
        "PrivateDnsEnabled": bool(endpoint.get("PrivateDnsEnabled")), "SecurityGroups": groups,
        "PolicyDocument": endpoint.get("PolicyDocument"), "VpcConfig": {"Subnets": subnets} if subnets else None,
        "VpcDns": "ready" if dns.get("EnableDnsSupport") and dns.get("EnableDnsHostnames") else "off",
        "PrivateDnsConflict": None,
    }
    if endpoint.get("VpcEndpointType") == "Interface" and not state["PrivateDnsEnabled"]:
        state["PrivateDnsConflict"] = private_dns_conflict(lookups, endpoint)
    in_vpc(lookups, state, subnets)
    arn = f"arn:aws:ec2:{ref.region}:{endpoint.get('OwnerId', ref.account)}:vpc-endpoint/{ref.resource_id}"
    return Resource(ref, arn, state, tags_from_list(endpoint.get("Tags")))


TYPE = ResourceType(
    type=VPC_ENDPOINT, service="ec2", arn_resource="vpc-endpoint", id_pattern=ec2_id_re("vpce"),
    api_calls=("CreateVpcEndpoint", "ModifyVpcEndpoint"), config_recorded=True,
    state_fields=frozenset({"VpcEndpointId", "VpcId", "Service", "VpcEndpointType", "State", "PrivateDnsEnabled",
                            "SecurityGroups", "PolicyDocument", "VpcConfig", "VpcDns", "PrivateDnsConflict"})
    | IN_VPC_FIELDS | TAG_FIELDS,
    collect=collect,
)
