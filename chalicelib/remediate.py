"""Act: named, idempotent remediations. The only module that writes to the resources we guard.

Each action declares the resource type it acts on, the IAM permissions it needs, the resource
states it can act from (and those in which it must be deferred, or is already done), and a pure
`before` that says what it is about to remove so the ledger can record it first (for restore).
"Already stopped", "already revoked", "already tagged" count as success.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from botocore.exceptions import ClientError

from .aws import Clients, error_code, error_message
from .errors import RemediationError
from .model import ALREADY_DONE, NOTEBOOK, SECURITY_GROUP, SUCCEEDED, Resource

QUARANTINE_TAG = "netguard:quarantined"
# What EC2 answers when a rule id is no longer in the group (moto says InvalidPermission.NotFound).
RULE_GONE = ("InvalidSecurityGroupRuleId.NotFound", "InvalidPermission.NotFound")


@dataclass(frozen=True)
class ActionResult:
    result: str  # SUCCEEDED or ALREADY_DONE; failures raise RemediationError
    detail: str


@dataclass(frozen=True)
class ActionSpec:
    name: str
    resource_types: tuple[str, ...]
    permissions: tuple[str, ...]
    describe: str  # what it does, for people (alerts, README)
    run: Callable[[Clients, Resource, tuple[str, ...], tuple[str, ...]], ActionResult]
    before: Callable[[Resource, tuple[str, ...]], Mapping[str, Any]]
    state_field: str | None = None
    act_states: frozenset[str] = frozenset()  # states it can act from
    defer_states: frozenset[str] = frozenset()  # states that will become actable: wait
    done_states: frozenset[str] = frozenset()  # states where the containment already holds

    def readiness(self, resource: Resource) -> str:
        """'act', 'defer', 'done' or 'cannot' for the resource's current state."""
        if self.state_field is None:
            return "act"
        state = resource.state.get(self.state_field)
        if state in self.act_states:
            return "act"
        if state in self.defer_states:
            return "defer"
        if state in self.done_states:
            return "done"
        return "cannot"


def _fail(action: str, exc: ClientError) -> RemediationError:
    return RemediationError(f"{action}: {error_code(exc)}: {error_message(exc)}")


# --- notebooks ---------------------------------------------------------------------------------

def _notebook_before(resource: Resource, targets: tuple[str, ...]) -> Mapping[str, Any]:
    return {
        "NotebookInstanceStatus": resource.state.get("NotebookInstanceStatus"),
        QUARANTINE_TAG: resource.tags.get(QUARANTINE_TAG),
    }


def quarantine_notebook(clients: Clients, resource: Resource, targets: tuple[str, ...],
                        controls: tuple[str, ...]) -> ActionResult:
    """Stop the notebook if it runs, and tag it `netguard:quarantined` with the failed controls.

    Its network settings cannot be changed: the owner must recreate it (said in the alert).
    """
    ref = resource.ref
    sm = clients.client("sagemaker", ref.region, ref.account)
    done: list[str] = []
    if resource.state.get("NotebookInstanceStatus") == "InService":
        try:
            sm.stop_notebook_instance(NotebookInstanceName=ref.resource_id)
            done.append("stopped")
        except ClientError as exc:
            # Someone (or a concurrent invocation) stopped it between our read and our call.
            current = _notebook_status(sm, ref.resource_id)
            if current not in ("Stopping", "Stopped"):
                raise _fail("StopNotebookInstance", exc) from exc
    tag_value = ",".join(sorted(controls))
    if resource.tags.get(QUARANTINE_TAG) != tag_value:
        try:
            sm.add_tags(ResourceArn=resource.arn, Tags=[{"Key": QUARANTINE_TAG, "Value": tag_value}])
        except ClientError as exc:
            raise _fail("AddTags", exc) from exc
        done.append(f"tagged {QUARANTINE_TAG}={tag_value}")
    if not done:
        return ActionResult(ALREADY_DONE, "notebook already stopped and tagged")
    return ActionResult(SUCCEEDED, "; ".join(done) + "; its network settings are immutable: the owner must recreate it")


def _notebook_status(sm: Any, name: str) -> str | None:
    try:
        return sm.describe_notebook_instance(NotebookInstanceName=name).get("NotebookInstanceStatus")
    except ClientError:
        return None


# --- security groups ---------------------------------------------------------------------------

def _rules_before(resource: Resource, targets: tuple[str, ...]) -> Mapping[str, Any]:
    wanted = set(targets)
    return {
        "GroupId": resource.ref.resource_id,
        "Rules": [r for r in resource.state.get("Rules", []) if r.get("SecurityGroupRuleId") in wanted],
    }


def revoke_ingress_rules(clients: Clients, resource: Resource, targets: tuple[str, ...],
                         controls: tuple[str, ...]) -> ActionResult:
    """Revoke exactly these ingress rules by rule id; rules already gone count as revoked."""
    ref = resource.ref
    ec2 = clients.client("ec2", ref.region, ref.account)
    rule_ids = sorted(set(targets))
    if not rule_ids:
        return ActionResult(ALREADY_DONE, "no rule to revoke")
    try:
        ec2.revoke_security_group_ingress(GroupId=ref.resource_id, SecurityGroupRuleIds=rule_ids)
        return ActionResult(SUCCEEDED, f"revoked ingress rules {', '.join(rule_ids)}")
    except ClientError as exc:
        code = error_code(exc)
        if code == "InvalidGroup.NotFound":
            return ActionResult(ALREADY_DONE, "security group no longer exists")
        if code not in RULE_GONE:
            raise _fail("RevokeSecurityGroupIngress", exc) from exc
    # Some rules were already gone: the call is all-or-nothing, so revoke the rest one by one.
    revoked, gone = [], []
    for rule_id in rule_ids:
        try:
            ec2.revoke_security_group_ingress(GroupId=ref.resource_id, SecurityGroupRuleIds=[rule_id])
            revoked.append(rule_id)
        except ClientError as exc:
            if error_code(exc) not in RULE_GONE + ("InvalidGroup.NotFound",):
                raise _fail("RevokeSecurityGroupIngress", exc) from exc
            gone.append(rule_id)
    if not revoked:
        return ActionResult(ALREADY_DONE, f"rules already revoked: {', '.join(gone)}")
    return ActionResult(SUCCEEDED, f"revoked ingress rules {', '.join(revoked)} (already gone: {', '.join(gone)})")


ACTIONS: dict[str, ActionSpec] = {
    "quarantine_notebook": ActionSpec(
        name="quarantine_notebook",
        resource_types=(NOTEBOOK,),
        permissions=("sagemaker:StopNotebookInstance", "sagemaker:AddTags", "sagemaker:DescribeNotebookInstance"),
        describe=f"stop the notebook instance and tag it {QUARANTINE_TAG}; the owner must recreate it",
        run=quarantine_notebook,
        before=_notebook_before,
        state_field="NotebookInstanceStatus",
        act_states=frozenset({"InService"}),
        defer_states=frozenset({"Pending", "Updating"}),
        done_states=frozenset({"Stopping", "Stopped"}),
    ),
    "revoke_ingress_rules": ActionSpec(
        name="revoke_ingress_rules",
        resource_types=(SECURITY_GROUP,),
        permissions=("ec2:RevokeSecurityGroupIngress",),
        describe="revoke exactly the offending ingress rules (by rule id), recorded for restore",
        run=revoke_ingress_rules,
        before=_rules_before,
    ),
}
