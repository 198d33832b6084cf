"""VPCs: DNS attributes, flow logs, essential endpoints, who uses them and their environments (VPC.11)."""
from __future__ import annotations

from typing import Any

from ..model import VPC, Resource, ResourceRef
from ..reads import tags_from_list, vpc_cidrs
from .base import TAG_FIELDS, ResourceType, ec2_id_re


def endpoint_service(endpoint: dict[str, Any]) -> str:
    """`com.amazonaws.eu-west-1.sagemaker.api` -> `sagemaker.api`."""
    parts = str(endpoint.get("ServiceName", "")).split(".")
    return ".".join(parts[3:]) if len(parts) > 3 and parts[0] == "com" else str(endpoint.get("ServiceName"))


def collect(lookups: Any, ref: ResourceRef, hints: frozenset) -> Resource | None:
    vpc_id = ref.resource_id
    lookups.together(lambda: lookups.vpc(vpc_id), lambda: lookups.vpc_attributes(vpc_id),
                     lambda: lookups.flow_logs(vpc_id), lambda: lookups.vpc_users(vpc_id),
                     lambda: lookups.vpc_endpoints(vpc_id))
    vpc = lookups.vpc(ref.resource_id)
    if vpc is None:
        return None
    state = {
        "VpcId": ref.resource_id,
        "IsDefault": bool(vpc.get("IsDefault")),
        "CidrBlocks": vpc_cidrs(vpc),
        **lookups.vpc_attributes(ref.resource_id),
        "FlowLogs": lookups.flow_logs(ref.resource_id),
        "UsedBy": sorted(set(hints) | lookups.vpc_users(ref.resource_id)),
        "Endpoints": [{"VpcEndpointId": e["VpcEndpointId"], "Service": endpoint_service(e),
                       "VpcEndpointType": e.get("VpcEndpointType"), "State": e.get("State")}
                      for e in lookups.vpc_endpoints(ref.resource_id)],
    }
    arn = f"arn:aws:ec2:{ref.region}:{vpc.get('OwnerId', ref.account)}:vpc/{ref.resource_id}"
    return Resource(ref, arn, state, tags_from_list(vpc.get("Tags")))



TYPE = ResourceType(
    type=VPC, service="ec2", arn_resource="vpc", id_pattern=ec2_id_re("vpc"),
    # an endpoint created in a VPC changes the VPC's essential endpoints (VPC.4)
    api_calls=("CreateVpc", "ModifyVpcAttribute", "CreateFlowLogs", "CreateVpcEndpoint"), config_recorded=True,
    # EnableDnsSupport/EnableDnsHostnames: Lookups.vpc_attributes; Environments: added by the Collector
    state_fields=frozenset({"VpcId", "IsDefault", "CidrBlocks", "EnableDnsSupport", "EnableDnsHostnames", "FlowLogs",
                            "UsedBy", "Endpoints", "Environments"}) | TAG_FIELDS,
    collect=collect,
)
