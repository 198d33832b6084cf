"""Interface VPC endpoints: enable private DNS (when nothing else in the VPC serves the name); restore sets
it back."""
from __future__ import annotations

from ..model import ALREADY_DONE, SUCCEEDED
from .base import (
    EC2,
    ActionRequest,
    ActionResult,
    Call,
    Plan,
    RestoreRequest,
    attribute_plan,
    check,
    make,
)


def enable_private_dns(req: ActionRequest) -> ActionResult:
    if req.resource.state.get("PrivateDnsEnabled"):
        return ActionResult(ALREADY_DONE, "private DNS already enabled")
    check(make(EC2.modify_vpc_endpoint(VpcEndpointId=req.resource.ref.resource_id, PrivateDnsEnabled=True,
                                       says="enabled private DNS"), req.client))
    return ActionResult(SUCCEEDED, "enabled private DNS: the service's default DNS name now resolves to the endpoint")


def plan_private_dns(req: RestoreRequest) -> Plan:
    endpoint_id = req.record.ref.resource_id
    return attribute_plan(req, ("PrivateDnsEnabled",), lambda name, value: Call(
        "ec2", "ModifyVpcEndpoint", {"VpcEndpointId": endpoint_id, name: bool(value)}, f"set {name} back to {value}"))
