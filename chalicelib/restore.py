"""Restore: undo one recorded remediation from the ledger's before-state (`netguard restore <action-id>`).

ledger (action#<id>) -> read the resource as it is now (the collectors: the same shape as the
before-state) -> plan (the calls that bring the before-state back, what already matches it, or why the
action cannot be undone) -> execute, or only print them (dry-run) -> record the restore as its own
ledger item (sk = restore#<time>); the action's own record is never changed.

Idempotent: what already matches the before-state is not written again, so a second run changes
nothing and says "already restored". What cannot be undone is refused with the reason: a stopped job
(SageMaker cannot restart it), an action that failed or never finished, a created flow log or endpoint
that the record does not name or that does not carry netguard's `netguard:created-by` tag.
"""
from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

from botocore import xform_name
from botocore.exceptions import BotoCoreError, ClientError

from .aws import Clients, error_code, error_message
from .checks import internet_range
from .collect import Collector
from .errors import ConfigError, NetguardError, PolicyError
from .ledger import ref_from_key
from .model import (
    ALREADY_DONE,
    DOMAIN,
    NOTEBOOK,
    SAGEMAKER_TYPES,
    SECURITY_GROUP,
    SUBNET,
    SUCCEEDED,
    VPC,
    VPC_ENDPOINT,
    Resource,
    ResourceRef,
    canonical_json,
    join_ids,
)
from .policy import exemption_for, load_policy
from .remediate import CREATED_BY_TAG, OWNER_TAG, QUARANTINE_TAG
from .settings import Settings
from .signing import MAC_ALGORITHM, action_message, key_region

log = logging.getLogger("netguard.restore")


# Restore results.
RESTORED = "restored"
ALREADY_RESTORED = "already-restored"  # the resource already matches the before-state
NOTHING_TO_RESTORE = "nothing-to-restore"  # the action found its containment in place and changed nothing
WOULD_RESTORE = "would-restore"  # dry-run
REFUSED = "refused"  # cannot be undone; nothing written
FAILED = "failed"  # an AWS call failed; the calls before it were made


class UnknownAction(NetguardError):
    """No action with this id in the ledger."""


class ReadError(NetguardError):
    """The resource could not be read (access, throttling): nothing was planned or written."""


@dataclass(frozen=True)
class ActionRecord:
    """One action as the ledger holds it (pk = action#<id>, sk = action)."""

    action_id: str
    action: str
    ref: ResourceRef
    controls: tuple[str, ...]
    before: Mapping[str, Any]
    result: str  # succeeded, already-done, failed, or started (never finished)
    detail: str
    at: str | None = None
    signature: str = "not-checked"  # SIGNED, UNSIGNED, BAD_SIGNATURE, NO_KEY; not-checked: a local file ledger


# What a DynamoDB ledger's action record is, checked against the ledger key (signing.py)
SIGNED, UNSIGNED, BAD_SIGNATURE, NO_KEY = "signed", "unsigned", "bad-signature", "no-key"
SIGNATURE_PROBLEMS = {
    UNSIGNED: "the record carries no signature of netguard's ledger key: netguard did not write it whole "
              "(or wrote it without NETGUARD_LEDGER_KEY_ID)",
    BAD_SIGNATURE: "the record's signature is not the ledger key's: it was written or changed by someone else",
    NO_KEY: "its signature cannot be checked without the ledger key: give --ledger-key (the stack's LedgerKeyArn) "
            "or NETGUARD_LEDGER_KEY_ID",
}


@dataclass(frozen=True)
class Call:
    """One write to make, as data: printed for a dry-run, executed otherwise."""

    service: str
    operation: str  # the API's name, e.g. AuthorizeSecurityGroupIngress
    params: Mapping[str, Any]
    says: str  # what it does, for people
    done_codes: tuple[str, ...] = ()  # errors that mean "it is already so"

    @property
    def method(self) -> str:
        return xform_name(self.operation)


@dataclass(frozen=True)
class Plan:
    calls: tuple[Call, ...] = ()
    unchanged: tuple[str, ...] = ()  # what already matches the before-state
    notes: tuple[str, ...] = ()
    refused: str | None = None  # why it cannot be undone
    nothing: str | None = None  # why there is nothing to undo


