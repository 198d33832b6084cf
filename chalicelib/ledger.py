"""Record: the audit trail of every decision and action, and the claims that make actions happen once.

One DynamoDB table (partition key `pk`, sort key `sk`, both strings; TTL attribute `expires_at`)
holds, side by side with Powertools' idempotency records:

  pk = res#<account>#<region>#<type>#<id>   sk = decision#<time>#<event id>#<control>   a decision and its outcome
  pk = res#<account>#<region>#<type>#<id>   sk = claim#<control>#<kind>#<fingerprint>     "this violation is handled"
  pk = action#<action id>                   sk = action                                   an action, its before-state, result
  pk = alert#undelivered                    sk = <time>#<alert id>                        an alert a channel failed to take
  pk = uses#<account>#<region>#<type>#<id>  sk = <account>#<region>#<type>#<id>            what uses a subnet or flow log
  pk = budget#<account>#<severity>          sk = window#<start>                            enforce actions taken in a window
  pk = budget#org#<severity>                sk = window#<start>                            ... in every account together
  pk = sweep#<sweep id>                     sk = meta | stats#<part>                       a sweep's progress and figures

A claim is a conditional put: the first event to see a violation (same control, same resource
version, same evidence) wins; later deliveries or other events for it are duplicates. A claim can be
taken again (`claim_open`, stated once more as the DynamoDB condition of `_claim_put`):
- when its action failed, so a later event retries;
- when it was left without a result for 15 minutes (its invocation died);
- when it has expired (NETGUARD_DEDUP_HOURS), checked in the condition itself, since DynamoDB's TTL
  deletes expired items only within a day or two;
- when the violation was resolved (netguard's action succeeded, or found it done) before the state
  now seen was read: the violation came back after its fix and is handled again, every time;
- when netguard cannot have written it (taken or settled in the future, expiring beyond the dedup
  window): whoever can write the ledger could plant one to hold a violation back.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import uuid
from typing import Any, Callable, Iterator, Mapping, Protocol

from botocore.exceptions import ClientError

from .aws import AWS_ERRORS, Clients, concurrently, error_code, error_message
from .model import (
    ALREADY_DONE,
    DEFERRED,
    FAILED,
    REMEDIATE,
    SUCCEEDED,
    Decision,
    EventContext,
    Finding,
    Outcome,
    ResourceRef,
    canonical_json,
)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# A claim with no result this old was taken by an invocation that died before settling it (a Lambda
# runs 15 minutes at most): it can be taken again.
STALE_CLAIM = dt.timedelta(minutes=15)


CLOCK_SKEW = dt.timedelta(minutes=5)  # between the clocks of netguard's containers, at most
# A claim settled with one of these: its violation was resolved at `settled_at`.
RESOLVED = (SUCCEEDED, ALREADY_DONE)


def claim_open(existing: Mapping[str, Any] | None, read_at: str, now: dt.datetime,
               dedup: dt.timedelta) -> bool:
    """May a claim be taken, given the claim item already there (None: none)? Yes for a new claim; one
    whose action failed; one left without a result for STALE_CLAIM (its invocation died); one past its
    own expiry (TTL deletion lags by up to two days); one whose violation was resolved before
    `read_at`, when the state that shows the violation again was read (it came back after its fix);
    and one netguard cannot have written (an expiry beyond `dedup` from now, a time in the future), which
    whoever can write the ledger could plant to hold a violation back. DynamoLedger._claim_put says the
    same as a condition expression."""
    if existing is None:
        return True
    result = existing.get("result")
    if result == FAILED:
        return True
    if result is None and str(existing.get("at", "")) < _iso(now - STALE_CLAIM):
        return True
    expires = existing.get("expires_at")
    latest = int((now + dedup + CLOCK_SKEW).timestamp())
    if isinstance(expires, int) and not int(now.timestamp()) <= expires <= latest:
        return True  # expired, or expiring later than any claim netguard writes: not one of its claims
    future = _iso(now + CLOCK_SKEW)
    if str(existing.get("at", "")) > future or str(existing.get("settled_at", "")) > future:
        return True  # taken or settled in the future: written by someone else, to hold violations back
    settled = existing.get("settled_at")
    return result in RESOLVED and isinstance(settled, str) and settled < read_at


def resource_pk(ref: ResourceRef) -> str:
    return f"res#{ref.key}"


def claim_sk(finding: Finding, kind: str) -> str:
    """Acting (or waiting to act) depends on the resource's lifecycle; telling does not."""
    key = finding.versioned_fingerprint if kind in (REMEDIATE, DEFERRED) else finding.fingerprint
    return f"claim#{finding.control.id}#{kind}#{key}"


