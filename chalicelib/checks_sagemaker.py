"""Checks on a SageMaker resource's own settings: its VpcConfig subnets, inter-container encryption,
Availability Zones and endpoint variants. Pure functions, no AWS calls."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .checks_network import subnet_problems
from .model import COMPLIANT, NON_COMPLIANT, NOT_APPLICABLE, CheckResult


def vpc_private_subnets(state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """A VpcConfig is set and every one of its subnets is private."""
    subnets = (state.get("VpcConfig") or {}).get("Subnets") or []
    if not subnets:
        return CheckResult(NON_COMPLIANT, {"VpcConfig": None, "expected": "a VpcConfig with private subnets"})
    views = {v["SubnetId"]: v for v in state.get("SubnetViews", []) if v}
    public = {}
    for subnet_id in subnets:
        view = views.get(subnet_id)
        problems = subnet_problems(view) if view else {"reason": "subnet not found"}
        if problems:
            public[subnet_id] = problems
    if public:
        return CheckResult(NON_COMPLIANT, {"PublicSubnets": public})
    return CheckResult(COMPLIANT, {"Subnets": list(subnets)})


def multi_instance_encryption(state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """Inter-container traffic encryption on, for jobs with at least `min_instances` instances."""
    count = state.get("InstanceCount") or 1
    if "EnableInterContainerTrafficEncryption" not in state:
        return CheckResult(NOT_APPLICABLE, {"reason": "this kind of job has no inter-container traffic setting"})
    if count < int(params.get("min_instances", 2)):
        return CheckResult(NOT_APPLICABLE, {"reason": f"{count} instance: no inter-container traffic"})
    if state.get("EnableInterContainerTrafficEncryption"):
        return CheckResult(COMPLIANT, {"InstanceCount": count, "EnableInterContainerTrafficEncryption": True})
    return CheckResult(NON_COMPLIANT, {"InstanceCount": count, "EnableInterContainerTrafficEncryption": False,
                                       "expected": True})


def subnets_span_azs(state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """The VpcConfig subnets are in at least `min_azs` Availability Zones."""
    if not (state.get("VpcConfig") or {}).get("Subnets"):
        return CheckResult(NOT_APPLICABLE, {"reason": "no VpcConfig (JOB.2's finding)"})
    zones = list(state.get("AvailabilityZones", []))
    wanted = int(params.get("min_azs", 2))
    status = COMPLIANT if len(zones) >= wanted else NON_COMPLIANT
    return CheckResult(status, {"AvailabilityZones": zones, "expected": f"at least {wanted}"})


def variants_min_instances(state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """Every instance-based production variant starts with at least `min_instances` instances."""
    wanted = int(params.get("min_instances", 2))
    variants = [v for v in state.get("ProductionVariants", []) if not v.get("Serverless")]
    if not variants:
        return CheckResult(NOT_APPLICABLE, {"reason": "no instance-based production variant"})
    low = [{"VariantName": v.get("VariantName"), "InitialInstanceCount": v.get("InitialInstanceCount")}
           for v in variants if (v.get("InitialInstanceCount") or 0) < wanted]
    if low:
        return CheckResult(NON_COMPLIANT, {"VariantsBelowMinimum": low, "expected": f"at least {wanted}"})
    return CheckResult(COMPLIANT, {"Variants": len(variants)})