@dataclass
class RestoreReport:
    record: ActionRecord
    result: str
    detail: str
    dry_run: bool = False
    calls: list[dict[str, Any]] = field(default_factory=list)  # each call with its result
    unchanged: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    recorded: bool = False
    record_error: str | None = None
    alerted: list[str] = field(default_factory=list)  # what became of the restore's alert, by channel
    principal: str | None = None  # who ran it (STS)

    def as_dict(self) -> dict[str, Any]:
        ref = self.record.ref
        return {
            "action_id": self.record.action_id,
            "action": self.record.action,
            "resource": {"type": ref.resource_type, "id": ref.resource_id, "account": ref.account,
                         "region": ref.region},
            "controls": list(self.record.controls),
            "action_result": self.record.result,
            "action_detail": self.record.detail,
            "result": self.result,
            "detail": self.detail,
            "dry_run": self.dry_run,
            "calls": self.calls,
            "unchanged": self.unchanged,
            "notes": self.notes,
            "recorded": self.recorded,
            "record_error": self.record_error,
            "signature": self.record.signature,
            "alerted": self.alerted,
        }


# --- the ledger: read an action, record a restore ----------------------------------------------

def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def action_pk(action_id: str) -> str:
    return f"action#{action_id}"


def record_from_item(action_id: str, item: Mapping[str, Any], outcome: Mapping[str, Any] | None = None) -> ActionRecord:
    """An ActionRecord from a ledger item (plain values). `outcome`: a decision record of the action,
    for ledgers whose action item still says `started` (the JSONL file of `scan --enforce` appends the
    action before it runs; its result is in the decision records that follow)."""
    ref = ref_from_key(str(item.get("resource", "")))
    if ref is None or not item.get("action"):
        raise ConfigError(f"ledger record of {action_id} is malformed: no action or resource")
    before = item.get("before") or {}
    if isinstance(before, str):
        try:
            before = json.loads(before)
        except ValueError as exc:
            raise ConfigError(f"ledger record of {action_id} is malformed: its before-state is not JSON") from exc
    result, detail = str(item.get("result") or "started"), str(item.get("detail") or "")
    if result == "started" and outcome is not None and outcome.get("result"):
        result, detail = str(outcome["result"]), str(outcome.get("detail") or "")
    return ActionRecord(action_id, str(item["action"]), ref, tuple(item.get("controls") or ()), before, result,
                        detail, item.get("at"))


class RestoreLedger(Protocol):
    where: str

    def action(self, action_id: str) -> ActionRecord | None: ...
    def record_restore(self, action_id: str, item: Mapping[str, Any]) -> None: ...


class FileLedger:
    """The JSON-lines ledger of `netguard scan --enforce --ledger-file`: the last line for a (pk, sk) wins;
    a restore is appended as a new line."""

    def __init__(self, path: str) -> None:
        if not os.path.isfile(path):
            raise ConfigError(f"no ledger file {path} (give --ledger-file, or set NETGUARD_LEDGER_TABLE)")
        self.path = path
        self.where = f"ledger file {path}"

    def action(self, action_id: str) -> ActionRecord | None:
        pk = action_pk(action_id)
        item: dict[str, Any] | None = None
        outcome: dict[str, Any] | None = None
        with open(self.path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    log.warning("%s:%d is not JSON: skipped", self.path, number)
                    continue
                if not isinstance(record, dict):
                    continue
                if record.get("pk") == pk and record.get("sk") == "action":
                    item = record
                elif record.get("action_id") == action_id and str(record.get("sk", "")).startswith("decision#"):
                    outcome = record
        return None if item is None else record_from_item(action_id, item, outcome)

    def record_restore(self, action_id: str, item: Mapping[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"pk": action_pk(action_id), "sk": f"restore#{item['at']}", **item},
                                    default=str) + "\n")


def _plain(value: Mapping[str, Any]) -> Any:
    """A DynamoDB attribute value as plain Python (the ledger writes S, N, BOOL and lists of S)."""
    kind, inner = next(iter(value.items()))
    if kind == "L":
        return [_plain(v) for v in inner]
    if kind == "M":
        return {k: _plain(v) for k, v in inner.items()}
    if kind == "N":
        return int(inner) if inner.lstrip("-").isdigit() else float(inner)
    if kind == "NULL":
        return None
    return inner


