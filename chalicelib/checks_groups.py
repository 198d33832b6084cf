"""Checks on security groups: their rules (ingress from the internet, unrestricted egress, any rule
at all, ingress outside what the control allows) and the workloads sharing one. Pure functions."""
from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from .checks_base import INTERNET_CIDRS
from .model import COMPLIANT, NON_COMPLIANT, CheckResult

WORKLOAD_KINDS = ("notebook", "training", "endpoint", "vpc-endpoint", "studio")


def one_function(state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """A security group serves one kind of workload only."""
    kinds = sorted(set(state.get("AttachedTo", [])) & set(params.get("kinds", WORKLOAD_KINDS)))
    if len(kinds) > 1:
        return CheckResult(NON_COMPLIANT, {"UsedBy": kinds, "expected": "one kind"})
    return CheckResult(COMPLIANT, {"UsedBy": kinds})


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
        if net.version == allowed_net.version and net.subnet_of(allowed_net):  # type: ignore[arg-type]
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
