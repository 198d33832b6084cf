"""The ledger's logic, written once over a few storage primitives (as Powertools' BasePersistenceLayer is
for its idempotency records): what each item holds, the claim rule, settlement, the blast-radius budget,
sweep records and the dependency index. memory.py (in memory, optionally a JSON-lines file) and
dynamodb.py (the table) implement the primitives, and whatever they do better their own way (DynamoDB
batches and transactions).

One DynamoDB table (partition key `pk`, sort key `sk`, both strings; TTL attribute `expires_at`)
holds, side by side with Powertools' idempotency records:

  pk = res#<account>#<region>#<type>#<id>   sk = decision#<time>#<event id>#<control>  a decision and its outcome
  pk = res#<account>#<region>#<type>#<id>   sk = claim#<control>#<kind>#<fingerprint>  "this violation is handled"
  pk = action#<action id>                   sk = action                                an action: before-state, result
  pk = alert#undelivered                    sk = <time>#<alert id>                     an alert a channel failed to take
  pk = uses#<account>#<region>#<type>#<id>  sk = <account>#<region>#<type>#<id>        what uses a subnet or flow log
  pk = budget#<account>#<severity>          sk = window#<start>                        enforce actions taken in a window
  pk = budget#org#<severity>                sk = window#<start>                        ... in every account together
  pk = sweep#<sweep id>                     sk = meta | stats#<part>                   a sweep's progress and figures
  pk = hub#<account>#<region>               sk = <Security Hub finding id>             a finding imported FAILED, open

A claim is a conditional put: the first event to see a violation (same control, same resource
version, same evidence) wins; later deliveries or other events for it are duplicates, unless
rules.CLAIM_OPEN says it can be taken again.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from botocore.exceptions import ClientError

from ..aws import AWS_ERRORS, error_code
from ..model import Decision, EventContext, Finding, Outcome, ResourceRef, finished_job
from . import rules
from .rules import (
    CLAIM_OPEN,
    USES_TTL,
    AllOf,
    AnyOf,
    Clause,
    Compare,
    Missing,
    Present,
    _iso,
    budget_counters,
    budget_window,
    claim_sk,
    claim_values,
    ref_from_key,
    resource_pk,
    sweep_pk,
    uses_pk,
)

log = logging.getLogger("netguard.ledger")
Key = tuple[str, str]

NEW: Clause = Missing("pk")  # an item written once (an action, a sweep's meta and stats)
BELOW_LIMIT: Clause = AnyOf((Missing("count"), Compare("count", "<", ":limit")))  # a budget counter with room
DIGEST_UNSENT: Clause = AllOf((Present("pk"), Missing("digest")))  # a sweep's digest not claimed yet
NOT_NOTIFIED: Clause = Missing("notified")  # a counter's first refusal in its window
UNDELIVERED = "alert#undelivered"
HUB = "hub#"  # + <account>#<region>: the Security Hub findings netguard imported FAILED and has not resolved


class Ledger(Protocol):
    def claim(self, finding: Finding, kind: str, context: EventContext) -> bool: ...
    def claim_many(self, claims: list[tuple[Finding, str]], context: EventContext,
                   attempts: int = 3) -> list[bool | Exception]: ...
    def settle_claim(self, finding: Finding, kind: str, result: str) -> None: ...
    def record_action(self, action_id: str, action: str, ref: ResourceRef, controls: tuple[str, ...],
                      before: Mapping[str, Any], context: EventContext) -> None: ...
    def finish_action(self, action_id: str, result: str, detail: str) -> None: ...
    def record_decision(self, context: EventContext, outcome: Outcome) -> None: ...
    def settle_run(self, context: EventContext, claims: list[tuple[Finding, str, str]],
                   actions: list[tuple[str, str, str]], decisions: list[Outcome],
                   attempts: int = 3) -> list[tuple[str, str]]: ...
    def record_undelivered(self, alert: Mapping[str, Any], channel: str, error: str) -> None: ...
    def remember_uses(self, user: ResourceRef, used: list[ResourceRef], environment: str | None = None) -> None: ...
    def users_of(self, used: ResourceRef) -> list[ResourceRef]: ...
    def users_with_environment(self, used: ResourceRef) -> list[tuple[ResourceRef, str | None]]: ...
    def take_action_budget(self, account: str, severity: str, limit: int, org_limit: int | None,
                           minutes: int) -> tuple[str | None, bool]: ...


def decision_item(context: EventContext, outcome: Outcome) -> dict[str, Any]:
    """The ledger's view of one decision: event id, control, resource, before-state, action, result, time."""
    decision: Decision = outcome.decision
    finding = decision.finding
    ref = finding.resource.ref
    return {
        "event_id": context.event_id,
        "trigger": context.trigger,
        "event_name": context.event_name,
        "principal": context.principal,
        "control": finding.control.id,
        "resource": {"type": ref.resource_type, "id": ref.resource_id, "arn": finding.resource.arn,
                     "account": ref.account, "region": ref.region},
        "status": finding.status,
        "evidence": finding.evidence,
        "before": finding.resource.state,
        "decision": decision.kind,
        "reason": decision.reason,
        "action": decision.action,
        "action_id": outcome.action_id,
        "result": outcome.result,
        "detail": outcome.detail,
    }


