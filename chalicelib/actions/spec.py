"""What an action is, as data: the resource types it acts on, when it can act, what it needs, what it records
first and the IAM it is granted. Pure: no AWS call, no botocore. The pure stages (policy validates controls'
remediations against it, decide chooses with it) and tools/iam.py read declarations only (actions/catalog.py);
the code that writes is bound to them in chalicelib.remediate (actions/base.py `bind`)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..model import Resource


def state_before(*fields: str) -> Callable[[Resource, tuple[str, ...]], Mapping[str, Any]]:
    def before(resource: Resource, targets: tuple[str, ...]) -> Mapping[str, Any]:
        return {f: resource.state.get(f) for f in fields}
    return before


@dataclass(frozen=True)
class ActionSpec:
    """An action: the resource types it acts on, the IAM permissions it needs, the resource states it can act
    from (and those in which it must be deferred, or is already done), what it needs to be able to act at all
    (a configured destination, a CloudTrail principal), and a pure `before` that says what it is about to change
    so the ledger can record it first (restore brings that before-state back)."""

    name: str
    resource_types: tuple[str, ...]
    permissions: tuple[str, ...]
    describe: str  # what it does, for people (alerts, README)
    before: Callable[[Resource, tuple[str, ...]], Mapping[str, Any]]
    state_field: str | None = None
    act_states: frozenset[str] = frozenset()  # states it can act from
    defer_states: frozenset[str] = frozenset()  # states that will become actable: wait
    done_states: frozenset[str] = frozenset()  # states where the containment already holds
    # None when the action can run with these control parameters, else what is missing.
    unconfigured: Callable[[Mapping[str, Any]], str | None] = field(default=lambda params: None)
    params: frozenset[str] = frozenset()  # control parameters the action reads
    needs_principal: bool = False  # acts on who made the change (CloudTrail userIdentity)
    handles_targets: frozenset[str] | None = None  # only these targets (None: all)
    # Whether the containment already holds for one control on this resource (actions that contain
    # several controls at once, such as a quarantine tag naming them): such a decision is not acted
    # on again when another control of the resource is.
    holds_for: Callable[[Resource, str], bool] | None = None
    # What AWS requires besides the state for the action to work, read by the collector: None when met,
    # else why not (the decision is "not actionable" with that reason, rather than a failed call).
    precondition: Callable[[Resource], str | None] | None = None
    irreversible: str | None = None  # why it cannot be undone at all: restore refuses without reading
    # The IAM statements the action needs (tools/iam.py grants them to the Lambda and member roles); two
    # actions may share one by Sid, identical in both.
    statements: tuple[Mapping[str, Any], ...] = ()

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


def allow(sid: str, actions: str | list[str], resources: str | list[str],
          condition: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An IAM Allow statement, for ActionSpec.statements."""
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
    if condition:
        statement["Condition"] = dict(condition)
    return statement