class TableLedger:
    """The DynamoDB ledger (NETGUARD_LEDGER_TABLE): a restore is a new item pk = action#<id>,
    sk = restore#<time>, kept as long as the action's record. Anyone who can write the table could write
    an action: each record's signature is checked with the ledger key (`kms`: a KMS client, `key_id`)."""

    def __init__(self, table_name: str, ddb: Any, retention_days: int = 400, key_id: str | None = None,
                 kms: Any = None) -> None:
        self.table_name, self.ddb, self.retention = table_name, ddb, dt.timedelta(days=retention_days)
        self.key_id, self.kms = key_id, kms
        self.where = f"ledger table {table_name}"

    def action(self, action_id: str) -> ActionRecord | None:
        item = self.ddb.get_item(TableName=self.table_name, ConsistentRead=True,
                                 Key={"pk": {"S": action_pk(action_id)}, "sk": {"S": "action"}}).get("Item")
        if not item:
            return None
        plain = {k: _plain(v) for k, v in item.items()}
        record = record_from_item(action_id, plain)
        return dataclasses.replace(record, signature=self._signature(action_id, plain))

    def _signature(self, action_id: str, item: Mapping[str, Any]) -> str:
        mac = item.get("mac")
        if not isinstance(mac, str) or not mac:
            return UNSIGNED
        if self.key_id is None or self.kms is None:
            return NO_KEY
        try:
            raw = base64.b64decode(mac, validate=True)
        except ValueError:
            return BAD_SIGNATURE
        try:
            valid = self.kms.verify_mac(KeyId=self.key_id, MacAlgorithm=MAC_ALGORITHM, Mac=raw,
                                        Message=action_message(action_id, item)).get("MacValid")
        except ClientError as exc:
            if error_code(exc) != "KMSInvalidMacException":
                raise
            valid = False
        return SIGNED if valid else BAD_SIGNATURE

    def record_restore(self, action_id: str, item: Mapping[str, Any]) -> None:
        expires = int((dt.datetime.now(dt.timezone.utc) + self.retention).timestamp())
        values: dict[str, Any] = {"pk": {"S": action_pk(action_id)}, "sk": {"S": f"restore#{item['at']}"},
                                  "expires_at": {"N": str(expires)}}
        for key, value in item.items():
            if value is not None:
                values[key] = {"S": value if isinstance(value, str) else canonical_json(value)}
        self.ddb.put_item(TableName=self.table_name, Item=values, ConditionExpression="attribute_not_exists(sk)")


def open_ledger(ledger_file: str | None, table_name: str | None, clients: Clients, region: str | None,
                retention_days: int = 400, key_id: str | None = None) -> RestoreLedger:
    """--ledger-file if given, else the table (NETGUARD_LEDGER_TABLE, its records checked with the ledger
    key `key_id`), else netguard-ledger.jsonl."""
    if ledger_file:
        return FileLedger(ledger_file)
    if table_name:
        kms = clients.client("kms", key_region(key_id) or region) if key_id else None
        return TableLedger(table_name, clients.client("dynamodb", region), retention_days, key_id, kms)
    return FileLedger("netguard-ledger.jsonl")


# --- planning: what to write, from the before-state and the resource now -----------------------

@dataclass(frozen=True)
class RestoreRequest:
    record: ActionRecord
    current: Resource  # the resource as read now
    clients: Clients
    start: bool = False  # start a quarantined notebook again

    def client(self, service: str) -> Any:
        ref = self.record.ref
        return self.clients.client(service, ref.region, ref.account)


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
    """Rule ids revoke_rules found already gone (its detail says so): netguard did not remove those."""
    found = re.search(r"already gone: ([^)]*)\)", detail)
    return {r.strip() for r in found.group(1).split(",")} if found else set()


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


def _attribute_plan(req: RestoreRequest, fields: tuple[str, ...], call: Callable[[str, Any], Call],
                    read: Callable[[Resource, str], Any] = lambda r, f: r.state.get(f)) -> Plan:
    """Set each recorded attribute back, in order, when it differs now (None: not recorded, left)."""
    calls, unchanged = [], []
    for name in fields:
        wanted = req.record.before.get(name)
        if wanted is None:
            continue
        now = read(req.current, name)
        if now == wanted:
            unchanged.append(f"{name} is {wanted}")
        else:
            calls.append(call(name, wanted))
    return Plan(tuple(calls), tuple(unchanged))


def plan_vpc_dns(req: RestoreRequest) -> Plan:
    """ModifyVpcAttribute takes one attribute per call. DNS hostnames need DNS support: turning back
    off, hostnames go first; turning back on, support goes first."""
    order = ("EnableDnsSupport", "EnableDnsHostnames")
    if req.record.before.get("EnableDnsSupport") is False:
        order = order[::-1]
    vpc_id = req.record.ref.resource_id
    return _attribute_plan(req, order, lambda name, value: Call(
        "ec2", "ModifyVpcAttribute", {"VpcId": vpc_id, name: {"Value": bool(value)}}, f"set {name} back to {value}"),
        read=lambda resource, name: bool(resource.state.get(name)))


