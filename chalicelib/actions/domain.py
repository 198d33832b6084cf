"""Studio domains: AppNetworkAccessType=VpcOnly; restore sets it back (both only while no app runs)."""
from __future__ import annotations

from ..model import ALREADY_DONE, DOMAIN, SUCCEEDED, Resource
from .base import (
    SAGEMAKER,
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


def _vpc_only_precondition(resource: Resource) -> str | None:
    """UpdateDomain(VpcOnly) needs security groups in the domain's default user settings, and is refused
    once an RStudio domain execution role is set."""
    state = resource.state
    if state.get("RStudioDomainExecutionRole"):
        return "the domain has an RStudio domain execution role, with which AWS refuses to change AppNetworkAccessType"
    if not state.get("DefaultSecurityGroups"):
        return ("VpcOnly needs security groups in the domain's default user settings (DefaultUserSettings."
                "SecurityGroups): add one that allows what Studio needs, then netguard can switch the domain")
    return None


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


DOMAIN_VPC_ONLY = ActionSpec(
    name="domain_vpc_only", resource_types=(DOMAIN,), permissions=("sagemaker:UpdateDomain",),
    describe="set the domain's AppNetworkAccessType to VpcOnly (only while no app runs)", run=domain_vpc_only,
    before=state_before("AppNetworkAccessType"), state_field="AppsState", act_states=frozenset({"none"}),
    defer_states=frozenset({"running"}), precondition=_vpc_only_precondition, undo=plan_domain,
    statements=(allow("DomainsVpcOnly", "sagemaker:UpdateDomain", "arn:aws:sagemaker:*:*:domain/*"),),
)
