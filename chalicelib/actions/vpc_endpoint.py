"""Interface VPC endpoints: enable private DNS (when nothing else in the VPC serves the name); restore sets
it back."""
from __future__ import annotations

from ..model import ALREADY_DONE, SUCCEEDED, VPC_ENDPOINT, Resource
from .base import (
    EC2,
    ActionRequest,
    ActionResult,
    ActionSpec,
    Call,
    Plan,
    RestoreRequest,
    allow,
    attribute_plan,
    check,
    make,
    state_before,
)


def enable_private_dns(req: ActionRequest) -> ActionResult:
    if req.resource.state.get("PrivateDnsEnabled"):
        return ActionResult(ALREADY_DONE, "private DNS already enabled")
    check(make(EC2.modify_vpc_endpoint(VpcEndpointId=req.resource.ref.resource_id, PrivateDnsEnabled=True,
                                       says="enabled private DNS"), req.client))
    return ActionResult(SUCCEEDED, "enabled private DNS: the service's default DNS name now resolves to the endpoint")


def _private_dns_precondition(resource: Resource) -> str | None:
    """AWS refuses private DNS for a name something else in the VPC serves already (another endpoint of
    the service with private DNS, or a private hosted zone associated with the VPC)."""
    conflict = resource.state.get("PrivateDnsConflict")
    return f"{conflict}: remove it (or keep using it) before private DNS can be enabled here" if conflict else None


def plan_private_dns(req: RestoreRequest) -> Plan:
    endpoint_id = req.record.ref.resource_id
    return attribute_plan(req, ("PrivateDnsEnabled",), lambda name, value: Call(
        "ec2", "ModifyVpcEndpoint", {"VpcEndpointId": endpoint_id, name: bool(value)}, f"set {name} back to {value}"))


ENABLE_PRIVATE_DNS = ActionSpec(
    name="enable_private_dns", resource_types=(VPC_ENDPOINT,), permissions=("ec2:ModifyVpcEndpoint",),
    describe="enable private DNS on the interface endpoint", run=enable_private_dns,
    before=state_before("PrivateDnsEnabled"), state_field="VpcDns", act_states=frozenset({"ready"}),
    precondition=_private_dns_precondition, undo=plan_private_dns,
    statements=(allow("FixEndpointPrivateDns", "ec2:ModifyVpcEndpoint", "arn:aws:ec2:*:*:vpc-endpoint/*"),),
)
