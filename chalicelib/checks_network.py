"""Checks on a VPC and what is in it: subnets and their routes, VPC endpoints and their policies,
network ACLs, flow logs, and the environments sharing a VPC. Pure functions, no AWS calls."""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .checks_base import INTERNET_CIDRS, MISSING, get_field
from .model import COMPLIANT, NON_COMPLIANT, NOT_APPLICABLE, CheckResult


def internet_routes(route_table: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Routes of a route table that send 0.0.0.0/0 or ::/0 to an internet gateway."""
    found = []
    for route in (route_table or {}).get("Routes", []):
        dest = route.get("DestinationCidrBlock") or route.get("DestinationIpv6CidrBlock")
        gateway = route.get("GatewayId") or ""
        if dest in INTERNET_CIDRS and gateway.startswith("igw-"):
            found.append({"Destination": dest, "GatewayId": gateway})
    return found


def subnet_problems(subnet: Mapping[str, Any]) -> dict[str, Any]:
    """Why a subnet is public ({} when it is private): an IGW default route, public IPs on launch."""
    problems: dict[str, Any] = {}
    route_table = subnet.get("RouteTable") or {}
    routes = internet_routes(route_table)
    if routes:
        problems["RouteTableId"] = route_table.get("RouteTableId")
        problems["InternetGatewayRoutes"] = routes
    if subnet.get("MapPublicIpOnLaunch"):
        problems["MapPublicIpOnLaunch"] = True
    return problems


def subnet_private(state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """The resource's subnet has no default route to an IGW and does not map public IPs."""
    subnet = get_field(state, params.get("subnet_field", "Subnet"))
    if subnet is MISSING or not subnet:
        return CheckResult(NOT_APPLICABLE, {"reason": "not in a VPC subnet"})
    problems = subnet_problems(subnet)
    status = NON_COMPLIANT if problems else COMPLIANT
    return CheckResult(status, {"SubnetId": subnet.get("SubnetId"), **problems})


LIVE_ENDPOINT_STATES = ("available", "pending", "pendingacceptance")


def live_endpoint(endpoint: Mapping[str, Any]) -> bool:
    """Deleted endpoints stay listed for a while (State deleted): they do not count."""
    return str(endpoint.get("State", "available")).lower() in LIVE_ENDPOINT_STATES


def essential_endpoints(state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """A VPC hosting SageMaker (used by it, or listed in `hosting_vpc_ids`) has every required endpoint
    available: `gateway_services` as Gateway endpoints, `interface_services` as Interface endpoints."""
    listed = state.get("VpcId") in params.get("hosting_vpc_ids", [])
    if not listed and "sagemaker" not in state.get("UsedBy", []):
        return CheckResult(NOT_APPLICABLE, {"reason": "no SageMaker resource uses this VPC"})
    present = {(e.get("Service"), e.get("VpcEndpointType")) for e in state.get("Endpoints", []) if live_endpoint(e)}
    wanted = [(svc, "Gateway") for svc in params.get("gateway_services", [])]
    wanted += [(svc, "Interface") for svc in params.get("interface_services", [])]
    missing = [svc for svc, kind in wanted if (svc, kind) not in present]
    if missing:
        return CheckResult(NON_COMPLIANT, {"MissingEndpoints": missing}, tuple(missing))
    return CheckResult(COMPLIANT, {"Endpoints": sorted(svc for svc, _ in wanted)})


def endpoint_own_groups(state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """Its security groups are neither the VPC default group nor a group SageMaker workloads use."""
    bad = [{"GroupId": g["GroupId"], "Reason": "the VPC default group" if g.get("IsDefault")
            else f"also used by {', '.join(g['UsedBy'])}"}
           for g in state.get("SecurityGroups", []) if g.get("IsDefault") or g.get("UsedBy")]
    if bad:
        return CheckResult(NON_COMPLIANT, {"SharedGroups": bad})
    return CheckResult(COMPLIANT, {"SecurityGroups": [g["GroupId"] for g in state.get("SecurityGroups", [])]})


def _statements(document: Any) -> list[Mapping[str, Any]]:
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return []
    statements = (document or {}).get("Statement", []) if isinstance(document, Mapping) else []
    return [statements] if isinstance(statements, Mapping) else [s for s in statements if isinstance(s, Mapping)]


def _is_star(value: Any) -> bool:
    return value == "*" or value == ["*"] or (isinstance(value, Mapping) and value.get("AWS") in ("*", ["*"]))


def endpoint_policy_restrictive(state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """Not the full-access default policy, and a Deny for requests without TLS (aws:SecureTransport false)."""
    statements = _statements(state.get("PolicyDocument"))
    problems = []
    if not statements or any(s.get("Effect") == "Allow" and _is_star(s.get("Principal")) and _is_star(s.get("Action"))
                             and _is_star(s.get("Resource")) and not s.get("Condition") for s in statements):
        problems.append("full access: any principal, any action, any resource")
    denies_plain = any(
        s.get("Effect") == "Deny" and str(((s.get("Condition") or {}).get("Bool") or {}).get("aws:SecureTransport",
                                                                                             "")).lower() == "false"
        for s in statements)
    if not denies_plain:
        problems.append("no Deny when aws:SecureTransport is false")
    if problems:
        return CheckResult(NON_COMPLIANT, {"PolicyProblems": problems})
    return CheckResult(COMPLIANT, {"Statements": len(statements)})


def _allows_all(entries: list[Mapping[str, Any]], egress: bool) -> bool:
    """Does the first matching rule for any traffic allow it (rules are evaluated by rule number)?"""
    for entry in sorted((e for e in entries if bool(e.get("Egress")) == egress), key=lambda e: e.get("RuleNumber", 0)):
        if str(entry.get("Protocol")) == "-1" and (entry.get("CidrBlock") == "0.0.0.0/0"
                                                   or entry.get("Ipv6CidrBlock") == "::/0"):
            return entry.get("RuleAction") == "allow"
    return False


def nacl_not_allow_all(state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """The subnet's network ACL is not allow-all both in and out (a second layer besides groups)."""
    acl = state.get("NetworkAcl") or {}
    entries = list(acl.get("Entries", []))
    if _allows_all(entries, egress=False) and _allows_all(entries, egress=True):
        return CheckResult(NON_COMPLIANT, {"NetworkAclId": acl.get("NetworkAclId"), "AllowsAll": "in and out"})
    return CheckResult(COMPLIANT, {"NetworkAclId": acl.get("NetworkAclId")})


def one_environment(state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """The SageMaker resources in the VPC share one Environment tag value."""
    environments = state.get("Environments") or {}
    if not environments:
        return CheckResult(NOT_APPLICABLE, {"reason": "no SageMaker resource known in this VPC"})
    if len(environments) > 1:
        return CheckResult(NON_COMPLIANT, {"Environments": dict(environments), "expected": "one Environment"})
    return CheckResult(COMPLIANT, {"Environment": next(iter(environments))})


def flow_log_all(state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """An active flow log capturing ALL traffic (REJECT-only or ACCEPT-only is not enough)."""
    logs = list(state.get("FlowLogs", []))
    if any(f.get("TrafficType") == "ALL" and f.get("FlowLogStatus", "ACTIVE") == "ACTIVE" for f in logs):
        return CheckResult(COMPLIANT, {"FlowLogs": logs})
    return CheckResult(NON_COMPLIANT, {"FlowLogs": logs, "expected": "an ACTIVE flow log with TrafficType ALL"})
