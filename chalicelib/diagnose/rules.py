"""What one packet meets on its way, as pure functions over plain data: security group rules (stateful),
network ACL entries (stateless, first match by rule number, return traffic on ephemeral ports), VPC
endpoint policies and the VPC's DNS servers. No AWS calls; `reach` asks these for each path.
"""
from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..checks_network import _statements as policy_statements

HTTPS = (443, 443)
# Where return traffic comes back: Linux's default ephemeral ports (net.ipv4.ip_local_port_range), which
# SageMaker's instances use. AWS advises NACLs to allow 1024-65535; this is the range that must be open.
EPHEMERAL = (32768, 60999)
ANYWHERE = "0.0.0.0/0"
AMAZON_DNS = "AmazonProvidedDNS"
AMAZON_DNS_LINK_LOCAL = "169.254.169.253"

ALLOW, DENY, PARTIAL = "allow", "deny", "partial"


def _net(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(cidr, strict=False)


def covers(outer: str, inner: str) -> bool:
    """Every address of `inner` is in `outer` (False across IP versions)."""
    a, b = _net(outer), _net(inner)
    return a.version == b.version and b.subnet_of(a)  # type: ignore[arg-type]


def overlaps(a: str, b: str) -> bool:
    x, y = _net(a), _net(b)
    return x.version == y.version and x.overlaps(y)


@dataclass(frozen=True)
class Target:
    """The other end of a connection, as rules can name it: its addresses, the security groups its
    interfaces carry, and the AWS-managed prefix list that stands for it (S3's)."""

    cidrs: tuple[str, ...]
    groups: tuple[str, ...] = ()
    prefix_list: str | None = None


def _ports(rule: Mapping[str, Any]) -> tuple[int, int]:
    low, high = rule.get("FromPort"), rule.get("ToPort")
    if low is None or low == -1:
        return (0, 65535)
    return (int(low), int(high if high is not None else low))


def _sg_rule_matches(rule: Mapping[str, Any], ports: tuple[int, int]) -> bool:
    protocol = str(rule.get("IpProtocol"))
    if protocol == "-1":
        return True
    low, high = _ports(rule)
    return protocol in ("tcp", "6") and low <= ports[0] and ports[1] <= high


def sg_allows(rules: Iterable[Mapping[str, Any]], egress: bool, ports: tuple[int, int],
              target: Target) -> tuple[bool, list[str]]:
    """Do the rules (of every group an interface carries: they add up) allow TCP `ports` to (egress) or
    from the target? Returns the answer and the ids of the rules that allow it."""
    matching = [r for r in rules if bool(r.get("IsEgress")) == egress and _sg_rule_matches(r, ports)]
    for rule in matching:  # a group reference or the target's own prefix list allows all of it
        if rule.get("ReferencedGroupId") and rule["ReferencedGroupId"] in target.groups:
            return True, [str(rule.get("SecurityGroupRuleId"))]
        if target.prefix_list and rule.get("PrefixListId") == target.prefix_list:
            return True, [str(rule.get("SecurityGroupRuleId"))]
    used: list[str] = []
    for cidr in target.cidrs:  # else every address block needs a rule whose CIDR holds it
        found = next((r for r in matching if any(covers(c, cidr) for c in _rule_cidrs(r))), None)
        if found is None:
            return False, []
        used.append(str(found.get("SecurityGroupRuleId")))
    return bool(target.cidrs), sorted(set(used))


def _rule_cidrs(rule: Mapping[str, Any]) -> list[str]:
    """The addresses a rule names: its CIDR, or the CIDRs of a customer-managed prefix list (resolved by
    the security group collector; an AWS-managed list names only its service)."""
    own = rule.get("CidrIpv4") or rule.get("CidrIpv6")
    return [own] if own else list(rule.get("PrefixListCidrs") or [])


def describe_sg_rule(rule: Mapping[str, Any]) -> str:
    """`sgr-1 sg-1 egress tcp/443 -> pl-1` for evidence."""
    protocol = str(rule.get("IpProtocol"))
    low, high = _ports(rule)
    ports = "all" if protocol == "-1" else f"{protocol}/{low}" + (f"-{high}" if high != low else "")
    other = (rule.get("CidrIpv4") or rule.get("CidrIpv6") or rule.get("PrefixListId")
             or rule.get("ReferencedGroupId") or "?")
    arrow = "->" if rule.get("IsEgress") else "<-"
    return f"{rule.get('SecurityGroupRuleId')} {rule.get('GroupId')} {ports} {arrow} {other}"


def nacl_verdict(entries: Iterable[Mapping[str, Any]], egress: bool, ports: tuple[int, int],
                 cidr: str) -> tuple[str, Mapping[str, Any] | None]:
    """What a network ACL does with TCP on `ports` to (egress) or from (ingress) `cidr`: ALLOW, DENY, or
    PARTIAL (some addresses or ports denied: some connections time out), with the entry that decided
    (None: the implicit deny at the end). Entries are evaluated by rule number, the first match wins."""
    partial_allow: Mapping[str, Any] | None = None
    for entry in sorted((e for e in entries if bool(e.get("Egress")) == egress), key=lambda e: e.get("RuleNumber", 0)):
        protocol = str(entry.get("Protocol"))
        block = entry.get("CidrBlock") or entry.get("Ipv6CidrBlock")
        if protocol not in ("-1", "6") or not block or not overlaps(block, cidr):
            continue
        port_range = entry.get("PortRange") if protocol == "6" else None
        low, high = (int(port_range["From"]), int(port_range["To"])) if port_range else (0, 65535)
        if high < ports[0] or low > ports[1]:
            continue
        whole = covers(block, cidr) and low <= ports[0] and ports[1] <= high
        if entry.get("RuleAction") == "deny":
            return (DENY if whole and partial_allow is None else PARTIAL), entry
        if whole:
            return ALLOW, entry
        partial_allow = partial_allow or entry
    return (PARTIAL, partial_allow) if partial_allow else (DENY, None)


def describe_nacl_entry(acl_id: str, entry: Mapping[str, Any] | None, egress: bool) -> str:
    if entry is None:
        return f"{acl_id} {'egress' if egress else 'ingress'} rule * (no rule allows it: the implicit deny)"
    number = entry.get("RuleNumber")
    port_range = entry.get("PortRange")
    ports = f" ports {port_range['From']}-{port_range['To']}" if port_range else ""
    protocol = {"-1": "all", "6": "tcp"}.get(str(entry.get("Protocol")), str(entry.get("Protocol")))
    return (f"{acl_id} {'egress' if egress else 'ingress'} rule {'*' if number == 32767 else number} "
            f"{entry.get('RuleAction')} {protocol}{ports} {entry.get('CidrBlock') or entry.get('Ipv6CidrBlock')}")


# --- endpoint policies ----------------------------------------------------------------------------

def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def _matches(patterns: Sequence[str], value: str) -> bool:
    return any(fnmatch.fnmatchcase(value.lower(), p.lower()) for p in patterns)


def _applies_to_action(statement: Mapping[str, Any], action: str) -> bool:
    if "NotAction" in statement:
        return not _matches(_as_list(statement["NotAction"]), action)
    return _matches(_as_list(statement.get("Action")), action)


def _applies_to_resource(statement: Mapping[str, Any], resource: str) -> bool:
    """`resource` "*" stands for "some resource": an Allow of any resource counts for it."""
    if "NotResource" in statement:
        return resource == "*" or not _matches(_as_list(statement["NotResource"]), resource)
    patterns = _as_list(statement.get("Resource")) or ["*"]
    return resource == "*" or _matches(patterns, resource)


def _anyone(principal: Any) -> bool:
    if principal is None or principal == "*":
        return True
    return isinstance(principal, Mapping) and _as_list(principal.get("AWS")) == ["*"]


def _tls_only(condition: Any) -> bool:
    """A Deny conditioned only on aws:SecureTransport false: never applies to the HTTPS calls SDKs make."""
    return (isinstance(condition, Mapping) and list(condition) == ["Bool"]
            and isinstance(condition["Bool"], Mapping) and list(condition["Bool"]) == ["aws:SecureTransport"]
            and str(condition["Bool"]["aws:SecureTransport"]).lower() == "false")


@dataclass(frozen=True)
class PolicyVerdict:
    action: str
    resource: str
    denied: bool  # for certain (an unconditional Deny, or no Allow at all)
    maybe: bool  # depends on what netguard cannot evaluate here (conditions, named principals)
    reason: str


def policy_verdict(document: Any, action: str, resource: str = "*") -> PolicyVerdict:
    """What an endpoint policy does with one call. No policy (or one that cannot be read) is AWS's full
    access default. Conditions other than the TLS one and named principals cannot be evaluated without the
    caller: they make a verdict uncertain, never a certain deny."""
    if document in (None, ""):
        return PolicyVerdict(action, resource, False, False, "no policy: full access")
    statements = policy_statements(document)
    if not statements:
        return PolicyVerdict(action, resource, False, True, "the policy document could not be read")
    uncertain = ""
    for s in statements:
        if s.get("Effect") != "Deny" or not _applies_to_action(s, action):
            continue
        if _tls_only(s.get("Condition")) or not _anyone(s.get("Principal")):
            continue
        scoped = _as_list(s.get("Resource")) not in ([], ["*"]) or "NotResource" in s
        if scoped and (resource == "*" or not _applies_to_resource(s, resource)):
            continue
        sid = s.get("Sid") or "(no Sid)"
        if s.get("Condition"):
            uncertain = uncertain or f"statement {sid} denies {action} under a condition"
            continue
        return PolicyVerdict(action, resource, True, False, f"statement {sid} denies {action}")
    allows = [s for s in statements if s.get("Effect") == "Allow" and _applies_to_action(s, action)
              and _applies_to_resource(s, resource)]
    if not allows:
        target = "" if resource == "*" else f" on {resource}"
        return PolicyVerdict(action, resource, True, False, f"no statement allows {action}{target}")
    if not any(_anyone(s.get("Principal")) for s in allows):
        uncertain = uncertain or f"{action} is allowed only to named principals"
    return PolicyVerdict(action, resource, False, bool(uncertain), uncertain or "allowed")


# --- DNS ------------------------------------------------------------------------------------------

def amazon_dns_addresses(vpc_cidrs: Iterable[str]) -> set[str]:
    """The Amazon DNS server's addresses: the VPC's primary IPv4 range plus two (listed for every range
    here: AWS answers on the primary's), and the link-local 169.254.169.253."""
    found = {AMAZON_DNS_LINK_LOCAL}
    for cidr in vpc_cidrs:
        network = _net(cidr)
        if network.version == 4:
            found.add(str(network.network_address + 2))
    return found


def custom_dns_servers(servers: Sequence[str], vpc_cidrs: Iterable[str]) -> list[str]:
    """The DHCP option set's domain-name-servers that are not the Amazon DNS server: they answer
    instead of it, and resolve an interface endpoint's private DNS name only if they forward the
    region's amazonaws.com names to it."""
    amazon = amazon_dns_addresses(vpc_cidrs) | {AMAZON_DNS}
    return [s for s in servers if s not in amazon]