def plan_public_ip(req: RestoreRequest) -> Plan:
    subnet_id = req.record.ref.resource_id
    return _attribute_plan(req, ("MapPublicIpOnLaunch",), lambda name, value: Call(
        "ec2", "ModifySubnetAttribute", {"SubnetId": subnet_id, name: {"Value": bool(value)}},
        f"set {name} back to {value}"))


def plan_private_dns(req: RestoreRequest) -> Plan:
    endpoint_id = req.record.ref.resource_id
    return _attribute_plan(req, ("PrivateDnsEnabled",), lambda name, value: Call(
        "ec2", "ModifyVpcEndpoint", {"VpcEndpointId": endpoint_id, name: bool(value)}, f"set {name} back to {value}"))


def plan_domain(req: RestoreRequest) -> Plan:
    """UpdateDomain; AWS accepts a network change only while no Studio app is InService, Pending or Deleting."""
    domain_id = req.record.ref.resource_id
    plan = _attribute_plan(req, ("AppNetworkAccessType",), lambda name, value: Call(
        "sagemaker", "UpdateDomain", {"DomainId": domain_id, name: value}, f"set {name} back to {value}"))
    running = req.current.state.get("RunningApps")
    if plan.calls and running:
        note = f"apps {', '.join(running)} run: AWS refuses the change until they are stopped"
        return Plan(plan.calls, plan.unchanged, (note,))
    return plan


def _tag_call(ref: ResourceRef, arn: str, key: str, value: str | None) -> Call:
    """Put `key`=value back, or delete `key` (value None), on a SageMaker or an EC2 resource."""
    if ref.resource_type in SAGEMAKER_TYPES:
        if value is None:
            return Call("sagemaker", "DeleteTags", {"ResourceArn": arn, "TagKeys": [key]}, f"remove the tag {key}")
        return Call("sagemaker", "AddTags", {"ResourceArn": arn, "Tags": [{"Key": key, "Value": value}]},
                    f"put the tag {key}={value} back")
    if value is None:
        return Call("ec2", "DeleteTags", {"Resources": [ref.resource_id], "Tags": [{"Key": key}]},
                    f"remove the tag {key}")
    return Call("ec2", "CreateTags", {"Resources": [ref.resource_id], "Tags": [{"Key": key, "Value": value}]},
                f"put the tag {key}={value} back")


def plan_owner(req: RestoreRequest) -> Plan:
    """Remove the Owner tag netguard added (or put the previous value back). An Owner someone set
    since netguard's is theirs: left."""
    old, now = req.record.before.get(OWNER_TAG), req.current.tags.get(OWNER_TAG)
    if now == old:
        return Plan(unchanged=(f"{OWNER_TAG} is {'absent' if old is None else repr(old)}, as before",))
    prefix = f"tagged {OWNER_TAG}="
    set_by_netguard = req.record.detail[len(prefix):] if req.record.detail.startswith(prefix) else None
    if now is not None and set_by_netguard is not None and now != set_by_netguard:
        return Plan(unchanged=(f"{OWNER_TAG} is now {now!r}, not netguard's {set_by_netguard!r}: changed since, left",))
    return Plan((_tag_call(req.record.ref, req.current.arn, OWNER_TAG, old),))


def plan_notebook(req: RestoreRequest) -> Plan:
    """Remove the quarantine tag (or put a previous one back). Start the notebook only when asked
    (--start), only if it was running before, and only from Stopped (the one state AWS starts from)."""
    ref, current = req.record.ref, req.current
    calls, unchanged, notes = [], [], []
    old, now = req.record.before.get(QUARANTINE_TAG), current.tags.get(QUARANTINE_TAG)
    if now == old:
        unchanged.append(f"{QUARANTINE_TAG} is {'absent' if old is None else repr(old)}, as before")
    else:
        calls.append(_tag_call(ref, current.arn, QUARANTINE_TAG, old))
    was, status = req.record.before.get("NotebookInstanceStatus"), current.state.get("NotebookInstanceStatus")
    if was != "InService":
        if req.start:
            notes.append(f"it was {was} before netguard acted: not started")
    elif not req.start:
        notes.append(f"the notebook is {status}: not started (pass --start to start it once it is Stopped)")
    elif status == "Stopped":
        calls.append(Call("sagemaker", "StartNotebookInstance", {"NotebookInstanceName": ref.resource_id},
                          "start the notebook (it was InService before netguard stopped it)"))
    elif status in ("Pending", "InService"):
        unchanged.append(f"the notebook is {status}")
    else:
        notes.append(f"the notebook is {status}: AWS starts it only from Stopped; run restore --start again then")
    return Plan(tuple(calls), tuple(unchanged), tuple(notes))


