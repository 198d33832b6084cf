"""The ledger in the DynamoDB table named by NETGUARD_LEDGER_TABLE: base.LedgerBase's primitives as
DynamoDB calls (conditions rendered from rules), and what DynamoDB does better in bulk: claims in
transactions, settlements in batches (action records signed with the KMS MAC restore checks), the
dependency index in batches, a sweep's figures and progress in one transaction."""
from __future__ import annotations

import datetime as dt
import functools
import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from botocore.exceptions import ClientError

from ..aws import AWS_ERRORS, Clients, concurrently, error_code, error_message
from ..model import EventContext, Finding, Outcome, ResourceRef, canonical_json
from . import rules
from .base import NEW, Key, LedgerBase, log
from .rules import CLAIM_OPEN, Clause, Present, alias, claim_values, render, sweep_pk, typed

BATCH_WRITE_ITEMS = 25  # DynamoDB's limit of writes per BatchWriteItem
TRANSACT_ITEMS = 100  # DynamoDB's limit of items per TransactWriteItems


def _to_dynamo(value: Any) -> Any:
    """DynamoDB takes no floats and no empty-key maps: store nested data as canonical JSON text."""
    return canonical_json(value)


def _key(item: Mapping[str, Any]) -> Key:
    return str(item["pk"]), str(item["sk"])


def _typed_key(key: Key) -> dict[str, Any]:
    return {"pk": {"S": key[0]}, "sk": {"S": key[1]}}


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


def _plain(value: Mapping[str, Any]) -> Any:
    """One typed DynamoDB value as Python (what _serialize writes, and numbers, maps, NULL)."""
    kind, inner = next(iter(value.items()))
    if kind == "N":
        return int(inner) if inner.lstrip("-").isdigit() else float(inner)
    if kind == "L":
        return [_plain(v) for v in inner]
    if kind == "M":
        return {k: _plain(v) for k, v in inner.items()}
    return None if kind == "NULL" else inner


def deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item (typed values) as plain Python: the ledger's reads, restore's and netguard report's."""
    return {key: _plain(value) for key, value in item.items()}


