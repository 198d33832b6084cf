"""Restore: undo one recorded remediation from the ledger's before-state (`netguard restore <action-id>`).

ledger (action#<id>) -> read the resource as it is now (the collectors: the same shape as the
before-state) -> plan (the calls that bring the before-state back, what already matches it, or why the
action cannot be undone: the action's own `undo`) -> execute (the executor remediation uses), or only print
them (dry-run) -> record the restore as its own ledger item (sk = restore#<time>) -> alert it.

Idempotent: what already matches the before-state is not written again, so a second run changes
nothing and says "already restored". What cannot be undone is refused with the reason: a stopped job
(SageMaker cannot restart it), an action that failed or never finished, a created flow log or endpoint
that the record does not name or that does not carry netguard's `netguard:created-by` tag.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..actions.base import Call, Plan, RestoreRequest, call_view, execute, first_failure
from ..actions.catalog import acts_on
from ..aws import Clients, error_code, error_message
from ..checks import internet_range
from ..collect import Collector
from ..errors import ConfigError, NetguardError, PolicyError
from ..model import ALREADY_DONE, SUCCEEDED, Resource, ResourceRef, join_ids
from ..policy import exemption_for, load_policy
from ..remediate import ACTIONS
from ..settings import Settings
from .records import SIGNATURE_PROBLEMS, ActionRecord, RestoreLedger, UnknownAction, timestamp

log = logging.getLogger("netguard.restore")

# Restore results.
RESTORED = "restored"
ALREADY_RESTORED = "already-restored"  # the resource already matches the before-state
NOTHING_TO_RESTORE = "nothing-to-restore"  # the action found its containment in place and changed nothing
WOULD_RESTORE = "would-restore"  # dry-run
REFUSED = "refused"  # cannot be undone; nothing written
FAILED = "failed"  # an AWS call failed; the calls before it were made


class ReadError(NetguardError):
    """The resource could not be read (access, throttling): nothing was planned or written."""


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


# What each action acts on, to read it now (a sanity check on the record as well).
ACTS_ON = acts_on()


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
    today = dt.datetime.now(dt.UTC).date()
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
        return Plan(refused=f"the action {record.result} ({record.detail or 'no detail'}): it {why}; "
                            "check the resource")
    spec = ACTIONS.get(record.action)
    if spec is not None and spec.irreversible:
        return Plan(refused=spec.irreversible)
    if spec is None or spec.undo is None:
        return Plan(refused=f"netguard does not know how to restore {record.action}")
    expected = ACTS_ON.get(record.action)
    if expected and record.ref.resource_type not in expected:
        return Plan(refused=f"{record.action} does not act on {record.ref.resource_type}: the record is inconsistent")
    current = read_now(clients, record.ref)
    if current is None:
        return Plan(refused=f"{record.ref.resource_id} no longer exists: nothing to restore it on")
    plan = spec.undo(RestoreRequest(record, current, clients, start))
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
        report.result, report.detail = ALREADY_RESTORED, ("nothing written: the resource already matches "
                                                          "the before-state")
    elif dry_run:
        report.calls = [call_view(c, "would call") for c in plan.calls]
        report.result, report.detail = WOULD_RESTORE, f"would make {len(plan.calls)} call(s); nothing written"
    else:
        ref = record.ref
        made = execute(plan.calls, lambda service: clients.client(service, ref.region, ref.account))
        report.calls = [m.view() for m in made]
        failed = first_failure(made)
        if failed is not None:
            report.result, report.detail = FAILED, failed.failure_text()
        elif any(c["result"] == "done" for c in report.calls):
            done = sum(c["result"] == "done" for c in report.calls)
            report.result, report.detail = RESTORED, f"the before-state is back ({done} call(s) made)"
        else:
            report.result, report.detail = ALREADY_RESTORED, ("nothing written: the resource already matches "
                                                              "the before-state")
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
    item = {"at": timestamp(), "action": report.record.action, "resource": report.record.ref.key,
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
    from ..notify import build_notice  # noqa: PLC0415

    record, ref = report.record, report.record.ref
    calls = "; ".join(f"{c['operation']} {c['result']}" for c in report.calls) or "no call made"
    text = (f"{report.principal or 'an unknown principal'} ran netguard restore of action {record.action_id} "
            f"({record.action} for {', '.join(record.controls) or 'no control'}, record {record.signature}) on "
            f"{ref.resource_type} {ref.resource_id} ({ref.account}/{ref.region}): {report.result}: {report.detail} "
            f"({calls})")
    return build_notice(f"restore-{record.action_id}-{timestamp()}"[:128], f"netguard restore {report.result}", text,
                        account=ref.account)


def alert_sender(settings: Settings, clients: Clients, table_region: str | None,
                 use_table: bool) -> Callable[[RestoreReport], list[str]]:
    """How a restore is alerted: on the channels configured where it runs; where none is, through the
    DynamoDB ledger's undelivered alerts (`use_table`), which the deployed stack's next sweep delivers on
    its own channels; else it says it could not."""
    from ..ledger import DynamoLedger  # noqa: PLC0415
    from ..notify import Notifier  # noqa: PLC0415

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