def plan_job(req: RestoreRequest) -> Plan:
    return Plan(refused="SageMaker cannot restart a stopped job: run it again (a new job, with compliant network "
                        "settings)")


def _created(req: RestoreRequest, pattern: str) -> str | None:
    """The one id of that kind the action's detail names (the remediation says what it created)."""
    found = set(re.findall(pattern, req.record.detail))
    return found.pop() if len(found) == 1 else None


def plan_flow_log(req: RestoreRequest) -> Plan:
    """Delete the flow log netguard created: named in the action's detail, on this VPC, tagged
    netguard:created-by, and not one of those that existed before. Anything else is refused."""
    vpc_id = req.record.ref.resource_id
    flow_log_id = _created(req, r"\bfl-[0-9a-f]+\b")
    if flow_log_id is None:
        return Plan(refused=f"the record does not name the flow log netguard created ({req.record.detail!r})")
    if flow_log_id in {f.get("FlowLogId") for f in req.record.before.get("FlowLogs") or []}:
        return Plan(refused=f"{flow_log_id} existed before netguard acted: not netguard's to delete")
    found = req.client("ec2").describe_flow_logs(FlowLogIds=[flow_log_id]).get("FlowLogs", [])
    if not found:
        return Plan(unchanged=(f"flow log {flow_log_id} no longer exists",))
    flow_log = found[0]
    tags = {t.get("Key") for t in flow_log.get("Tags", [])}
    if flow_log.get("ResourceId") != vpc_id or CREATED_BY_TAG not in tags:
        return Plan(refused=f"{flow_log_id} is not on {vpc_id} with the {CREATED_BY_TAG} tag: not deleted")
    return Plan((Call("ec2", "DeleteFlowLogs", {"FlowLogIds": [flow_log_id]},
                      f"delete the ALL flow log {flow_log_id} netguard created",
                      done_codes=("InvalidFlowLogId.NotFound",)),),
                notes=("without it the VPC has no record of its traffic",))


def plan_s3_endpoint(req: RestoreRequest) -> Plan:
    """Delete the S3 gateway endpoint netguard created, under the same conditions as a flow log."""
    vpc_id = req.record.ref.resource_id
    endpoint_id = _created(req, r"\bvpce-[0-9a-f]+\b")
    if endpoint_id is None:
        return Plan(refused=f"the record does not name the endpoint netguard created ({req.record.detail!r})")
    if endpoint_id in {e.get("VpcEndpointId") for e in req.record.before.get("Endpoints") or []}:
        return Plan(refused=f"{endpoint_id} existed before netguard acted: not netguard's to delete")
    try:
        found = req.client("ec2").describe_vpc_endpoints(VpcEndpointIds=[endpoint_id]).get("VpcEndpoints", [])
    except ClientError as exc:
        if error_code(exc) not in ("InvalidVpcEndpointId.NotFound", "InvalidVpcEndpoint.NotFound"):
            raise
        found = []
    if not found or str(found[0].get("State", "")).lower() in ("deleted", "deleting"):
        return Plan(unchanged=(f"endpoint {endpoint_id} no longer exists",))
    endpoint = found[0]
    tags = {t.get("Key") for t in endpoint.get("Tags", [])}
    if (endpoint.get("VpcId") != vpc_id or endpoint.get("VpcEndpointType") != "Gateway"
            or not str(endpoint.get("ServiceName", "")).endswith(".s3") or CREATED_BY_TAG not in tags):
        return Plan(refused=f"{endpoint_id} is not an S3 gateway endpoint on {vpc_id} with the {CREATED_BY_TAG} tag: "
                            "not deleted")
    return Plan((Call("ec2", "DeleteVpcEndpoints", {"VpcEndpointIds": [endpoint_id]},
                      f"delete the S3 gateway endpoint {endpoint_id} netguard created",
                      done_codes=("InvalidVpcEndpointId.NotFound", "InvalidVpcEndpoint.NotFound")),),
                notes=("S3 traffic from the private subnets then leaves the VPC again (NAT or internet gateway)",))