class DynamoLedger(LedgerBase):
    """The ledger in the DynamoDB table named by NETGUARD_LEDGER_TABLE."""

    error_chars = 2000  # of an undelivered alert's error (an item holds 400 KB at most)

    def __init__(self, table_name: str, clients: Clients, region: str | None = None,
                 dedup_hours: int = 24, retention_days: int = 400, workers: int = 1, signer: Any = None,
                 finished_days: int = 90) -> None:
        self.table_name = table_name
        self.signer = signer  # signing.Signer: settled action records carry its MAC (restore checks it)
        self.workers = workers  # concurrent batch writes (a sweep's chunk settles and indexes hundreds)
        self.ddb = clients.client("dynamodb", region)
        self.dedup = dt.timedelta(hours=dedup_hours)
        self.finished_hold = dt.timedelta(days=finished_days)
        self.retention = dt.timedelta(days=retention_days)
        # What this container claimed and started and has not settled yet: settled, each is written
        # whole (with its result) by settle_run, in batches, rather than updated item by item.
        self._claimed: dict[tuple[str, str], dict[str, Any]] = {}
        self._started: dict[str, dict[str, Any]] = {}

    # --- storage primitives (base.LedgerBase) ---

    def _condition(self, condition: Clause, values: Mapping[str, Any]) -> dict[str, Any]:
        expression, names, typed_values = render(condition, values)
        params: dict[str, Any] = {"ConditionExpression": expression}
        if names:
            params["ExpressionAttributeNames"] = names
        if typed_values:
            params["ExpressionAttributeValues"] = typed_values
        return params

    def _put_params(self, item: Mapping[str, Any], condition: Clause | None = None,
                    values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """put_item's parameters (a transaction's Put) for `item`, with `condition` as its condition."""
        params = {"TableName": self.table_name, "Item": _serialize(item)}
        return params if condition is None else {**params, **self._condition(condition, values or {})}

    def _put(self, item: Mapping[str, Any], new: bool = False) -> None:
        self.ddb.put_item(**self._put_params(item, NEW if new else None))

    def _put_if(self, item: Mapping[str, Any], condition: Clause, values: Mapping[str, Any]) -> bool:
        try:
            self.ddb.put_item(**self._put_params(item, condition, values))
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _put_index(self, item: Mapping[str, Any]) -> None:
        self._put(item)

    def _update_op(self, key: Key, set_: Mapping[str, Any] | None = None, add: Mapping[str, int] | None = None,
                   condition: Clause | None = None, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """{"Update": update_item's parameters} (a transaction's Update) setting `set_`, adding `add`."""
        params: dict[str, Any] = {"TableName": self.table_name, "Key": _typed_key(key)}
        if condition is not None:
            params.update(self._condition(condition, values or {}))
        names = dict(params.pop("ExpressionAttributeNames", {}))
        bound = dict(params.pop("ExpressionAttributeValues", {}))
        clauses = []
        for verb, changes, form in (("SET", set_ or {}, "{} = {}"), ("ADD", add or {}, "{} {}")):
            parts = []
            for attribute, value in changes.items():
                bound[f":{verb.lower()}_{attribute}"] = typed(value)
                parts.append(form.format(alias(attribute, names), f":{verb.lower()}_{attribute}"))
            if parts:
                clauses.append(f"{verb} {', '.join(parts)}")
        params["UpdateExpression"] = " ".join(clauses)
        if names:
            params["ExpressionAttributeNames"] = names
        params["ExpressionAttributeValues"] = bound
        return {"Update": params}

    def _apply(self, op: Mapping[str, Any]) -> None:
        """One write: {"Put": put_item's parameters} or {"Update": update_item's}."""
        if "Put" in op:
            self.ddb.put_item(**op["Put"])
        else:
            self.ddb.update_item(**op["Update"])

    def _update(self, key: Key, set_: Mapping[str, Any] | None = None, add: Mapping[str, int] | None = None,
                condition: Clause | None = None, values: Mapping[str, Any] | None = None) -> bool:
        try:
            self._apply(self._update_op(key, set_, add, condition, values))
        except ClientError as exc:
            if condition is not None and error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _projection(self, attributes: tuple[str, ...] | None) -> dict[str, Any]:
        if not attributes:
            return {}
        names: dict[str, str] = {}
        params: dict[str, Any] = {"ProjectionExpression": ", ".join(alias(a, names) for a in attributes)}
        return {**params, "ExpressionAttributeNames": names} if names else params

    def _get(self, key: Key, attributes: tuple[str, ...] | None = None) -> dict[str, Any] | None:
        item = self.ddb.get_item(TableName=self.table_name, Key=_typed_key(key), ConsistentRead=True,
                                 **self._projection(attributes)).get("Item")
        return None if item is None else deserialize(item)

    def _query(self, pk: str, prefix: str = "", consistent: bool = False,
               attributes: tuple[str, ...] | None = None) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {"TableName": self.table_name, "KeyConditionExpression": "pk = :pk",
                                  "ExpressionAttributeValues": {":pk": {"S": pk}}, **self._projection(attributes)}
        if prefix:
            params["KeyConditionExpression"] += " AND begins_with(sk, :s)"
            params["ExpressionAttributeValues"][":s"] = {"S": prefix}
        if consistent:
            params["ConsistentRead"] = True
        for page in self.ddb.get_paginator("query").paginate(**params):
            for item in page.get("Items", []):
                yield deserialize(item)

    def _delete(self, key: Key) -> None:
        self.ddb.delete_item(TableName=self.table_name, Key=_typed_key(key))

    def _encode(self, value: Any) -> Any:
        return _to_dynamo(value)

    def _decode(self, value: Any) -> Any:
        return json.loads(value)

    def _claim_taken(self, item: dict[str, Any]) -> None:
        self._claimed[_key(item)] = item

    def _action_started(self, action_id: str, item: dict[str, Any]) -> None:
        self._started[action_id] = item

    # --- in bulk: claims in transactions, settlements and the index in batches ---

    def _claim_put(self, finding: Finding, kind: str, context: EventContext) -> tuple[dict[str, Any], dict[str, Any]]:
        """A claim's item, and the conditional put that takes it (rules.CLAIM_OPEN as its condition)."""
        now = rules.utcnow()
        item = self._claim_item(finding, kind, context, now)
        return item, self._put_params(item, CLAIM_OPEN, claim_values(finding.resource.read_at, now,
                                                                     self._hold(finding)))

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
                    for i, code in zip(group, reasons, strict=True):
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
                    self._claim_taken(puts[i][0])
                group = []
            alone += group  # not settled by a transaction: one claim at a time
        for i in alone:
            try:
                answers[i] = self.claim(*claims[i], context)
            except AWS_ERRORS as exc:
                answers[i] = exc
        return [a if a is not None else False for a in answers]

    def settle_run(self, context: EventContext, claims: list[tuple[Finding, str, str]],
                   actions: list[tuple[str, str, str]], decisions: list[Outcome],
                   attempts: int = 3) -> list[tuple[str, str]]:
        """What a run settles (claims' and actions' results, the decisions), each item written whole
        with its result, 25 per BatchWriteItem: one call for an event, a few per sweep chunk (and half
        the write capacity of transactions). A claim or action this container did not make is updated
        on its own. Each write is tried `attempts` times (beyond botocore's own retries); items a
        batch leaves unwritten are written one by one. Returns what could not be written: (what, error)."""
        now = rules.utcnow()
        whole: list[tuple[str, dict[str, Any]]] = []
        alone: list[tuple[str, dict[str, Any]]] = []
        for finding, kind, result in claims:
            what = f"the claim of {finding.control.id} on {finding.resource.ref.key}"
            claimed = self._claimed.pop(self._claim_key(finding, kind), None)
            if claimed is None:
                alone.append((what, self._update_op(self._claim_key(finding, kind), self._settled(result, now))))
            else:
                whole.append((what, {**claimed, **self._settled(result, now)}))
        finished: list[tuple[str, dict[str, Any]]] = []
        for action_id, result, detail in actions:
            started = self._started.pop(action_id, None)
            if started is None:  # not signed: restore refuses it, as it refuses an unfinished action
                alone.append((f"the result of {action_id}",
                              self._update_op((f"action#{action_id}", "action"), self._finished(result, detail, now))))
            else:
                finished.append((action_id, {**started, **self._finished(result, detail, now)}))
                whole.append((f"the result of {action_id}", finished[-1][1]))
        if self.signer is not None and finished:
            for (_, item), mac in zip(finished, concurrently(lambda done: self._mac(*done), finished, self.workers,
                                                             "netguard-sign"), strict=True):
                item["mac"] = mac
        whole += [(f"the decision on {o.decision.finding.control.id} for {o.decision.finding.resource.ref.key}",
                   self._decision_record(context, o, rules.utcnow())) for o in decisions]
        parts = [whole[start:start + BATCH_WRITE_ITEMS] for start in range(0, len(whole), BATCH_WRITE_ITEMS)]
        unwritten = concurrently(lambda part: {_key(item) for _, item in part} if len(part) == 1 else self._batch_put(
            [item for _, item in part], attempts), parts, self.workers, "netguard-settle")
        for part, left in zip(parts, unwritten, strict=True):
            alone += [(what, {"Put": self._put_params(item)}) for what, item in part if _key(item) in left]
        failed: list[tuple[str, str]] = []
        for what, op in alone:
            error = _attempt(functools.partial(self._apply, op), attempts)
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

    def remember_many(self, entries: list[tuple[ResourceRef, list[ResourceRef], str | None]]) -> None:
        """remember_uses for many users, 25 items per BatchWriteItem (sweeps refresh the whole index)."""
        now = rules.utcnow()
        items = {(item["pk"], item["sk"]): item for item in (self._uses_item(user, ref, environment, now)
                                                             for user, used, environment in entries for ref in used)}
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

    def record_sweep_stats(self, sweep_id: str, key: str, stats: Mapping[str, Any],
                           final: bool) -> tuple[int, int] | None:
        """The figures and (final) the count in one transaction, each conditional: a redelivered message
        cancels it. Returns (done, expected) after it, or None if this part was already recorded."""
        meta = (sweep_pk(sweep_id), "meta")
        writes: list[dict[str, Any]] = [{"Put": self._put_params(
            self._sweep_stats_item(sweep_id, key, stats, rules.utcnow()), NEW)}]
        if final:
            writes.append(self._update_op(meta, add={"done": 1}, condition=Present("pk")))
        try:
            self.ddb.transact_write_items(TransactItems=writes)
        except ClientError as exc:
            if error_code(exc) == "TransactionCanceledException":
                return None
            raise
        counts = self._get(meta) or {}
        return int(counts.get("done", 0)), int(counts.get("expected", 0))
