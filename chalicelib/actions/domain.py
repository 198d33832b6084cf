"""Studio domains: AppNetworkAccessType=VpcOnly; restore sets it back (both only while no app runs)."""
from __future__ import annotations

from ..model import ALREADY_DONE, SUCCEEDED
from .base import (
    SAGEMAKER,
    ActionRequest,
    ActionResult,
    Call,
    Plan,
    RestoreRequest,
    attribute_plan,
    check,
    make,
)


def domain_vpc_only(req: ActionRequest) -> ActionResult:
    """AppNetworkAccessType=VpcOnly; AWS allows it only while no app is InService, Pending or Deleting."""
    if req.resource.state.get("AppNetworkAccessType") == "VpcOnly":
        return ActionResult(ALREADY_DONE, "domain already VpcOnly")
    check(make(SAGEMAKER.update_domain(DomainId=req.resource.ref.resource_id, AppNetworkAccessType="VpcOnly",
                                       says="set AppNetworkAccessType=VpcOnly"), req.client))
    return ActionResult(SUCCEEDED, "set AppNetworkAccessType=VpcOnly: Studio apps now reach AWS only through the VPC")


def plan_domain(req: RestoreRequest) -> Plan:
    """UpdateDomain; AWS accepts a network change only while no Studio app is InService, Pending or Deleting."""
    domain_id = req.record.ref.resource_id
    plan = attribute_plan(req, ("AppNetworkAccessType",), lambda name, value: Call(
        "sagemaker", "UpdateDomain", {"DomainId": domain_id, name: value}, f"set {name} back to {value}"))
    running = req.current.state.get("RunningApps")
    if plan.calls and running:
        note = f"apps {', '.join(running)} run: AWS refuses the change until they are stopped"
        return Plan(plan.calls, plan.unchanged, (note,))
    return plan
