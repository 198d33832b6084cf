"""Deferred re-checks: what could not be decided or done now is looked at again later, through SQS.

A notebook still `Pending`, a Studio domain with running apps, a throttled or failed AWS call: the
run that met it sends one message naming the resources, delayed (exponential backoff, at most SQS's
15 minutes). The `recheck` handler runs the normal pipeline on them. Still deferred: a new message,
one attempt further, up to NETGUARD_RECHECK_MAX_ATTEMPTS, after which the resource is left to the next
sweep and an error is logged. A message that cannot be processed (a bug, the ledger down) is
reported as a batch item failure: SQS delivers it again and, after the queue's maxReceiveCount,
moves it to the dead-letter queue. Nothing is dropped silently.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .aws import Clients
from .errors import InvalidEvent
from .model import ResourceRef
from .resources import BY_TYPE
from .settings import Settings
from .triggers import ACCOUNT_RE, REGION_RE

log = logging.getLogger("netguard.recheck")


MESSAGE_SCHEMA = "netguard.recheck/v1"
MAX_DELAY_SECONDS = 900  # SQS DelaySeconds limit
MAX_REFS_PER_MESSAGE = 50  # well under SQS's 256 KB


@dataclass(frozen=True)
class Recheck:
    refs: tuple[ResourceRef, ...]
    reason: str
    attempt: int
    origin: str  # the event id of the run that first deferred
    # not before this time (ISO UTC): the end of a blast-radius window, often further than SQS's 15
    # minutes of delay; a message that arrives earlier is sent on again, not run, not counted an attempt
    not_before: str | None = None

    def waits(self, now: dt.datetime) -> int:
        """Seconds still to wait before running it (0: now)."""
        return seconds_until(self.not_before, now) if self.not_before else 0


def delay_for(attempt: int, base: int) -> int:
    """Seconds before attempt `attempt` (1-based): base, 2×base, 4×base, … capped at 15 minutes."""
    return min(MAX_DELAY_SECONDS, base * 2 ** max(attempt - 1, 0))


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=dt.UTC)


def seconds_until(moment: str, now: dt.datetime) -> int:
    """Whole seconds from `now` to `moment` (TIME_FORMAT), 0 once it is past."""
    return max(0, int((_parse_time(moment) - now).total_seconds()))


TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def encode(recheck: Recheck) -> str:
    body = {
        "schema": MESSAGE_SCHEMA,
        "refs": [{"type": r.resource_type, "id": r.resource_id, "account": r.account, "region": r.region}
                 for r in recheck.refs],
        "reason": recheck.reason[:1000],
        "attempt": recheck.attempt,
        "origin": recheck.origin,
    }
    if recheck.not_before:
        body["not_before"] = recheck.not_before
    return json.dumps(body, separators=(",", ":"))


def message_body(body: Any, schema: str) -> Mapping[str, Any]:
    """The JSON object of one of netguard's own queue messages, checked to be of `schema`."""
    try:
        data = json.loads(body) if isinstance(body, (str, bytes)) else None
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than json parses
        raise InvalidEvent(f"{schema} message is not JSON: {str(exc)[:200]}") from exc
    if not isinstance(data, Mapping) or data.get("schema") != schema:
        raise InvalidEvent(f"not a {schema} message")
    try:  # its strings go into the ledger and AWS calls: a lone surrogate ("\ud800") cannot be sent
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidEvent(f"{schema} message is not valid UTF-8") from exc
    return data