class LedgerBase(ABC):
    """The ledger's logic over storage primitives (the abstract methods). A backend sets `dedup` (how
    long a claim holds) and `retention` (how long DynamoDB's TTL keeps records; None: records are kept
    as written, with no `expires_at` and no stamp of their own)."""

    dedup: dt.timedelta
    # How long the claim on a finished job's violation holds: as long as a sweep still lists the job
    # (NETGUARD_JOB_LOOKBACK_DAYS), so that it is recorded and alerted once, not once per dedup window.
    finished_hold: dt.timedelta = dt.timedelta(days=90)
    retention: dt.timedelta | None = None
    error_chars: int | None = None  # how much of an undelivered alert's error is kept (None: all)

    # --- storage primitives ---

    @abstractmethod
    def _put(self, item: Mapping[str, Any], new: bool = False) -> None:
        """Write a record whole. `new`: only where its key is free (DynamoDB checks it and raises; the
        file backend, whose one process makes its own keys, does not)."""

    @abstractmethod
    def _put_if(self, item: Mapping[str, Any], condition: Clause, values: Mapping[str, Any]) -> bool:
        """Write `item` whole if `condition` holds for what its key holds now (rules.holds); False, and
        nothing written, if not."""

    @abstractmethod
    def _put_index(self, item: Mapping[str, Any]) -> None:
        """Write an entry of the dependency index (no record of the audit trail: the file backend keeps
        it in memory only)."""

    @abstractmethod
    def _update(self, key: Key, set_: Mapping[str, Any] | None = None, add: Mapping[str, int] | None = None,
                condition: Clause | None = None, values: Mapping[str, Any] | None = None) -> bool:
        """Set attributes of the item at `key` and add to its numbers (a missing one counts from 0), the
        item made if there is none (as UpdateItem does), if `condition` holds: False, and nothing
        written, if not."""

    @abstractmethod
    def _get(self, key: Key, attributes: tuple[str, ...] | None = None) -> dict[str, Any] | None:
        """The item at `key` (read after every write to it), or None."""

    @abstractmethod
    def _query(self, pk: str, prefix: str = "", consistent: bool = False,
               attributes: tuple[str, ...] | None = None) -> Iterator[dict[str, Any]]:
        """The items of partition `pk` whose sort key starts with `prefix`, in sort key order."""

    @abstractmethod
    def _delete(self, key: Key) -> None: ...

    @abstractmethod
    def _encode(self, value: Any) -> Any:
        """Nested data (a before-state, an alert, a sweep's figures) as the backend stores it."""

    @abstractmethod
    def _decode(self, value: Any) -> Any: ...

    def _atomic(self) -> contextlib.AbstractContextManager[Any]:
        """Held around the budget's steps: the memory backend's lock makes them one (DynamoDB's
        conditional updates keep the counters right without it)."""
        return contextlib.nullcontext()

    @abstractmethod
    def _claim_taken(self, item: dict[str, Any]) -> None:
        """A claim this ledger took (DynamoDB writes it whole when it is settled)."""

    @abstractmethod
    def _action_started(self, action_id: str, item: dict[str, Any]) -> None:
        """An action record this ledger wrote (DynamoDB writes it whole, signed, when it is finished)."""

    # --- what the items hold ---

    def _expiry(self, now: dt.datetime, ttl: dt.timedelta | None = None) -> dict[str, int]:
        """expires_at for DynamoDB's TTL, `ttl` (else `retention`) from now; nothing if records are kept."""
        if self.retention is None:
            return {}
        return {"expires_at": int((now + (ttl or self.retention)).timestamp())}

    def _kept(self, now: dt.datetime) -> dict[str, Any]:
        """When a record was written and when it expires (a decision's or an undelivered alert's); nothing
        if records are kept (their keys hold the time)."""
        return {} if self.retention is None else {"at": _iso(now), **self._expiry(now)}

    def _hold(self, finding: Finding) -> dt.timedelta:
        """How long a claim on `finding` holds: the dedup window, or for a finished job (which nothing
        can change any more) `finished_hold`."""
        return self.finished_hold if finished_job(finding.resource) else self.dedup

    @staticmethod
    def _claim_key(finding: Finding, kind: str) -> Key:
        return resource_pk(finding.resource.ref), claim_sk(finding, kind)

    def _claim_item(self, finding: Finding, kind: str, context: EventContext, now: dt.datetime) -> dict[str, Any]:
        pk, sk = self._claim_key(finding, kind)
        return {"pk": pk, "sk": sk, "event_id": context.event_id, "at": _iso(now),
                "expires_at": int((now + self._hold(finding)).timestamp())}

    @staticmethod
    def _settled(result: str, now: dt.datetime) -> dict[str, Any]:
        return {"result": result, "settled_at": _iso(now)}

    @staticmethod
    def _finished(result: str, detail: str, now: dt.datetime) -> dict[str, Any]:
        return {"result": result, "detail": detail, "finished_at": _iso(now)}

    def _decision_record(self, context: EventContext, outcome: Outcome, now: dt.datetime) -> dict[str, Any]:
        item = decision_item(context, outcome)
        for key in ("resource", "evidence", "before"):
            item[key] = self._encode(item[key])
        finding = outcome.decision.finding
        return {"pk": resource_pk(finding.resource.ref),
                "sk": f"decision#{_iso(now)}#{context.event_id}#{finding.control.id}", **self._kept(now), **item}

    def _uses_item(self, user: ResourceRef, used: ResourceRef, environment: str | None,
                   now: dt.datetime) -> dict[str, Any]:
        return {"pk": uses_pk(used), "sk": user.key, **self._expiry(now, USES_TTL), "environment": environment}

    def _sweep_stats_item(self, sweep_id: str, key: str, stats: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
        return {"pk": sweep_pk(sweep_id), "sk": f"stats#{key}", "stats": self._encode(dict(stats)),
                **self._expiry(now)}

    # --- claims, actions, decisions ---

    def claim(self, finding: Finding, kind: str, context: EventContext) -> bool:
        """Take the claim on this violation if rules.CLAIM_OPEN allows: False for a duplicate."""
        now = rules.utcnow()
        item = self._claim_item(finding, kind, context, now)
        if not self._put_if(item, CLAIM_OPEN, claim_values(finding.resource.read_at, now, self._hold(finding))):
            return False
        self._claim_taken(item)
        return True

    def claim_many(self, claims: list[tuple[Finding, str]], context: EventContext,
                   attempts: int = 3) -> list[bool | Exception]:
        return [self.claim(finding, kind, context) for finding, kind in claims]

    def settle_claim(self, finding: Finding, kind: str, result: str) -> None:
        self._update(self._claim_key(finding, kind), self._settled(result, rules.utcnow()))

    def record_action(self, action_id: str, action: str, ref: ResourceRef, controls: tuple[str, ...],
                      before: Mapping[str, Any], context: EventContext) -> None:
        now = rules.utcnow()
        item = {"pk": f"action#{action_id}", "sk": "action", "action": action, "resource": ref.key,
                "controls": list(controls), "before": self._encode(before), "event_id": context.event_id,
                "result": "started", "at": _iso(now), **self._expiry(now)}
        self._put(item, new=True)
        self._action_started(action_id, item)

    def finish_action(self, action_id: str, result: str, detail: str) -> None:
        self._update((f"action#{action_id}", "action"), self._finished(result, detail, rules.utcnow()))

    def record_decision(self, context: EventContext, outcome: Outcome) -> None:
        self._put(self._decision_record(context, outcome, rules.utcnow()))

    def settle_run(self, context: EventContext, claims: list[tuple[Finding, str, str]],
                   actions: list[tuple[str, str, str]], decisions: list[Outcome],
                   attempts: int = 3) -> list[tuple[str, str]]:
        """What a run settles (claims' and actions' results, the decisions), one write each. Returns
        what could not be written: (what, error)."""
        for finding, kind, result in claims:
            self.settle_claim(finding, kind, result)
        for action_id, result, detail in actions:
            self.finish_action(action_id, result, detail)
        for outcome in decisions:
            self.record_decision(context, outcome)
        return []

    # --- alerts a channel did not take ---

    def record_undelivered(self, alert: Mapping[str, Any], channel: str, error: str) -> None:
        now = rules.utcnow()
        self._put({"pk": UNDELIVERED, "sk": f"{_iso(now)}#{alert.get('alert_id')}#{channel}", "channel": channel,
                   "error": error if self.error_chars is None else error[:self.error_chars],
                   "alert": self._encode(dict(alert)), **self._kept(now)})

    def undelivered(self) -> Iterator[dict[str, Any]]:
        """Every alert a channel did not take, oldest first: {"sk", "channel", "alert"} (a page at a time)."""
        for item in self._query(UNDELIVERED, consistent=True):
            yield {"sk": item["sk"], "channel": item["channel"], "alert": self._decode(item["alert"])}

    def settle_undelivered(self, sk: str) -> None:
        """The alert was delivered after all: forget it."""
        self._delete((UNDELIVERED, sk))

    # --- Security Hub: which imported findings are open (notify/securityhub.py) ---

    def hub_open(self, account: str, region: str) -> dict[str, str]:
        """{finding id: since} of the findings netguard imported FAILED in this account and region and has not
        resolved. It only says which compliant findings to send: a resolution needs the resource seen compliant."""
        return {item["sk"]: str(item.get("since", ""))
                for item in self._query(f"{HUB}{account}#{region}", consistent=True)}

    def hub_mark(self, account: str, region: str, finding_id: str, since: str) -> None:
        self._put({"pk": f"{HUB}{account}#{region}", "sk": finding_id, "since": since, **self._kept(rules.utcnow())})

    def hub_close(self, account: str, region: str, finding_id: str) -> None:
        self._delete((f"{HUB}{account}#{region}", finding_id))

    # --- the dependency index ---

    def remember_uses(self, user: ResourceRef, used: list[ResourceRef], environment: str | None = None) -> None:
        """pk = uses#<used>, sk = <user>: one partition per shared resource lists what depends on it
        (with the user's Environment tag, for VPC.11)."""
        now = rules.utcnow()
        for ref in used:
            self._put_index(self._uses_item(user, ref, environment, now))

    def remember_many(self, entries: list[tuple[ResourceRef, list[ResourceRef], str | None]]) -> None:
        for user, used, environment in entries:
            self.remember_uses(user, used, environment)

    def users_of(self, used: ResourceRef) -> list[ResourceRef]:
        return [ref for ref, _ in self.users_with_environment(used)]

    def users_with_environment(self, used: ResourceRef) -> list[tuple[ResourceRef, str | None]]:
        found: list[tuple[ResourceRef, str | None]] = []
        for item in self._query(uses_pk(used), attributes=("sk", "environment")):
            ref = ref_from_key(item["sk"])
            if ref is not None:
                found.append((ref, item.get("environment")))
        return found

    # --- blast radius (see pipeline.py) ---

    def take_action_budget(self, account: str, severity: str, limit: int, org_limit: int | None,
                           minutes: int) -> tuple[str | None, bool]:
        """Take one enforce action of `severity` from the current window's budgets of `account` and (with
        an `org_limit`) of the organization: (None, False) when allowed, else (the scope whose limit is
        reached, whether this is that counter's first refusal of the window, which sends the one "limit
        reached" alert).
        One conditional counter update per scope, in turn (a transaction on the hot organization counter
        would meet conflicts under load); the account's is given back when the organization refuses,
        and if that fails too the account's counts one action more than it took: fewer actions, never more."""
        with self._atomic():
            now = rules.utcnow()
            window = f"window#{budget_window(now, minutes)}"
            expiry = self._expiry(now, dt.timedelta(minutes=2 * minutes))
            taken: list[Key] = []
            for pk, cap, scope in budget_counters(account, severity, limit, org_limit):
                key = (pk, window)
                try:
                    room = self._update(key, set_=expiry, add={"count": 1}, condition=BELOW_LIMIT,
                                        values={":limit": cap})
                except ClientError:
                    self._give_back(taken)
                    raise
                if room:
                    taken.append(key)
                    continue
                self._give_back(taken)
                return scope, self._update(key, set_={"notified": True}, condition=NOT_NOTIFIED)
            return None, False

    def _give_back(self, keys: list[Key]) -> None:
        for key in keys:
            try:
                self._update(key, add={"count": -1})
            except AWS_ERRORS as exc:  # the counter stays one higher: one action fewer this window
                log.warning("blast radius: a counter not given back (%s)", error_code(exc))

    # --- sweeps (see sweep.py): pk = sweep#<id>; sk = meta (expected/done counters) or stats#<part> ---

    def start_sweep(self, sweep_id: str, targets: list[str]) -> None:
        now = rules.utcnow()
        self._put({"pk": sweep_pk(sweep_id), "sk": "meta", "expected": len(targets), "done": 0, "targets": targets,
                   "started": _iso(now), **self._expiry(now)}, new=True)

    @abstractmethod
    def record_sweep_stats(self, sweep_id: str, key: str, stats: Mapping[str, Any],
                           final: bool) -> tuple[int, int] | None:
        """Record one worker invocation's figures and, for the last of an account-region, count it done,
        at once: a redelivered message is recorded (and counted) once. Returns (done, expected) after
        it, or None if this part was already recorded."""

    def sweep_targets(self, sweep_id: str) -> list[str] | None:
        """The account/region targets start_sweep recorded (None: no such sweep)."""
        meta = self._get((sweep_pk(sweep_id), "meta"), attributes=("targets",))
        return None if meta is None else list(meta.get("targets", []))

    def sweep_stats(self, sweep_id: str) -> list[dict[str, Any]]:
        return [self._decode(item["stats"]) for item in self._query(sweep_pk(sweep_id), "stats#", consistent=True)]

    def claim_digest(self, sweep_id: str) -> bool:
        """The digest of a sweep is sent once, by whoever claims it first."""
        return self._update((sweep_pk(sweep_id), "meta"), set_={"digest": _iso(rules.utcnow())},
                            condition=DIGEST_UNSENT)
