"""The ledger's keys, windows and budgets, and the rules of its conditional writes, stated once as data.

A condition is a small tree of clauses (an attribute missing or present, an attribute compared with a named
value, one of several values, AND, OR). Both backends derive what they need from the same tree: the
memory/file backend evaluates it in Python (`holds`), the DynamoDB backend sends it as a ConditionExpression
(`render`). DynamoDB's semantics are the ones stated: a comparison with a missing attribute, or with an
attribute of another type, is false.

The claim rule (CLAIM_OPEN): a claim can be taken again
- when there is none;
- when its action failed, so a later event retries;
- when it was left without a result for STALE_CLAIM (its invocation died);
- when it has expired (NETGUARD_DEDUP_HOURS), checked in the condition itself, since DynamoDB's TTL
  deletes expired items only within a day or two;
- when the violation was resolved (netguard's action succeeded, or found it done) before the state
  now seen was read: the violation came back after its fix and is handled again, every time;
- when netguard cannot have written it (no time taken or no expiry, taken or settled in the future,
  expiring beyond the dedup window): whoever can write the ledger could plant one to hold a violation back.

The clock every ledger module reads is `utcnow` here (tests move it by patching `rules.utcnow`).
"""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..model import ALREADY_DONE, DEFERRED, FAILED, REMEDIATE, SUCCEEDED, Finding, ResourceRef


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# A claim with no result this old was taken by an invocation that died before settling it (a Lambda
# runs 15 minutes at most): it can be taken again.
STALE_CLAIM = dt.timedelta(minutes=15)
CLOCK_SKEW = dt.timedelta(minutes=5)  # between the clocks of netguard's containers, at most
# A claim settled with one of these: its violation was resolved at `settled_at`.
RESOLVED = (SUCCEEDED, ALREADY_DONE)
USES_TTL = dt.timedelta(days=30)  # renewed whenever the user is read again (events and sweeps)


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
    return dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def window_end(now: dt.datetime, minutes: int) -> str:
    """When the fixed window `now` falls in ends (UTC), as text."""
    seconds = minutes * 60
    end = (int(now.timestamp()) // seconds + 1) * seconds
    return dt.datetime.fromtimestamp(end, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


def uses_pk(used: ResourceRef) -> str:
    return f"uses#{used.key}"


def ref_from_key(key: str) -> ResourceRef | None:
    parts = key.split("#")
    return ResourceRef(parts[2], parts[3], parts[0], parts[1]) if len(parts) == 4 else None


# --- conditions as data ---

@dataclass(frozen=True)
class Missing:
    """attribute_not_exists(attribute)"""
    attribute: str


@dataclass(frozen=True)
class Present:
    """attribute_exists(attribute)"""
    attribute: str


@dataclass(frozen=True)
class Compare:
    """attribute <op> :value, with op one of =, <, > (false when the attribute is missing or of another type)."""
    attribute: str
    op: str
    value: str


@dataclass(frozen=True)
class OneOf:
    """attribute IN (:value, ...)"""
    attribute: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class AllOf:
    clauses: tuple[Clause, ...]


@dataclass(frozen=True)
class AnyOf:
    clauses: tuple[Clause, ...]


Clause = Missing | Present | Compare | OneOf | AllOf | AnyOf

KEY_ATTRIBUTES = ("pk", "sk")  # the table's key: every item has them
# Attributes that are DynamoDB reserved words, and the names they go by in expressions.
ALIASES = {"result": "#r", "at": "#at", "count": "#c"}


def _comparable(left: Any, right: Any) -> bool:
    """Of one DynamoDB type: both strings, or both numbers (a bool is neither)."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool)
    return (isinstance(left, str) and isinstance(right, str)) or (
        isinstance(left, (int, float)) and isinstance(right, (int, float)))


def holds(clause: Clause, item: Mapping[str, Any] | None, values: Mapping[str, Any]) -> bool:
    """Does `clause` hold for `item` (None when there is none), as DynamoDB evaluates the rendered
    condition? An item has its key attributes whatever the mapping holds; a None value is a missing
    attribute (the DynamoDB backend does not write None)."""
    if isinstance(clause, AnyOf):
        return any(holds(c, item, values) for c in clause.clauses)
    if isinstance(clause, AllOf):
        return all(holds(c, item, values) for c in clause.clauses)
    if item is None:
        return isinstance(clause, Missing)
    present = clause.attribute in KEY_ATTRIBUTES or item.get(clause.attribute) is not None
    if isinstance(clause, Missing):
        return not present
    if isinstance(clause, Present):
        return present
    if isinstance(clause, OneOf):
        return any(holds(Compare(clause.attribute, "=", v), item, values) for v in clause.values)
    left, right = item.get(clause.attribute), values[clause.value]
    if not present or not _comparable(left, right):
        return False
    return {"=": left == right, "<": left < right, ">": left > right}[clause.op]


def alias(attribute: str, names: dict[str, str]) -> str:
    """How `attribute` is named in an expression (a reserved word by its alias, recorded in `names`)."""
    if attribute not in ALIASES:
        return attribute
    names[ALIASES[attribute]] = attribute
    return ALIASES[attribute]


def typed(value: Any) -> dict[str, Any]:
    """A named value in DynamoDB's typed form."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        return {"N": str(value)}
    return {"S": str(value)}


def render(clause: Clause, values: Mapping[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    """`clause` as a DynamoDB condition: (expression, ExpressionAttributeNames, ExpressionAttributeValues),
    each map holding only what the expression uses."""
    names: dict[str, str] = {}
    used: dict[str, Any] = {}

    def name(attribute: str) -> str:
        return alias(attribute, names)

    def value(key: str) -> str:
        used[key] = typed(values[key])
        return key

    def text(node: Clause, outer: type | None) -> str:
        if isinstance(node, (AnyOf, AllOf)):
            joined = (" OR " if isinstance(node, AnyOf) else " AND ").join(text(c, type(node)) for c in node.clauses)
            return joined if outer is None or outer is type(node) else f"({joined})"
        if isinstance(node, Missing):
            return f"attribute_not_exists({name(node.attribute)})"
        if isinstance(node, Present):
            return f"attribute_exists({name(node.attribute)})"
        if isinstance(node, OneOf):
            return f"{name(node.attribute)} IN ({', '.join(value(v) for v in node.values)})"
        return f"{name(node.attribute)} {node.op} {value(node.value)}"

    return text(clause, None), names, used


# --- the claim rule ---

CLAIM_OPEN: Clause = AnyOf((
    Missing("sk"),                                                # no claim yet
    Compare("result", "=", ":failed"),                            # its action failed
    AllOf((Missing("result"), Compare("at", "<", ":stale"))),     # left unsettled: its invocation died
    Compare("expires_at", "<", ":now"),                           # expired, TTL has not deleted it yet
    Compare("expires_at", ">", ":latest"),                        # expiring later than netguard's claims do
    Missing("at"),                                                # netguard writes both on every claim:
    Missing("expires_at"),                                        #   one without is planted
    Compare("at", ">", ":now_iso"),                               # taken in the future
    Compare("settled_at", ">", ":now_iso"),                       # settled in the future
    AllOf((OneOf("result", (":succeeded", ":already")),           # resolved before the state now seen was read
           Compare("settled_at", "<", ":read"))),
))


def claim_values(read_at: str, now: dt.datetime, dedup: dt.timedelta) -> dict[str, Any]:
    """The values CLAIM_OPEN compares with, for a claim taken at `now` on a state read at `read_at`."""
    return {":failed": FAILED, ":stale": _iso(now - STALE_CLAIM), ":now": int(now.timestamp()),
            ":latest": int((now + dedup + CLOCK_SKEW).timestamp()), ":now_iso": _iso(now + CLOCK_SKEW),
            ":succeeded": SUCCEEDED, ":already": ALREADY_DONE, ":read": read_at}


def claim_open(existing: Mapping[str, Any] | None, read_at: str, now: dt.datetime,
               dedup: dt.timedelta) -> bool:
    """May a claim be taken, given the claim item already there (None: none)? CLAIM_OPEN (module
    docstring), as the DynamoDB backend's conditional put says it."""
    return holds(CLAIM_OPEN, existing, claim_values(read_at, now, dedup))
