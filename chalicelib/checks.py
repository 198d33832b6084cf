"""Named predicates: what the policy data cannot say by itself. Pure functions, no AWS calls.

A check takes a resource's state (plain data, see collect.py) and the control's parameters, and
returns a CheckResult with the evidence (the exact fields or rules that failed) and the targets a
remediation must act on (rule ids). Every check is registered explicitly in CHECKS with the
parameters it accepts, so an unknown check or parameter is a policy load error.
"""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .model import COMPLIANT, NON_COMPLIANT, NOT_APPLICABLE, CheckResult

INTERNET_CIDRS = ("0.0.0.0/0", "::/0")

CheckFn = Callable[[Mapping[str, Any], Mapping[str, Any]], CheckResult]


@dataclass(frozen=True)
class CheckSpec:
    fn: CheckFn
    required: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()


_MISSING = object()


def get_field(state: Mapping[str, Any], path: str) -> Any:
    """`Subnet.VpcId` -> state["Subnet"]["VpcId"]; a missing step gives _MISSING."""
    value: Any = state
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def field_equals(state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    field, expected = params["field"], params["expected"]
    actual = get_field(state, field)
    actual_shown = None if actual is _MISSING else actual
    if actual == expected:
        return CheckResult(COMPLIANT, {field: actual_shown})
    return CheckResult(NON_COMPLIANT, {field: actual_shown, "expected": expected})


def field_present(state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    field = params["field"]
    actual = get_field(state, field)
    if actual is _MISSING or actual in (None, "", [], {}):
        return CheckResult(NON_COMPLIANT, {field: None, "expected": "set"})
    return CheckResult(COMPLIANT, {field: actual})


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
    if subnet is _MISSING or not subnet:
        return CheckResult(NOT_APPLICABLE, {"reason": "not in a VPC subnet"})
    problems = subnet_problems(subnet)
    status = NON_COMPLIANT if problems else COMPLIANT
    return CheckResult(status, {"SubnetId": subnet.get("SubnetId"), **problems})


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


WORKLOAD_KINDS = ("notebook", "training", "endpoint", "vpc-endpoint", "studio")


def one_function(state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """A security group serves one kind of workload only."""
    kinds = sorted(set(state.get("AttachedTo", [])) & set(params.get("kinds", WORKLOAD_KINDS)))
    if len(kinds) > 1:
        return CheckResult(NON_COMPLIANT, {"UsedBy": kinds, "expected": "one kind"})
    return CheckResult(COMPLIANT, {"UsedBy": kinds})


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


def tags_present(state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """Every required tag key is present with a value; the targets are the missing keys."""
    tags = state.get("Tags") or {}
    missing = [k for k in params["keys"] if not tags.get(k)]
    if missing:
        return CheckResult(NON_COMPLIANT, {"MissingTags": missing}, tuple(missing))
    return CheckResult(COMPLIANT, {"Tags": sorted(params["keys"])})


def rule_summary(rule: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a security group rule that a person needs to recognise it (and to restore it)."""
    keys = ("SecurityGroupRuleId", "IpProtocol", "FromPort", "ToPort", "CidrIpv4", "CidrIpv6",
            "PrefixListId", "PrefixListCidrs", "ReferencedGroupId", "Description")
    return {k: rule[k] for k in keys if rule.get(k) not in (None, "")}


def _ingress(state: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [r for r in state.get("Rules", []) if not r.get("IsEgress")]


# Address space that is not the internet's: a range inside one of these is not "from the internet"
# however wide (10.0.0.0/8 is SG.2's business on notebooks).
NON_PUBLIC_RANGES = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "fc00::/7", "fe80::/10", "::1/128"))
DEFAULT_MAX_PUBLIC_PREFIX = {4: 16, 6: 32}  # wider than a /16 (IPv4) or a /32 (IPv6) of public space: internet


def internet_range(cidr: Any, params: Mapping[str, Any]) -> bool:
    """Is `cidr` "the internet": 0.0.0.0/0, ::/0, or any range reaching public address space that is
    wider than `max_public_prefix_ipv4` (16) / `max_public_prefix_ipv6` (32)? 0.0.0.0/1 and
    128.0.0.0/1 together are the internet too, and each is flagged."""
    if not isinstance(cidr, str):
        return False
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
    limit = int(params.get(f"max_public_prefix_ipv{net.version}", DEFAULT_MAX_PUBLIC_PREFIX[net.version]))
    if net.prefixlen >= limit:
        return False
    return not any(net.version == private.version and net.subnet_of(private)  # type: ignore[arg-type]
                   for private in NON_PUBLIC_RANGES)


def sg_no_internet_ingress(state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """No ingress rule from the internet (`internet_range`), whatever the port: from its own CIDR or from
    an entry of the customer-managed prefix list it names."""
    bad = [r for r in _ingress(state) if any(internet_range(cidr, params) for cidr in
                                             (r.get("CidrIpv4"), r.get("CidrIpv6"), *r.get("PrefixListCidrs", ())))]
    if not bad:
        return CheckResult(COMPLIANT, {"IngressRules": len(_ingress(state))})
    return CheckResult(
        NON_COMPLIANT,
        {"OpenIngressRules": [rule_summary(r) for r in bad]},
        tuple(r["SecurityGroupRuleId"] for r in bad),
    )


def sg_egress_restricted(state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """No egress rule to the whole internet on all protocols."""
    bad = [r for r in state.get("Rules", []) if r.get("IsEgress") and str(r.get("IpProtocol")) == "-1"
           and (r.get("CidrIpv4") in INTERNET_CIDRS or r.get("CidrIpv6") in INTERNET_CIDRS)]
    if bad:
        return CheckResult(NON_COMPLIANT, {"UnrestrictedEgressRules": [rule_summary(r) for r in bad]},
                           tuple(r["SecurityGroupRuleId"] for r in bad))
    return CheckResult(COMPLIANT, {"EgressRules": sum(1 for r in state.get("Rules", []) if r.get("IsEgress"))})


def sg_no_rules(state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """The group has no rule at all, in either direction (for VPC default groups)."""
    rules = list(state.get("Rules", []))
    if rules:
        return CheckResult(NON_COMPLIANT, {"Rules": [{**rule_summary(r), "IsEgress": bool(r.get("IsEgress"))}
                                                     for r in rules]},
                           tuple(r["SecurityGroupRuleId"] for r in rules))
    return CheckResult(COMPLIANT, {"Rules": []})


def _within(cidr: str, allowed: list[str]) -> bool:
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
    for candidate in allowed:
        try:
            allowed_net = ipaddress.ip_network(candidate, strict=False)
        except ValueError:
            continue
        if net.version == allowed_net.version and net.subnet_of(allowed_net):
            return True
    return False


def _rule_allowed(rule: Mapping[str, Any], params: Mapping[str, Any], vpc_cidrs: list[str]) -> str | None:
    """None when the rule is allowed, else why not."""
    protocol = str(params.get("protocol", "tcp"))
    port = int(params.get("port", 443))
    if str(rule.get("IpProtocol")) != protocol or rule.get("FromPort") != port or rule.get("ToPort") != port:
        return f"only {protocol}/{port} is allowed"
    allowed_cidrs = list(params.get("allowed_cidrs", []))
    if params.get("allow_vpc_cidrs", True):
        allowed_cidrs += vpc_cidrs
    cidr = rule.get("CidrIpv4") or rule.get("CidrIpv6")
    if cidr:
        return None if _within(cidr, allowed_cidrs) else f"source {cidr} is outside the VPC and the allowed CIDRs"
    if rule.get("PrefixListId"):
        if rule["PrefixListId"] in params.get("allowed_prefix_lists", []):
            return None
        return f"prefix list {rule['PrefixListId']} is not allowed"
    if rule.get("ReferencedGroupId"):
        return None if params.get("allow_sg_references", True) else "security group references are not allowed"
    return "unknown source"


def sg_ingress_restricted(state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """Ingress only on the allowed protocol/port, only from the VPC CIDRs or configured sources."""
    vpc_cidrs = list(state.get("VpcCidrs", []))
    bad = []
    for rule in _ingress(state):
        why = _rule_allowed(rule, params, vpc_cidrs)
        if why:
            bad.append({**rule_summary(rule), "Reason": why})
    if not bad:
        return CheckResult(COMPLIANT, {"IngressRules": len(_ingress(state)), "VpcCidrs": vpc_cidrs})
    return CheckResult(
        NON_COMPLIANT,
        {"DisallowedIngressRules": bad, "VpcCidrs": vpc_cidrs},
        tuple(r["SecurityGroupRuleId"] for r in bad),
    )


CHECKS: dict[str, CheckSpec] = {
    "field_equals": CheckSpec(field_equals, frozenset({"field", "expected"})),
    "field_present": CheckSpec(field_present, frozenset({"field"})),
    "subnet_private": CheckSpec(subnet_private, optional=frozenset({"subnet_field"})),
    "vpc_private_subnets": CheckSpec(vpc_private_subnets),
    "multi_instance_encryption": CheckSpec(multi_instance_encryption, optional=frozenset({"min_instances"})),
    "subnets_span_azs": CheckSpec(subnets_span_azs, optional=frozenset({"min_azs"})),
    "flow_log_all": CheckSpec(flow_log_all),
    "essential_endpoints": CheckSpec(essential_endpoints, optional=frozenset(
        {"gateway_services", "interface_services", "hosting_vpc_ids"})),
    "endpoint_own_groups": CheckSpec(endpoint_own_groups),
    "endpoint_policy_restrictive": CheckSpec(endpoint_policy_restrictive),
    "nacl_not_allow_all": CheckSpec(nacl_not_allow_all),
    "one_function": CheckSpec(one_function, optional=frozenset({"kinds"})),
    "one_environment": CheckSpec(one_environment),
    "variants_min_instances": CheckSpec(variants_min_instances, optional=frozenset({"min_instances"})),
    "tags_present": CheckSpec(tags_present, frozenset({"keys"})),
    "sg_no_internet_ingress": CheckSpec(sg_no_internet_ingress,
                                        optional=frozenset({"max_public_prefix_ipv4", "max_public_prefix_ipv6"})),
    "sg_egress_restricted": CheckSpec(sg_egress_restricted),
    "sg_no_rules": CheckSpec(sg_no_rules),
    "sg_ingress_restricted": CheckSpec(
        sg_ingress_restricted,
        optional=frozenset({"protocol", "port", "allowed_cidrs", "allowed_prefix_lists",
                            "allow_vpc_cidrs", "allow_sg_references"}),
    ),
}


def condition_holds(state: Mapping[str, Any], condition: Mapping[str, Any]) -> bool:
    """`applies_when`: {field, any_of}. A list field matches when it shares a value with any_of."""
    value = get_field(state, condition["field"])
    wanted = condition["any_of"]
    if value is _MISSING or value is None:
        return False
    if isinstance(value, (list, tuple, set)):
        return any(v in wanted for v in value)
    return value in wanted