def decode(body: Any) -> Recheck:
    """A message body back into a Recheck; InvalidEvent says what is wrong with it."""
    data = message_body(body, MESSAGE_SCHEMA)
    raw_refs, attempt = data.get("refs"), data.get("attempt")
    if not isinstance(raw_refs, list) or not raw_refs or len(raw_refs) > MAX_REFS_PER_MESSAGE:
        raise InvalidEvent(f"refs must be a list of 1 to {MAX_REFS_PER_MESSAGE} resources")
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        raise InvalidEvent("attempt must be a positive whole number")
    refs = []
    for raw in raw_refs:
        if not isinstance(raw, Mapping):
            raise InvalidEvent("each ref must be an object")
        rtype, rid, account, region = (raw.get(k) for k in ("type", "id", "account", "region"))
        # an evaluated type, by the id it is read by (as the events name it: resources.REGISTRY)
        spec = BY_TYPE.get(rtype) if isinstance(rtype, str) else None
        if (not isinstance(rtype, str) or spec is None or not spec.evaluated or not isinstance(rid, str)
                or not spec.id_pattern.match(rid)):
            raise InvalidEvent(f"unsupported resource {str(rtype)[:64]!r} / {str(rid)[:64]!r}")
        if not isinstance(account, str) or not ACCOUNT_RE.match(account):
            raise InvalidEvent("invalid account")
        if not isinstance(region, str) or not REGION_RE.match(region):
            raise InvalidEvent("invalid region")
        refs.append(ResourceRef(rtype, rid, account, region))
    reason, origin, not_before = data.get("reason"), data.get("origin"), data.get("not_before")
    if not_before is not None:
        try:
            _parse_time(not_before)
        except (TypeError, ValueError) as exc:
            raise InvalidEvent(f"not_before must be {TIME_FORMAT}") from exc
    return Recheck(tuple(refs), str(reason or "")[:1000], attempt, str(origin or "")[:128], not_before)


class RecheckQueue:
    """Sends re-checks to NETGUARD_RECHECK_QUEUE_URL (nothing when unset: the next event or sweep will)."""

    def __init__(self, settings: Settings, clients: Clients) -> None:
        self.settings, self.clients = settings, clients

    @property
    def configured(self) -> bool:
        return bool(self.settings.recheck_queue_url)

    def schedule_report(self, report: Any, origin: str, attempt: int = 1, include_duplicates: bool = False,
                        now: dt.datetime | None = None) -> list[str]:
        """The re-checks a run calls for (RunReport): what it deferred or could not do, after the usual
        backoff; what the blast-radius limit held back, once its window ends."""
        now = now or dt.datetime.now(dt.UTC)
        sent = self.schedule(report.recheck_refs(include_duplicates), origin, attempt)
        limited = report.limited_refs()
        if limited:
            from .ledger import window_end  # noqa: PLC0415 - the ledger: not on `import app` (cold start)

            opens = window_end(now, self.settings.action_window_minutes)
            sent += self.schedule(limited, origin, attempt, not_before=opens, now=now)
        return sent

    def schedule(self, items: Iterable[tuple[ResourceRef, str]], origin: str, attempt: int = 1,
                 not_before: str | None = None, now: dt.datetime | None = None) -> list[str]:
        """Send re-checks for `items` ((ref, reason)), one attempt number for all; returns their message ids.
        Past the last attempt nothing is sent and an error is logged for each resource. With
        `not_before`, the delay is what is left until then (at most SQS's 15 minutes: see Recheck.waits)."""
        items = list(items)
        if not items:
            return []
        if attempt > self.settings.recheck_max_attempts:
            for ref, reason in items:
                log.error("giving up re-checking %s after %d attempts (%s): the next sweep will evaluate it",
                          ref.key, attempt - 1, reason)
            return []
        if not self.configured:
            log.info("no recheck queue configured: %d resource(s) wait for their next event or sweep", len(items))
            return []
        queue_url = str(self.settings.recheck_queue_url)
        sqs = self.clients.client("sqs", _queue_region(queue_url))
        if not_before is not None:
            delay = min(MAX_DELAY_SECONDS, seconds_until(not_before, now or dt.datetime.now(dt.UTC)) + 1)
        else:
            delay = delay_for(attempt, self.settings.recheck_delay_seconds)
        sent = []
        for start in range(0, len(items), MAX_REFS_PER_MESSAGE):
            part = items[start:start + MAX_REFS_PER_MESSAGE]
            body = encode(Recheck(tuple(r for r, _ in part), "; ".join(sorted({why for _, why in part})), attempt,
                                  origin, not_before))
            answer = sqs.send_message(QueueUrl=queue_url, MessageBody=body, DelaySeconds=delay)
            sent.append(answer["MessageId"])
            log.info("re-check %s of %s in %d s (attempt %d)", answer["MessageId"],
                     ", ".join(r.key for r, _ in part), delay, attempt)
        return sent


def _queue_region(queue_url: str) -> str | None:
    """https://sqs.eu-west-1.amazonaws.com/123/name -> eu-west-1 (None: the default region)."""
    host = queue_url.split("://", 1)[-1].split("/", 1)[0]
    parts = host.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "sqs" else None
