"""Subnets: turn off public IPs on launch; restore turns them back on."""
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


def disable_public_ip_on_launch(req: ActionRequest) -> ActionResult:
    if not req.resource.state.get("MapPublicIpOnLaunch"):
        return ActionResult(ALREADY_DONE, "public IPs on launch already off")
    check(make(EC2.modify_subnet_attribute(SubnetId=req.resource.ref.resource_id, MapPublicIpOnLaunch={"Value": False},
                                           says="turned off public IPs on launch"), req.client))
    return ActionResult(SUCCEEDED, "turned off public IPs on launch")


def plan_public_ip(req: RestoreRequest) -> Plan:
    subnet_id = req.record.ref.resource_id
    return attribute_plan(req, ("MapPublicIpOnLaunch",), lambda name, value: Call(
        "ec2", "ModifySubnetAttribute", {"SubnetId": subnet_id, name: {"Value": bool(value)}},
        f"set {name} back to {value}"))
