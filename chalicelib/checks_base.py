"""What every check shares: the registry's types, field access, and the checks on plain fields and tags.

Kept apart from the network and SageMaker checks so that both (and `condition_holds`, which the
policy's `applies_when` uses) depend on one small module, not on each other.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .model import COMPLIANT, NON_COMPLIANT, CheckResult

INTERNET_CIDRS = ("0.0.0.0/0", "::/0")

CheckFn = Callable[[Mapping[str, Any], Mapping[str, Any]], CheckResult]


@dataclass(frozen=True)
class CheckSpec:
    fn: CheckFn
    required: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()


MISSING = object()


def get_field(state: Mapping[str, Any], path: str) -> Any:
    """`Subnet.VpcId` -> state["Subnet"]["VpcId"]; a missing step gives MISSING."""
    value: Any = state
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return MISSING
        value = value[part]
    return value


def field_equals(state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    field, expected = params["field"], params["expected"]
    actual = get_field(state, field)
    actual_shown = None if actual is MISSING else actual
    if actual == expected:
        return CheckResult(COMPLIANT, {field: actual_shown})
    return CheckResult(NON_COMPLIANT, {field: actual_shown, "expected": expected})


def field_present(state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    field = params["field"]
    actual = get_field(state, field)
    if actual is MISSING or actual in (None, "", [], {}):
        return CheckResult(NON_COMPLIANT, {field: None, "expected": "set"})
    return CheckResult(COMPLIANT, {field: actual})


def tags_present(state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """Every required tag key is present with a value; the targets are the missing keys."""
    tags = state.get("Tags") or {}
    missing = [k for k in params["keys"] if not tags.get(k)]
    if missing:
        return CheckResult(NON_COMPLIANT, {"MissingTags": missing}, tuple(missing))
    return CheckResult(COMPLIANT, {"Tags": sorted(params["keys"])})


def condition_holds(state: Mapping[str, Any], condition: Mapping[str, Any]) -> bool:
    """`applies_when`: {field, any_of}. A list field matches when it shares a value with any_of."""
    value = get_field(state, condition["field"])
    wanted = condition["any_of"]
    if value is MISSING or value is None:
        return False
    if isinstance(value, (list, tuple, set)):
        return any(v in wanted for v in value)
    return value in wanted