def budget_window(now: dt.datetime, minutes: int) -> str:
    """The start of the fixed window `now` falls in (UTC), as text."""
    seconds = minutes * 60
    start = int(now.timestamp()) // seconds * seconds
    return dt.datetime.fromtimestamp(start, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def window_end(now: dt.datetime, minutes: int) -> str:
    """When the fixed window `now` falls in ends (UTC), as text."""
    seconds = minutes * 60
    end = (int(now.timestamp()) // seconds + 1) * seconds
    return dt.datetime.fromtimestamp(end, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def budget_counters(account: str, severity: str, limit: int, org_limit: int | None) -> list[tuple[str, int, str]]:
    """(pk, limit, scope) of the counters one enforce action takes from: its account's and (unless
    `org_limit` is None: it cannot bind) the organization's, both for its severity (a flood of
    low-severity fixes cannot spend a critical one's)."""
    counters = [(f"budget#{account}#{severity}", limit, "account")]
    if org_limit is not None:
        counters.append((f"budget#org#{severity}", org_limit, "organization"))
    return counters


def sweep_pk(sweep_id: str) -> str:
    return f"sweep#{sweep_id}"


def new_action_id() -> str:
    return f"act-{uuid.uuid4().hex[:20]}"


log = logging.getLogger("netguard.ledger")
USES_TTL = dt.timedelta(days=30)  # renewed whenever the user is read again (events and sweeps)


def uses_pk(used: ResourceRef) -> str:
    return f"uses#{used.key}"


def ref_from_key(key: str) -> ResourceRef | None:
    parts = key.split("#")
    return ResourceRef(parts[2], parts[3], parts[0], parts[1]) if len(parts) == 4 else None


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


class MemoryLedger:
    """A ledger in memory (tests, read-only scans, local --enforce without a table), optionally
    appending every record as one JSON line to `path`."""

    def __init__(self, path: str | None = None, dedup_hours: int = 24) -> None:
        self.path = path
        self.dedup = dt.timedelta(hours=dedup_hours)
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def _put(self, pk: str, sk: str, item: Mapping[str, Any]) -> None:
        record = {"pk": pk, "sk": sk, **item}
        self.items[(pk, sk)] = record
        if self.path:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, default=str) + "\n")

    def claim(self, finding: Finding, kind: str, context: EventContext) -> bool:
        key = (resource_pk(finding.resource.ref), claim_sk(finding, kind))
        now = utcnow()
        with self._lock:
            if not claim_open(self.items.get(key), finding.resource.read_at, now, self.dedup):
                return False
            self._put(*key, {"event_id": context.event_id, "at": _iso(now),
                             "expires_at": int((now + self.dedup).timestamp())})
            return True

    def claim_many(self, claims: list[tuple[Finding, str]], context: EventContext,
                   attempts: int = 3) -> list[bool | Exception]:
        return [self.claim(finding, kind, context) for finding, kind in claims]  # claims cannot fail here

    def settle_claim(self, finding: Finding, kind: str, result: str) -> None:
        key = (resource_pk(finding.resource.ref), claim_sk(finding, kind))
        with self._lock:
            if key in self.items:
                self.items[key].update(result=result, settled_at=_iso(utcnow()))

    def record_action(self, action_id, action, ref, controls, before, context) -> None:
        with self._lock:
            self._put(f"action#{action_id}", "action", {
                "action": action, "resource": ref.key, "controls": list(controls), "before": before,
                "event_id": context.event_id, "result": "started", "at": _iso(utcnow())})

    def finish_action(self, action_id: str, result: str, detail: str) -> None:
        with self._lock:
            item = self.items.get((f"action#{action_id}", "action"))
            if item is not None:
                item.update(result=result, detail=detail, finished_at=_iso(utcnow()))

    def record_decision(self, context: EventContext, outcome: Outcome) -> None:
        ref = outcome.decision.finding.resource.ref
        with self._lock:
            self._put(resource_pk(ref), f"decision#{_iso(utcnow())}#{context.event_id}#{outcome.decision.finding.control.id}",
                      decision_item(context, outcome))

    def settle_run(self, context: EventContext, claims: list[tuple[Finding, str, str]],
                   actions: list[tuple[str, str, str]], decisions: list[Outcome],
                   attempts: int = 3) -> list[tuple[str, str]]:
        for finding, kind, result in claims:
            self.settle_claim(finding, kind, result)
        for action_id, result, detail in actions:
            self.finish_action(action_id, result, detail)
        for outcome in decisions:
            self.record_decision(context, outcome)
        return []

    def record_undelivered(self, alert: Mapping[str, Any], channel: str, error: str) -> None:
        with self._lock:
            self._put("alert#undelivered", f"{_iso(utcnow())}#{alert.get('alert_id')}#{channel}",
                      {"channel": channel, "error": error, "alert": dict(alert)})

    def undelivered(self) -> Iterator[dict[str, Any]]:
        with self._lock:
            found = sorted((sk, item) for (pk, sk), item in self.items.items() if pk == "alert#undelivered")
        return iter([{"sk": sk, "channel": item["channel"], "alert": item["alert"]} for sk, item in found])

    def settle_undelivered(self, sk: str) -> None:
        with self._lock:
            self.items.pop(("alert#undelivered", sk), None)

    def remember_uses(self, user: ResourceRef, used: list[ResourceRef], environment: str | None = None) -> None:
        with self._lock:
            for ref in used:
                self.items[(uses_pk(ref), user.key)] = {"pk": uses_pk(ref), "sk": user.key,
                                                        "environment": environment}

    def remember_many(self, entries: list[tuple[ResourceRef, list[ResourceRef], str | None]]) -> None:
        for user, used, environment in entries:
            self.remember_uses(user, used, environment)

    def users_of(self, used: ResourceRef) -> list[ResourceRef]:
        return [ref for ref, _ in self.users_with_environment(used)]

    def users_with_environment(self, used: ResourceRef) -> list[tuple[ResourceRef, str | None]]:
        with self._lock:
            found = sorted((sk, item.get("environment")) for (pk, sk), item in self.items.items() if pk == uses_pk(used))
        return [(ref, env) for ref, env in ((ref_from_key(k), e) for k, e in found) if ref is not None]

    def records(self, prefix: str) -> list[dict[str, Any]]:
        return [v for (pk, sk), v in self.items.items() if sk.startswith(prefix) or pk.startswith(prefix)]

    # --- blast radius (see pipeline.py) ---

    def take_action_budget(self, account: str, severity: str, limit: int, org_limit: int | None,
                           minutes: int) -> tuple[str | None, bool]:
        with self._lock:
            window = f"window#{budget_window(utcnow(), minutes)}"
            counters = [(self.items.setdefault((pk, window), {"pk": pk, "sk": window, "count": 0}), cap, scope)
                        for pk, cap, scope in budget_counters(account, severity, limit, org_limit)]
            for item, cap, scope in counters:
                if item["count"] >= cap:
                    first = not item.get("notified")
                    item["notified"] = True
                    return scope, first
            for item, _, _ in counters:
                item["count"] += 1
            return None, False

    # --- sweeps (see sweep.py) ---

    def start_sweep(self, sweep_id: str, targets: list[str]) -> None:
        with self._lock:
            self._put(sweep_pk(sweep_id), "meta", {"expected": len(targets), "done": 0, "targets": targets,
                                                   "started": _iso(utcnow())})

    def record_sweep_stats(self, sweep_id: str, key: str, stats: Mapping[str, Any], final: bool) -> tuple[int, int] | None:
        with self._lock:
            sk = f"stats#{key}"
            meta = self.items.get((sweep_pk(sweep_id), "meta"))
            if (sweep_pk(sweep_id), sk) in self.items or meta is None:
                return None  # already recorded (a redelivered message), or an unknown sweep
            self._put(sweep_pk(sweep_id), sk, {"stats": dict(stats)})
            if final:
                meta["done"] += 1
            return meta["done"], meta["expected"]

    def sweep_targets(self, sweep_id: str) -> list[str] | None:
        with self._lock:
            meta = self.items.get((sweep_pk(sweep_id), "meta"))
        return None if meta is None else list(meta.get("targets", []))

    def sweep_stats(self, sweep_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(v["stats"]) for (pk, sk), v in sorted(self.items.items())
                    if pk == sweep_pk(sweep_id) and sk.startswith("stats#")]

    def claim_digest(self, sweep_id: str) -> bool:
        with self._lock:
            meta = self.items.get((sweep_pk(sweep_id), "meta"))
            if meta is None or meta.get("digest"):
                return False
            meta["digest"] = _iso(utcnow())
            return True


def _to_dynamo(value: Any) -> Any:
    """DynamoDB takes no floats and no empty-key maps: store nested data as canonical JSON text."""
    return canonical_json(value)


BATCH_WRITE_ITEMS = 25  # DynamoDB's limit of writes per BatchWriteItem
TRANSACT_ITEMS = 100  # DynamoDB's limit of items per TransactWriteItems


def _key(item: Mapping[str, Any]) -> tuple[str, str]:
    return str(item["pk"]), str(item["sk"])


def _attempt(write: Callable[[], Any], attempts: int) -> str | None:
    """None once `write` succeeds, else the last error after `attempts` tries."""
    error = None
    for _ in range(attempts):
        try:
            write()
            return None
        except AWS_ERRORS as exc:
            error = f"{error_code(exc)}: {error_message(exc)}"
    return error


class DynamoLedger:
    """The ledger in the DynamoDB table named by NETGUARD_LEDGER_TABLE."""

    def __init__(self, table_name: str, clients: Clients, region: str | None = None,
                 dedup_hours: int = 24, retention_days: int = 400, workers: int = 1, signer: Any = None) -> None:
        self.table_name = table_name
        self.signer = signer  # signing.Signer: settled action records carry its MAC (restore checks it)
        self.workers = workers  # concurrent batch writes (a sweep's chunk settles and indexes hundreds)
        self.ddb = clients.client("dynamodb", region)
        self.dedup = dt.timedelta(hours=dedup_hours)
        self.retention = dt.timedelta(days=retention_days)
        # What this container claimed and started and has not settled yet: settled, each is written
        # whole (with its result) by settle_run, in batches, rather than updated item by item.
        self._claimed: dict[tuple[str, str], dict[str, Any]] = {}
        self._started: dict[str, dict[str, Any]] = {}

    def _put(self, item: Mapping[str, Any], **kwargs: Any) -> None:
        self.ddb.put_item(TableName=self.table_name, Item=_serialize(item), **kwargs)

    def _claim_put(self, finding: Finding, kind: str, context: EventContext) -> tuple[dict[str, Any], dict[str, Any]]:
        """A claim's item, and the conditional put that takes it: `claim_open`'s rules as a condition
        (new, failed, left unsettled for STALE_CLAIM, expired, resolved before the state was read, or not
        one netguard can have written)."""
        now = utcnow()
        item = {"pk": resource_pk(finding.resource.ref), "sk": claim_sk(finding, kind), "event_id": context.event_id,
                "at": _iso(now), "expires_at": int((now + self.dedup).timestamp())}
        return item, {"TableName": self.table_name, "Item": _serialize(item),
                      "ConditionExpression": "attribute_not_exists(sk) OR #r = :failed OR "
                                             "(attribute_not_exists(#r) AND #at < :stale) OR "
                                             "expires_at < :now OR expires_at > :latest OR "
                                             "#at > :now_iso OR settled_at > :now_iso OR "
                                             "(#r IN (:succeeded, :already) AND settled_at < :read)",
                      "ExpressionAttributeNames": {"#r": "result", "#at": "at"},
                      "ExpressionAttributeValues": {
                          ":failed": {"S": FAILED}, ":stale": {"S": _iso(now - STALE_CLAIM)},
                          ":now": {"N": str(int(now.timestamp()))},
                          ":latest": {"N": str(int((now + self.dedup + CLOCK_SKEW).timestamp()))},
                          ":now_iso": {"S": _iso(now + CLOCK_SKEW)},
                          ":succeeded": {"S": SUCCEEDED}, ":already": {"S": ALREADY_DONE},
                          ":read": {"S": finding.resource.read_at}}}

    def claim(self, finding: Finding, kind: str, context: EventContext) -> bool:
        item, put = self._claim_put(finding, kind, context)
        try:
            self.ddb.put_item(**put)
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        self._claimed[_key(item)] = item
        return True

    def claim_many(self, claims: list[tuple[Finding, str]], context: EventContext,
                   attempts: int = 3) -> list[bool | Exception]:
        """claim() for each (finding, kind), answered in order, made TRANSACT_ITEMS at a time in
        TransactWriteItems: one call for an event's claims, a dozen for a sweep's thousand, with the
        same conditions. A transaction is all or nothing: when DynamoDB cancels it because some claims
        are taken already, those are answered False and the others are tried again (nothing of a
        cancelled transaction is written). Its ClientRequestToken makes botocore's retry of a call
        that did go through succeed again, rather than fail on its own claims. A call that fails
        otherwise falls back to one claim() per item (each answers True, False or its error)."""
        answers: list[bool | Exception | None] = [None] * len(claims)
        puts: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
        seen: set[tuple[str, str]] = set()
        for index, (finding, kind) in enumerate(claims):
            item, put = self._claim_put(finding, kind, context)
            if _key(item) in seen:  # one transaction cannot write an item twice: the first claim decides
                answers[index] = False
            else:
                seen.add(_key(item))
                puts[index] = (item, put)
        pending = list(puts) if len(puts) > 1 else []  # one claim: one conditional put
        alone = [i for i in puts if i not in pending]
        for start in range(0, len(pending), TRANSACT_ITEMS):
            group = pending[start:start + TRANSACT_ITEMS]
            for attempt in range(attempts):
                if not group:
                    break
                try:
                    self.ddb.transact_write_items(TransactItems=[{"Put": puts[i][1]} for i in group],
                                                  ClientRequestToken=str(uuid.uuid4()))
                except ClientError as exc:
                    if error_code(exc) != "TransactionCanceledException":
                        break
                    reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                    if len(reasons) != len(group):
                        break
                    for i, code in zip(group, reasons):
                        if code == "ConditionalCheckFailed":
                            answers[i] = False
                    group = [i for i in group if answers[i] is None]
                    if all(code in ("None", "ConditionalCheckFailed") for code in reasons):
                        continue  # only claims taken already: the rest again, at once
                    time.sleep(0.05 * 2 ** attempt)  # a conflict with another transaction, or throttling
                    continue
                except AWS_ERRORS:
                    break
                for i in group:
                    answers[i] = True
                    self._claimed[_key(puts[i][0])] = puts[i][0]
                group = []
            alone += group  # not settled by a transaction: one claim at a time
        for i in alone:
            try:
                answers[i] = self.claim(*claims[i], context)
            except AWS_ERRORS as exc:
                answers[i] = exc
        return [a if a is not None else False for a in answers]

    def _settle_claim_op(self, finding: Finding, kind: str, result: str) -> dict[str, Any]:
        return {"Update": {
            "TableName": self.table_name,
            "Key": {"pk": {"S": resource_pk(finding.resource.ref)}, "sk": {"S": claim_sk(finding, kind)}},
            "UpdateExpression": "SET #r = :r, settled_at = :s", "ExpressionAttributeNames": {"#r": "result"},
            "ExpressionAttributeValues": {":r": {"S": result}, ":s": {"S": _iso(utcnow())}}}}

    def _apply(self, op: Mapping[str, Any]) -> None:
        """One write: {"Put": put_item's parameters} or {"Update": update_item's}."""
        if "Put" in op:
            self.ddb.put_item(**op["Put"])
        else:
            self.ddb.update_item(**op["Update"])

    def settle_claim(self, finding: Finding, kind: str, result: str) -> None:
        self._apply(self._settle_claim_op(finding, kind, result))

    def record_action(self, action_id, action, ref, controls, before, context) -> None:
        now = utcnow()
        item = {"pk": f"action#{action_id}", "sk": "action", "action": action, "resource": ref.key,
                "controls": list(controls), "before": _to_dynamo(before), "event_id": context.event_id,
                "result": "started", "at": _iso(now), "expires_at": int((now + self.retention).timestamp())}
        self._put(item, ConditionExpression="attribute_not_exists(pk)")
        self._started[action_id] = item

    def _finish_action_op(self, action_id: str, result: str, detail: str) -> dict[str, Any]:
        return {"Update": {
            "TableName": self.table_name, "Key": {"pk": {"S": f"action#{action_id}"}, "sk": {"S": "action"}},
            "UpdateExpression": "SET #r = :r, detail = :d, finished_at = :f",
            "ExpressionAttributeNames": {"#r": "result"},
            "ExpressionAttributeValues": {":r": {"S": result}, ":d": {"S": detail}, ":f": {"S": _iso(utcnow())}}}}

    def finish_action(self, action_id: str, result: str, detail: str) -> None:
        self._apply(self._finish_action_op(action_id, result, detail))

    def _decision_record(self, context: EventContext, outcome: Outcome) -> dict[str, Any]:
        now = utcnow()
        item = decision_item(context, outcome)
        for key in ("resource", "evidence", "before"):
            item[key] = _to_dynamo(item[key])
        ref = outcome.decision.finding.resource.ref
        return {"pk": resource_pk(ref), "sk": f"decision#{_iso(now)}#{context.event_id}#{outcome.decision.finding.control.id}",
                "at": _iso(now), "expires_at": int((now + self.retention).timestamp()), **item}

    def record_decision(self, context: EventContext, outcome: Outcome) -> None:
        self._put(self._decision_record(context, outcome))

    def settle_run(self, context: EventContext, claims: list[tuple[Finding, str, str]],
                   actions: list[tuple[str, str, str]], decisions: list[Outcome],
                   attempts: int = 3) -> list[tuple[str, str]]:
        """What a run settles (claims' and actions' results, the decisions), each item written whole
        with its result, 25 per BatchWriteItem: one call for an event, a few per sweep chunk (and half
        the write capacity of transactions). A claim or action this container did not make is updated
        on its own. Each write is tried `attempts` times (beyond botocore's own retries); items a
        batch leaves unwritten are written one by one. Returns what could not be written: (what, error)."""
        now = utcnow()
        whole: list[tuple[str, dict[str, Any]]] = []
        alone: list[tuple[str, dict[str, Any]]] = []
        for finding, kind, result in claims:
            what = f"the claim of {finding.control.id} on {finding.resource.ref.key}"
            claimed = self._claimed.pop((resource_pk(finding.resource.ref), claim_sk(finding, kind)), None)
            if claimed is None:
                alone.append((what, self._settle_claim_op(finding, kind, result)))
            else:
                whole.append((what, {**claimed, "result": result, "settled_at": _iso(now)}))
        finished: list[tuple[str, dict[str, Any]]] = []
        for action_id, result, detail in actions:
            started = self._started.pop(action_id, None)
            if started is None:  # not signed: restore refuses it, as it refuses an unfinished action
                alone.append((f"the result of {action_id}", self._finish_action_op(action_id, result, detail)))
            else:
                finished.append((action_id, {**started, "result": result, "detail": detail,
                                             "finished_at": _iso(now)}))
                whole.append((f"the result of {action_id}", finished[-1][1]))
        if self.signer is not None and finished:
            for (_, item), mac in zip(finished, concurrently(lambda done: self._mac(*done), finished, self.workers,
                                                             "netguard-sign")):
                item["mac"] = mac
        whole += [(f"the decision on {o.decision.finding.control.id} for {o.decision.finding.resource.ref.key}",
                   self._decision_record(context, o)) for o in decisions]
        parts = [whole[start:start + BATCH_WRITE_ITEMS] for start in range(0, len(whole), BATCH_WRITE_ITEMS)]
        unwritten = concurrently(lambda part: {_key(item) for _, item in part} if len(part) == 1 else self._batch_put(
            [item for _, item in part], attempts), parts, self.workers, "netguard-settle")
        for part, left in zip(parts, unwritten):
            alone += [(what, {"Put": {"TableName": self.table_name, "Item": _serialize(item)}})
                      for what, item in part if _key(item) in left]
        failed: list[tuple[str, str]] = []
        for what, op in alone:
            error = _attempt(lambda op=op: self._apply(op), attempts)
            if error is not None:
                failed.append((what, error))
        return failed

    def _mac(self, action_id: str, item: Mapping[str, Any]) -> str | None:
        """The signer's MAC of a settled action record; None (logged) when KMS cannot give it: the
        record is written unsigned, and restore refuses it."""
        try:
            return str(self.signer.mac_of(action_id, item))
        except AWS_ERRORS as exc:
            log.error("action %s not signed (%s): netguard restore will refuse it", action_id, error_code(exc))
            return None

    def _batch_put(self, items: list[dict[str, Any]], attempts: int) -> set[tuple[str, str]]:
        """Up to 25 items in BatchWriteItem calls, again for what DynamoDB leaves unprocessed or when a
        call fails, `attempts` times. Returns the keys of the items still unwritten."""
        left = {_key(item): {"PutRequest": {"Item": _serialize(item)}} for item in items}
        for attempt in range(attempts):
            try:
                answer = self.ddb.batch_write_item(RequestItems={self.table_name: list(left.values())})
            except AWS_ERRORS as exc:
                log.warning("ledger: %d items not written in a batch: %s", len(left), error_code(exc))
                continue
            unprocessed = (answer.get("UnprocessedItems") or {}).get(self.table_name, [])
            left = {(r["PutRequest"]["Item"]["pk"]["S"], r["PutRequest"]["Item"]["sk"]["S"]): r for r in unprocessed}
            if not left:
                break
            time.sleep(0.05 * 2 ** attempt)
        return set(left)

    def record_undelivered(self, alert: Mapping[str, Any], channel: str, error: str) -> None:
        now = utcnow()
        self._put({"pk": "alert#undelivered", "sk": f"{_iso(now)}#{alert.get('alert_id')}#{channel}",
                   "channel": channel, "error": error[:2000], "alert": _to_dynamo(alert), "at": _iso(now),
                   "expires_at": int((now + self.retention).timestamp())})


    def undelivered(self) -> Iterator[dict[str, Any]]:
        """Every alert a channel did not take, oldest first: {"sk", "channel", "alert"} (a page at a time)."""
        for page in self.ddb.get_paginator("query").paginate(
                TableName=self.table_name, KeyConditionExpression="pk = :pk", ConsistentRead=True,
                ExpressionAttributeValues={":pk": {"S": "alert#undelivered"}}):
            for item in page.get("Items", []):
                yield {"sk": item["sk"]["S"], "channel": item["channel"]["S"], "alert": json.loads(item["alert"]["S"])}

    def settle_undelivered(self, sk: str) -> None:
        """The alert was delivered after all: forget it."""
        self.ddb.delete_item(TableName=self.table_name, Key={"pk": {"S": "alert#undelivered"}, "sk": {"S": sk}})

    def remember_uses(self, user: ResourceRef, used: list[ResourceRef], environment: str | None = None) -> None:
        """pk = uses#<used>, sk = <user>: one partition per shared resource lists what depends on it
        (with the user's Environment tag, for VPC.11)."""
        expires = int((utcnow() + USES_TTL).timestamp())
        for ref in used:
            self._put({"pk": uses_pk(ref), "sk": user.key, "expires_at": expires, "environment": environment})

    def remember_many(self, entries: list[tuple[ResourceRef, list[ResourceRef], str | None]]) -> None:
        """remember_uses for many users, 25 items per BatchWriteItem (sweeps refresh the whole index)."""
        expires = int((utcnow() + USES_TTL).timestamp())
        items = {(uses_pk(ref), user.key): {"pk": uses_pk(ref), "sk": user.key, "expires_at": expires,
                                            "environment": environment}
                 for user, used, environment in entries for ref in used}
        requests = [{"PutRequest": {"Item": _serialize(item)}} for item in items.values()]

        def write(batch: list[dict[str, Any]]) -> None:
            pending = {self.table_name: batch}
            for attempt in range(5):
                unprocessed = self.ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                if not unprocessed:
                    return
                pending = unprocessed
                time.sleep(0.05 * 2 ** attempt)
            log.warning("dependency index: %d entries not written (throttled)", len(pending[self.table_name]))

        concurrently(write, [requests[start:start + BATCH_WRITE_ITEMS] for start in range(0, len(requests),
                                                                                           BATCH_WRITE_ITEMS)],
                     self.workers, "netguard-index")

    def users_of(self, used: ResourceRef) -> list[ResourceRef]:
        return [ref for ref, _ in self.users_with_environment(used)]

    def users_with_environment(self, used: ResourceRef) -> list[tuple[ResourceRef, str | None]]:
        found: list[tuple[ResourceRef, str | None]] = []
        for page in self.ddb.get_paginator("query").paginate(
                TableName=self.table_name, KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": uses_pk(used)}}, ProjectionExpression="sk, environment"):
            for item in page.get("Items", []):
                ref = ref_from_key(item["sk"]["S"])
                if ref is not None:
                    found.append((ref, item.get("environment", {}).get("S")))
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
        now = utcnow()
        window = {"S": f"window#{budget_window(now, minutes)}"}
        expires = {"N": str(int((now + dt.timedelta(minutes=2 * minutes)).timestamp()))}
        taken: list[dict[str, Any]] = []
        for pk, cap, scope in budget_counters(account, severity, limit, org_limit):
            key = {"pk": {"S": pk}, "sk": window}
            try:
                self.ddb.update_item(TableName=self.table_name, Key=key,
                                     UpdateExpression="ADD #c :one SET expires_at = :exp",
                                     ConditionExpression="attribute_not_exists(#c) OR #c < :limit",
                                     ExpressionAttributeNames={"#c": "count"},
                                     ExpressionAttributeValues={":one": {"N": "1"}, ":limit": {"N": str(cap)},
                                                                ":exp": expires})
                taken.append(key)
                continue
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    self._give_back(taken)
                    raise
            self._give_back(taken)
            return scope, self._first_refusal(key)
        return None, False

    def _give_back(self, keys: list[dict[str, Any]]) -> None:
        for key in keys:
            try:
                self.ddb.update_item(TableName=self.table_name, Key=key, UpdateExpression="ADD #c :minus",
                                     ExpressionAttributeNames={"#c": "count"},
                                     ExpressionAttributeValues={":minus": {"N": "-1"}})
            except AWS_ERRORS as exc:  # the counter stays one higher: one action fewer this window
                log.warning("blast radius: a counter not given back (%s)", error_code(exc))

    def _first_refusal(self, key: dict[str, Any]) -> bool:
        try:
            self.ddb.update_item(TableName=self.table_name, Key=key, UpdateExpression="SET notified = :t",
                                 ConditionExpression="attribute_not_exists(notified)",
                                 ExpressionAttributeValues={":t": {"BOOL": True}})
            return True
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            return False

    # --- sweeps (see sweep.py): pk = sweep#<id>; sk = meta (expected/done counters) or stats#<part> ---

    def start_sweep(self, sweep_id: str, targets: list[str]) -> None:
        now = utcnow()
        self._put({"pk": sweep_pk(sweep_id), "sk": "meta", "expected": len(targets), "done": 0,
                   "targets": targets, "started": _iso(now), "expires_at": int((now + self.retention).timestamp())},
                  ConditionExpression="attribute_not_exists(pk)")

    def record_sweep_stats(self, sweep_id: str, key: str, stats: Mapping[str, Any], final: bool) -> tuple[int, int] | None:
        """Record one worker invocation's figures and, for the last of an account-region, count it done,
        in one transaction: a redelivered message is recorded (and counted) once. Returns (done,
        expected) after it, or None if this part was already recorded."""
        now = utcnow()
        pk = {"S": sweep_pk(sweep_id)}
        writes: list[dict[str, Any]] = [{"Put": {
            "TableName": self.table_name,
            "Item": _serialize({"pk": sweep_pk(sweep_id), "sk": f"stats#{key}", "stats": _to_dynamo(stats),
                                "expires_at": int((now + self.retention).timestamp())}),
            "ConditionExpression": "attribute_not_exists(pk)"}}]
        if final:
            writes.append({"Update": {"TableName": self.table_name, "Key": {"pk": pk, "sk": {"S": "meta"}},
                                      "UpdateExpression": "ADD done :one", "ConditionExpression": "attribute_exists(pk)",
                                      "ExpressionAttributeValues": {":one": {"N": "1"}}}})
        try:
            self.ddb.transact_write_items(TransactItems=writes)
        except ClientError as exc:
            if error_code(exc) == "TransactionCanceledException":
                return None
            raise
        meta = self.ddb.get_item(TableName=self.table_name, Key={"pk": pk, "sk": {"S": "meta"}},
                                 ConsistentRead=True).get("Item", {})
        return int(meta.get("done", {}).get("N", "0")), int(meta.get("expected", {}).get("N", "0"))

    def sweep_targets(self, sweep_id: str) -> list[str] | None:
        """The account/region targets start_sweep recorded (None: no such sweep)."""
        meta = self.ddb.get_item(TableName=self.table_name, Key={"pk": {"S": sweep_pk(sweep_id)}, "sk": {"S": "meta"}},
                                 ConsistentRead=True, ProjectionExpression="targets").get("Item")
        if meta is None:
            return None
        return [value.get("S", "") for value in meta.get("targets", {}).get("L", [])]

    def sweep_stats(self, sweep_id: str) -> list[dict[str, Any]]:
        found = []
        for page in self.ddb.get_paginator("query").paginate(
                TableName=self.table_name, KeyConditionExpression="pk = :pk AND begins_with(sk, :s)",
                ExpressionAttributeValues={":pk": {"S": sweep_pk(sweep_id)}, ":s": {"S": "stats#"}},
                ConsistentRead=True):
            found += [json.loads(item["stats"]["S"]) for item in page.get("Items", [])]
        return found

    def claim_digest(self, sweep_id: str) -> bool:
        """The digest of a sweep is sent once, by whoever claims it first."""
        try:
            self.ddb.update_item(TableName=self.table_name, Key={"pk": {"S": sweep_pk(sweep_id)}, "sk": {"S": "meta"}},
                                 UpdateExpression="SET digest = :now",
                                 ConditionExpression="attribute_exists(pk) AND attribute_not_exists(digest)",
                                 ExpressionAttributeValues={":now": {"S": _iso(utcnow())}})
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True


class BufferedIndex:
    """The dependency index of a sweep: what each resource uses is written in batches (`flush`),
    not one item per resource and subnet; reads go to the ledger."""

    def __init__(self, ledger: Any) -> None:
        self.ledger = ledger
        self.entries: list[tuple[ResourceRef, list[ResourceRef], str | None]] = []

    def remember_uses(self, user: ResourceRef, used: list[ResourceRef], environment: str | None = None) -> None:
        self.entries.append((user, list(used), environment))

    def flush(self) -> None:
        entries, self.entries = self.entries, []
        if not entries:
            return
        try:
            self.ledger.remember_many(entries)
        except AWS_ERRORS as exc:  # the index only speeds up later events: never fail the run for it
            log.warning("dependency index: %d entries not written: %s", len(entries), error_code(exc))

    def users_of(self, used: ResourceRef) -> list[ResourceRef]:
        return self.ledger.users_of(used)

    def users_with_environment(self, used: ResourceRef) -> list[tuple[ResourceRef, str | None]]:
        return self.ledger.users_with_environment(used)


def _serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in item.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = {"BOOL": value}
        elif isinstance(value, int):
            out[key] = {"N": str(value)}
        elif isinstance(value, str):
            out[key] = {"S": value}
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[key] = {"L": [{"S": v} for v in value]}
        else:
            out[key] = {"S": canonical_json(value)}
    return out