PLANNERS: dict[str, Callable[[RestoreRequest], Plan]] = {
    "revoke_rules": plan_rules,
    "enable_vpc_dns": plan_vpc_dns,
    "disable_public_ip_on_launch": plan_public_ip,
    "enable_private_dns": plan_private_dns,
    "domain_vpc_only": plan_domain,
    "tag_owner": plan_owner,
    "quarantine_notebook": plan_notebook,
    "stop_job": plan_job,
    "create_flow_log_all": plan_flow_log,
    "create_s3_gateway_endpoint": plan_s3_endpoint,
}
# What each action acts on, to read it now (a sanity check on the record as well).
ACTS_ON = {"revoke_rules": (SECURITY_GROUP,), "enable_vpc_dns": (VPC,), "disable_public_ip_on_launch": (SUBNET,),
           "enable_private_dns": (VPC_ENDPOINT,), "domain_vpc_only": (DOMAIN,), "quarantine_notebook": (NOTEBOOK,),
           "create_flow_log_all": (VPC,), "create_s3_gateway_endpoint": (VPC,)}


# --- executing ---------------------------------------------------------------------------------

def _call_view(call: Call, result: str, error: str | None = None) -> dict[str, Any]:
    view = {"service": call.service, "operation": call.operation, "params": json.loads(canonical_json(call.params)),
            "says": call.says, "result": result}
    return {**view, "error": error} if error else view


def execute(calls: tuple[Call, ...], client: Callable[[str], Any]) -> tuple[list[dict[str, Any]], str | None]:
    """Make the calls in order; stop at the first failure (later calls may depend on it).
    Returns each call with its result ('done', 'already', 'failed' with its error, then 'not made'),
    and the error, if any."""
    views, error = [], None
    for call in calls:
        if error is not None:
            views.append(_call_view(call, "not made"))
            continue
        try:
            answer = getattr(client(call.service), call.method)(**call.params)
            failed = answer.get("Unsuccessful") or []  # DeleteFlowLogs, DeleteVpcEndpoints: errors in the answer
            codes = [(f.get("Error") or {}).get("Code", "") for f in failed]
            if failed and not all(code in call.done_codes for code in codes):
                message = (failed[0].get("Error") or {}).get("Message", "")
                error = f"{call.operation}: {codes[0]}: {message}"
                views.append(_call_view(call, "failed", f"{codes[0]}: {message}"))
                continue
            views.append(_call_view(call, "already" if failed else "done"))
        except (ClientError, BotoCoreError) as exc:  # no answer (a timeout) is a failure too
            if error_code(exc) in call.done_codes:
                views.append(_call_view(call, "already"))
                continue
            error = f"{call.operation}: {error_code(exc)}: {error_message(exc)}"
            views.append(_call_view(call, "failed", f"{error_code(exc)}: {error_message(exc)}"))
    return views, error


# --- the whole restore -------------------------------------------------------------------------

def read_now(clients: Clients, ref: ResourceRef) -> Resource | None:
    """The resource as it is now, in the shape the before-state was recorded in (None: it is gone)."""
    collected = Collector(clients, {ref.resource_type}).collect([ref], follow=False)
    for failed, message in collected.errors:
        if failed == ref:
            raise ReadError(f"could not read {ref.resource_id}: {message}")
    return next((r for r in collected.resources if r.ref == ref), None)


def _again_note(record: ActionRecord, current: Resource, policy_dir: str | None) -> str | None:
    """Restoring brings the violation back: netguard acts again unless the resource is exempt."""
    if not record.controls:
        return None
    try:
        policy = load_policy(policy_dir)
        max_days = Settings.from_env().max_exemption_days
    except (PolicyError, ConfigError):
        policy, max_days = None, 0
    today = dt.datetime.now(dt.timezone.utc).date()
    if policy is not None:
        known = {c.id for c in policy.controls}
        acting = [c for c in record.controls if c in known
                  and not exemption_for(policy, c, current, today, max_days).exempt]
    else:
        acting = list(record.controls)
    if not acting:
        return f"the resource is exempt from {', '.join(record.controls)}: netguard leaves the restored state"
    return (f"the restored state fails {', '.join(acting)} again: netguard remediates it again on the next event or "
            f"scan unless the resource is exempt (tags netguard:exempt='{join_ids(acting)}', netguard:exempt-until and "
            "netguard:exempt-reason, or policies/exemptions.toml) or the control is in alert mode")


