"""Security groups: revoke exactly the offending rules, by rule id; restore re-authorizes the revoked rules
that are not there now."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ..model import ALREADY_DONE, SUCCEEDED
from .base import (
    DONE,
    EC2,
    GONE,
    ActionRequest,
    ActionResult,
    Call,
    Plan,
    RestoreRequest,
    check,
    make,
)

# What EC2 answers when a rule id is no longer in the group (moto says InvalidPermission.NotFound).
RULE_GONE = ("InvalidSecurityGroupRuleId.NotFound", "InvalidPermission.NotFound")
GROUP_GONE = "InvalidGroup.NotFound"


def _revoke_call(group_id: str, rule_ids: list[str], egress: bool) -> Call:
    gone = RULE_GONE + (GROUP_GONE,)
    if egress:
        return EC2.revoke_security_group_egress(GroupId=group_id, SecurityGroupRuleIds=rule_ids, says="revoke",
                                                gone=gone)
    return EC2.revoke_security_group_ingress(GroupId=group_id, SecurityGroupRuleIds=rule_ids, says="revoke", gone=gone)


def _revoke(req: ActionRequest, rule_ids: list[str], egress: bool) -> tuple[list[str], list[str]]:
    """(revoked, already gone). The call is all-or-nothing: when a rule is gone, go one by one."""
    if not rule_ids:
        return [], []
    group_id = req.resource.ref.resource_id
    together = check(make(_revoke_call(group_id, rule_ids, egress), req.client))
    if together.result == DONE:
        return rule_ids, []
    if together.code == GROUP_GONE:
        return [], rule_ids
    revoked: list[str] = []
    gone: list[str] = []
    for rule_id in rule_ids:
        one = check(make(_revoke_call(group_id, [rule_id], egress), req.client))
        (gone if one.result == GONE else revoked).append(rule_id)
    return revoked, gone


def revoke_rules(req: ActionRequest) -> ActionResult:
    """Revoke exactly these rules by rule id (ingress or egress); rules already gone count as revoked."""
    wanted = set(req.targets)
    egress = {r["SecurityGroupRuleId"] for r in req.resource.state.get("Rules", []) if r.get("IsEgress")}
    in_revoked, in_gone = _revoke(req, sorted(wanted - egress), egress=False)
    out_revoked, out_gone = _revoke(req, sorted(wanted & egress), egress=True)
    revoked, gone = in_revoked + out_revoked, in_gone + out_gone
    if not revoked:
        return ActionResult(ALREADY_DONE, f"rules already revoked: {', '.join(gone)}" if gone else "no rule to revoke")
    detail = f"revoked rules {', '.join(revoked)}"
    return ActionResult(SUCCEEDED, detail + (f" (already gone: {', '.join(gone)})" if gone else ""))


# --- restore -------------------------------------------------------------------------------------

RULE_IDENTITY = ("IsEgress", "IpProtocol", "FromPort", "ToPort", "CidrIpv4", "CidrIpv6", "PrefixListId",
                 "ReferencedGroupId")


def _rule_key(rule: Mapping[str, Any]) -> tuple[Any, ...]:
    """What makes two rules the same rule for EC2 (the description does not)."""
    key = {k: rule.get(k) for k in RULE_IDENTITY}
    key["IsEgress"] = bool(key["IsEgress"])
    if key["IpProtocol"] == "-1":
        key["FromPort"] = key["ToPort"] = None
    return tuple(key.values())


def rule_text(rule: Mapping[str, Any]) -> str:
    protocol = rule.get("IpProtocol")
    if protocol == "-1":
        what = "all traffic"
    else:
        ports = rule.get("FromPort")
        if rule.get("ToPort") not in (None, ports):
            ports = f"{ports}-{rule.get('ToPort')}"
        what = f"{protocol} {ports}"
    peer = (rule.get("CidrIpv4") or rule.get("CidrIpv6") or rule.get("PrefixListId")
            or rule.get("ReferencedGroupId") or "?")
    text = f"{'egress' if rule.get('IsEgress') else 'ingress'} {what} {'to' if rule.get('IsEgress') else 'from'} {peer}"
    return text + (f" ({rule['Description']!r})" if rule.get("Description") else "")


def _permission(rule: Mapping[str, Any]) -> dict[str, Any]:
    """The IpPermissions entry that authorizes exactly this recorded rule."""
    permission: dict[str, Any] = {"IpProtocol": rule["IpProtocol"]}
    if rule["IpProtocol"] != "-1":
        for key in ("FromPort", "ToPort"):
            if rule.get(key) is not None:
                permission[key] = rule[key]
    described = {"Description": rule["Description"]} if rule.get("Description") else {}
    if rule.get("CidrIpv4"):
        permission["IpRanges"] = [{"CidrIp": rule["CidrIpv4"], **described}]
    elif rule.get("CidrIpv6"):
        permission["Ipv6Ranges"] = [{"CidrIpv6": rule["CidrIpv6"], **described}]
    elif rule.get("PrefixListId"):
        permission["PrefixListIds"] = [{"PrefixListId": rule["PrefixListId"], **described}]
    elif rule.get("ReferencedGroupId"):
        permission["UserIdGroupPairs"] = [{"GroupId": rule["ReferencedGroupId"], **described}]
    else:
        raise ConfigError(f"recorded rule {rule.get('SecurityGroupRuleId')} names no CIDR, prefix list or group")
    return permission


def _revoked(detail: str) -> set[str]:
    """Rule ids revoke_rules says it revoked ("revoked rules sgr-1, sgr-2 (already gone: ...)")."""
    found = re.match(r"revoked rules ([^(]*)", detail)
    return {r.strip() for r in found.group(1).split(",") if r.strip()} if found else set()


def _already_gone(detail: str) -> set[str]:
    """Rule ids revoke_rules found already gone (its detail says so): netguard did not remove those.
    (re.findall, not re.search: the Lambda's code is read for AWS calls, and `search` is SageMaker's.)"""
    found = re.findall(r"already gone: ([^)]*)\)", detail)
    return {r.strip() for r in found[0].split(",")} if found else set()


def plan_rules(req: RestoreRequest) -> Plan:
    """Re-authorize exactly the revoked rules that are not there now, one call per rule (the API is
    all-or-nothing), with their description; a rule that exists again counts as restored."""
    group_id = req.record.ref.resource_id
    present = {_rule_key(r): r for r in req.current.state.get("Rules", [])}
    gone = _already_gone(req.record.detail)
    named = _revoked(req.record.detail) | gone
    recorded = {r.get("SecurityGroupRuleId") for r in req.record.before.get("Rules") or []}
    if recorded != named:
        return Plan(refused=f"the record's rules ({', '.join(sorted(map(str, recorded))) or 'none'}) are not those "
                            f"its result says were revoked ({', '.join(sorted(named)) or 'none'}): inconsistent, "
                            "not restored")
    calls, unchanged, notes = [], [], []
    for rule in req.record.before.get("Rules") or []:
        text = rule_text(rule)
        if rule.get("SecurityGroupRuleId") in gone:
            notes.append(f"{rule['SecurityGroupRuleId']} ({text}) was already gone when netguard acted: not re-created")
            continue
        found = present.get(_rule_key(rule))
        if found is not None:
            unchanged.append(f"{text} exists ({found.get('SecurityGroupRuleId')})")
            if (found.get("Description") or "") != (rule.get("Description") or ""):
                notes.append(f"{found.get('SecurityGroupRuleId')} has the description {found.get('Description')!r} "
                             f"(recorded {rule.get('Description')!r}): left as is")
            continue
        egress = bool(rule.get("IsEgress"))
        calls.append(Call("ec2", "AuthorizeSecurityGroupEgress" if egress else "AuthorizeSecurityGroupIngress",
                          {"GroupId": group_id, "IpPermissions": [_permission(rule)]}, f"re-authorize {text}",
                          done_codes=("InvalidPermission.Duplicate",)))
    return Plan(tuple(calls), tuple(unchanged), tuple(notes))
