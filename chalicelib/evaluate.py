"""Evaluate: controls x resources -> findings. Pure: plain data in, findings with evidence out."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from .checks import CHECKS, condition_holds
from .model import NOT_APPLICABLE, Control, Finding, Resource


def evaluate_state(control: Control, state: Mapping) -> tuple[str, Mapping, tuple[str, ...]]:
    """(status, evidence, targets) of one control on one state; used by findings and policy examples."""
    if control.applies_when and not condition_holds(state, control.applies_when):
        field, wanted = control.applies_when["field"], control.applies_when["any_of"]
        return NOT_APPLICABLE, {"reason": f"{field} is not one of {', '.join(map(str, wanted))}"}, ()
    result = CHECKS[control.check].fn(state, control.params)
    return result.status, dict(result.evidence), tuple(result.targets)


def evaluate(controls: Iterable[Control], resources: Iterable[Resource],
             modes: Mapping[str, str] | None = None) -> list[Finding]:
    """Every control of a resource's type, skipping controls whose effective mode is `off`."""
    modes = modes or {}
    controls = [c for c in controls if modes.get(c.id, c.mode) != "off"]
    findings = []
    for resource in resources:
        for control in controls:
            if resource.ref.resource_type not in control.resource_types:
                continue
            status, evidence, targets = evaluate_state(control, {**resource.state, "Tags": dict(resource.tags)})
            findings.append(Finding(control, resource, status, evidence, targets))
    return findings