def plan_restore(record: ActionRecord, clients: Clients, start: bool = False,
                 policy_dir: str | None = None) -> Plan:
    """What to write to bring back the before-state of this action (reads only)."""
    if record.result == ALREADY_DONE:
        return Plan(nothing=f"the action changed nothing ({record.detail or 'already done'})")
    if record.result != SUCCEEDED:
        why = ("never finished: whether it wrote anything is unknown" if record.result == "started"
               else "changed nothing")
        return Plan(refused=f"the action {record.result} ({record.detail or 'no detail'}): it {why}; check the resource")
    planner = PLANNERS.get(record.action)
    if planner is None:
        return Plan(refused=f"netguard does not know how to restore {record.action}")
    if planner is plan_job:
        return plan_job(RestoreRequest(record, Resource(record.ref, "", {}), clients, start))
    expected = ACTS_ON.get(record.action)
    if expected and record.ref.resource_type not in expected:
        return Plan(refused=f"{record.action} does not act on {record.ref.resource_type}: the record is inconsistent")
    current = read_now(clients, record.ref)
    if current is None:
        return Plan(refused=f"{record.ref.resource_id} no longer exists: nothing to restore it on")
    plan = planner(RestoreRequest(record, current, clients, start))
    note = _again_note(record, current, policy_dir) if plan.calls and not plan.refused else None
    return Plan(plan.calls, plan.unchanged, plan.notes + (note,), plan.refused) if note else plan


def _opens_to_the_internet(calls: tuple[Call, ...], record: ActionRecord, policy_dir: str | None) -> list[str]:
    """The rules these calls would authorize from the internet (SG.1's reading of it: 0.0.0.0/0, ::/0,
    a public range wider than its max_public_prefix_ipv4/6, or a prefix list that held one when netguard
    revoked the rule)."""
    try:
        params = load_policy(policy_dir).control("SG.1").params
    except (PolicyError, KeyError):
        params = {}
    listed = {r.get("PrefixListId"): r.get("PrefixListCidrs") or [] for r in record.before.get("Rules") or []}
    found = []
    for call in calls:
        for permission in call.params.get("IpPermissions", []) if call.operation.startswith("Authorize") else []:
            cidrs = [r.get("CidrIp") for r in permission.get("IpRanges", [])]
            cidrs += [r.get("CidrIpv6") for r in permission.get("Ipv6Ranges", [])]
            cidrs += [c for r in permission.get("PrefixListIds", []) for c in listed.get(r.get("PrefixListId"), [])]
            found += [f"{call.params.get('GroupId')} {permission.get('IpProtocol')} "
                      f"{permission.get('FromPort', 'all')} from {c}" for c in cidrs if internet_range(c, params)]
    return found


def restore_action(ledger: RestoreLedger, clients: Clients, action_id: str, dry_run: bool = False,
                   start: bool = False, policy_dir: str | None = None, yes: bool = False,
                   allow_unsigned: bool = False, alert: Callable[[RestoreReport], list[str]] | None = None
                   ) -> RestoreReport:
    """Plan, then (unless dry_run) make the calls, record the restore in the ledger and alert it.
    Refused: a record of a DynamoDB ledger not signed with the ledger key (unless `allow_unsigned`),
    and re-opening a security group to the internet without `yes`. Raises UnknownAction, ConfigError
    (credentials of another account), ReadError; AWS errors of the ledger propagate. A failed write is
    reported (result FAILED), not raised. `alert` sends the report's alert; what it says is in `alerted`."""
    record = ledger.action(action_id)
    if record is None:
        raise UnknownAction(f"no action {action_id} in the {ledger.where}")
    if not clients.member_role and record.ref.account != clients.home_account:
        raise ConfigError(f"{action_id} acted in account {record.ref.account}, these credentials are for "
                          f"{clients.home_account}: use a profile of {record.ref.account} (or --member-role)")
    problem = SIGNATURE_PROBLEMS.get(record.signature)
    if problem and not allow_unsigned:
        plan = Plan(refused=f"{problem}; not restored (--allow-unsigned trusts whoever can write the ledger)")
    else:
        plan = plan_restore(record, clients, start, policy_dir)
    notes = ([f"trusted without a valid signature (--allow-unsigned): {problem}"] if problem else []) + list(plan.notes)
    internet = _opens_to_the_internet(plan.calls, record, policy_dir) if not plan.refused else []
    if internet and not yes:
        if dry_run:
            notes.append(f"re-opens to the internet ({'; '.join(internet)}): the restore needs --yes")
        else:
            plan = Plan(refused=f"this would re-open {'; '.join(internet)} to the internet: pass --yes if that is "
                                "intended (SG.1 remediates it again unless the group is exempt)")
    report = RestoreReport(record, REFUSED, "", dry_run=dry_run, unchanged=list(plan.unchanged), notes=notes)
    if plan.refused:
        report.detail = plan.refused
    elif plan.nothing:
        report.result, report.detail = NOTHING_TO_RESTORE, f"nothing to restore: {plan.nothing}"
    elif not plan.calls:
        report.result, report.detail = ALREADY_RESTORED, "nothing written: the resource already matches the before-state"
    elif dry_run:
        report.calls = [_call_view(c, "would call") for c in plan.calls]
        report.result, report.detail = WOULD_RESTORE, f"would make {len(plan.calls)} call(s); nothing written"
    else:
        ref = record.ref
        report.calls, error = execute(plan.calls, lambda service: clients.client(service, ref.region, ref.account))
        if error:
            report.result, report.detail = FAILED, error
        elif any(c["result"] == "done" for c in report.calls):
            done = sum(c["result"] == "done" for c in report.calls)
            report.result, report.detail = RESTORED, f"the before-state is back ({done} call(s) made)"
        else:
            report.result, report.detail = ALREADY_RESTORED, "nothing written: the resource already matches the before-state"
    if not dry_run:
        _record(ledger, clients, report)
        if alert is not None:
            report.alerted = alert(report)
    return report


def _record(ledger: RestoreLedger, clients: Clients, report: RestoreReport) -> None:
    """A new ledger item for this restore; the action's own record stays as it is."""
    try:
        principal = clients.client("sts", report.record.ref.region).get_caller_identity().get("Arn")
    except (ClientError, BotoCoreError):
        principal = None
    report.principal = principal
    item = {"at": _now(), "action": report.record.action, "resource": report.record.ref.key,
            "result": report.result, "detail": report.detail, "principal": principal,
            "calls": [{"operation": f"{c['service']}:{c['operation']}", "params": c["params"], "result": c["result"]}
                      for c in report.calls]}
    try:
        ledger.record_restore(report.record.action_id, item)
        report.recorded = True
    except (ClientError, BotoCoreError, OSError) as exc:
        report.record_error = f"{error_code(exc) or type(exc).__name__}: {error_message(exc)}"
        log.error("could not record the restore of %s in the %s: %s", report.record.action_id, ledger.where,
                  report.record_error)


# --- the alert ---------------------------------------------------------------------------------

def restore_notice(report: RestoreReport) -> dict[str, Any]:
    """Every restore is alerted (a restore puts a violation back): who ran it, on what, and what it did."""
    from .notify import build_notice  # noqa: PLC0415

    record, ref = report.record, report.record.ref
    calls = "; ".join(f"{c['operation']} {c['result']}" for c in report.calls) or "no call made"
    text = (f"{report.principal or 'an unknown principal'} ran netguard restore of action {record.action_id} "
            f"({record.action} for {', '.join(record.controls) or 'no control'}, record {record.signature}) on "
            f"{ref.resource_type} {ref.resource_id} ({ref.account}/{ref.region}): {report.result}: {report.detail} "
            f"({calls})")
    return build_notice(f"restore-{record.action_id}-{_now()}"[:128], f"netguard restore {report.result}", text,
                        account=ref.account)


def alert_sender(settings: Settings, clients: Clients, table_region: str | None,
                 use_table: bool) -> Callable[[RestoreReport], list[str]]:
    """How a restore is alerted: on the channels configured where it runs; where none is, through the
    DynamoDB ledger's undelivered alerts (`use_table`), which the deployed stack's next sweep delivers on
    its own channels; else it says it could not."""
    from .ledger import DynamoLedger  # noqa: PLC0415
    from .notify import Notifier  # noqa: PLC0415

    ledger = DynamoLedger(str(settings.ledger_table), clients, table_region) if use_table else None
    configured = bool(settings.alert_topic_arn or settings.slack_webhook_param)

    def send(report: RestoreReport) -> list[str]:
        notice = restore_notice(report)
        if configured:
            results = Notifier(settings, clients, ledger=ledger).send(notice)
            return [f"{channel}: {result}" for channel, result in sorted(results.items())]
        if ledger is not None:
            why = "restore ran where no alert channel is configured: the next sweep delivers it"
            try:
                for channel in ("sns", "slack"):
                    ledger.record_undelivered(notice, channel, why)
            except (ClientError, BotoCoreError) as exc:
                log.error("restore not alerted: %s; the alert: %s", error_code(exc), json.dumps(notice))
                return [f"not alerted: {error_code(exc)}"]
            return ["recorded in the ledger for the next sweep to deliver"]
        log.warning("restore not alerted (no alert channel configured): %s", notice["text"])
        return ["not alerted: no alert channel configured (NETGUARD_ALERT_TOPIC_ARN, NETGUARD_SLACK_WEBHOOK_PARAM)"]

    return send
