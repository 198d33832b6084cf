"""The ledger's write conditions are stated once (chalicelib/ledger/rules.py) and used twice: evaluated in
Python by the memory/file backend (`claim_open`, `holds`) and rendered as a DynamoDB ConditionExpression by
the DynamoDB backend. Over a table of claims already there (netguard's own and planted ones), both must
answer alike: the rendered condition is judged by a conditional put in moto's DynamoDB, as AWS judges it."""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.exceptions import ClientError
from moto import mock_aws

from chalicelib.ledger import claim_open
from chalicelib.ledger.base import BELOW_LIMIT, DIGEST_UNSENT, NEW, NOT_NOTIFIED
from chalicelib.ledger.dynamodb import _serialize
from chalicelib.ledger.rules import CLAIM_OPEN, Clause, claim_values, holds, render
from chalicelib.model import ALREADY_DONE, FAILED, NO_ACTION, SUCCEEDED
from netguard_testkit.world import create_ledger_table

NOW = dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
DEDUP = dt.timedelta(hours=24)
LATEST = int((NOW + DEDUP + dt.timedelta(minutes=5)).timestamp())  # the furthest expiry netguard writes


def iso(delta: dt.timedelta) -> str:
    return (NOW + delta).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


READ_AT = iso(-dt.timedelta(minutes=1))  # when the state that shows the violation now was read
FRESH = {"event_id": "e-1", "at": iso(-dt.timedelta(minutes=2)), "expires_at": int((NOW + DEDUP).timestamp()) - 120}


def resolved(result: str, settled: dt.timedelta) -> dict[str, Any]:
    return {**FRESH, "result": result, "settled_at": iso(settled)}


# (what, the claim already there or None, may it be taken again?)
CLAIMS: list[tuple[str, dict[str, Any] | None, bool]] = [
    ("no claim", None, True),
    ("taken, not settled yet", FRESH, False),
    ("its action failed", {**FRESH, "result": FAILED, "settled_at": iso(-dt.timedelta(seconds=5))}, True),
    ("unsettled for 16 minutes: its invocation died", {**FRESH, "at": iso(-dt.timedelta(minutes=16))}, True),
    ("unsettled for 14 minutes", {**FRESH, "at": iso(-dt.timedelta(minutes=14))}, False),
    ("stale but settled: a result is not staleness", {**resolved(NO_ACTION, -dt.timedelta(minutes=20)),
                                                      "at": iso(-dt.timedelta(minutes=30))}, False),
    ("fixed before the state was read", resolved(SUCCEEDED, -dt.timedelta(minutes=2)), True),
    ("found done before the state was read", resolved(ALREADY_DONE, -dt.timedelta(minutes=2)), True),
    ("fixed after the state was read", resolved(SUCCEEDED, -dt.timedelta(seconds=30)), False),
    ("alerted (not resolved) before the state was read", resolved(NO_ACTION, -dt.timedelta(minutes=2)), False),
    ("resolved, no settled_at", {**FRESH, "result": SUCCEEDED}, False),
    ("expired a second ago", {**FRESH, "expires_at": int(NOW.timestamp()) - 1}, True),
    ("expiring now", {**FRESH, "expires_at": int(NOW.timestamp())}, False),
    ("planted: expiring after any claim netguard writes", {**FRESH, "expires_at": LATEST + 1}, True),
    ("expiring at the latest netguard writes", {**FRESH, "expires_at": LATEST}, False),
    ("planted: taken in the future", {**FRESH, "at": iso(dt.timedelta(minutes=6))}, True),
    ("taken within the clock skew", {**FRESH, "at": iso(dt.timedelta(minutes=4))}, False),
    ("planted: settled in the future", resolved(NO_ACTION, dt.timedelta(minutes=6)), True),
    ("planted: failed and far in the future", {**resolved(FAILED, dt.timedelta(days=9)), "expires_at": LATEST}, True),
    # Planted with attributes missing or of another type: a comparison with them is false (DynamoDB's rule).
    # netguard writes both on every claim: one without either is planted, and holds nothing back
    ("planted: no time taken", {"event_id": "e-1", "expires_at": FRESH["expires_at"]}, True),
    ("planted: no expiry", {"event_id": "e-1", "at": FRESH["at"]}, True),
    ("planted: result as a number", {**FRESH, "result": 1, "at": iso(-dt.timedelta(hours=1))}, False),
    ("planted: result as a boolean", {**FRESH, "result": True, "at": iso(-dt.timedelta(hours=1))}, False),
]
# An order comparison (<, >) across types is false in DynamoDB, which compares only values of one type;
# moto 5 raises TypeError on it instead, so these are checked against that rule in Python alone.
CROSS_TYPE: list[tuple[str, dict[str, Any], bool]] = [
    ("planted: time taken as a number", {**FRESH, "at": 99999999999}, False),
    ("planted: expiry as text", {**FRESH, "expires_at": "1"}, False),
    ("planted: settled_at as a number", {**FRESH, "result": SUCCEEDED, "settled_at": 1}, False),
]


def dynamodb_allows(ddb: Any, table: str, sk: str, existing: Mapping[str, Any] | None, condition: Clause,
                    values: Mapping[str, Any]) -> bool:
    """Put `existing` (as the ledger writes it) and then a new item under the rendered condition."""
    key = {"pk": "res#111111111111#us-east-1#AWS::EC2::VPC#vpc-1", "sk": sk}
    if existing is not None:
        ddb.put_item(TableName=table, Item=_serialize({**key, **existing}))
    expression, names, typed = render(condition, values)
    params: dict[str, Any] = {"ConditionExpression": expression}
    if names:
        params["ExpressionAttributeNames"] = names
    if typed:
        params["ExpressionAttributeValues"] = typed
    try:
        ddb.put_item(TableName=table, Item=_serialize({**key, "event_id": "e-2"}), **params)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "ConditionalCheckFailedException", exc
        return False
    return True


def test_python_and_dynamodb_agree_on_every_existing_claim() -> None:
    values = claim_values(READ_AT, NOW, DEDUP)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        table = create_ledger_table(ddb, "netguard-ledger-rules")
        answers = [(what, claim_open(existing, READ_AT, NOW, DEDUP),
                    dynamodb_allows(ddb, table, f"claim#{index}", existing, CLAIM_OPEN, values), expected)
                   for index, (what, existing, expected) in enumerate(CLAIMS)]
    wrong = [answer for answer in answers if not answer[1] == answer[2] == answer[3]]
    assert wrong == [], "(case, Python, DynamoDB, expected):\n" + "\n".join(map(str, wrong))


def test_an_order_comparison_across_types_is_false() -> None:
    assert [(what, claim_open(existing, READ_AT, NOW, DEDUP)) for what, existing, _ in CROSS_TYPE] == [
        (what, expected) for what, _, expected in CROSS_TYPE]


def test_the_other_conditions_agree_too() -> None:
    """The budget counter, a counter's first refusal, a sweep's digest and write-once records."""
    cases: list[tuple[str, Clause, dict[str, Any], dict[str, Any] | None, bool]] = [
        ("a counter not made yet", BELOW_LIMIT, {":limit": 3}, None, True),
        ("a counter below its limit", BELOW_LIMIT, {":limit": 3}, {"count": 2}, True),
        ("a counter at its limit", BELOW_LIMIT, {":limit": 3}, {"count": 3}, False),
        ("a first refusal", NOT_NOTIFIED, {}, {"count": 3}, True),
        ("a later refusal", NOT_NOTIFIED, {}, {"count": 3, "notified": True}, False),
        ("no such sweep", DIGEST_UNSENT, {}, None, False),
        ("a sweep whose digest is unsent", DIGEST_UNSENT, {}, {"done": 1}, True),
        ("a sweep whose digest is sent", DIGEST_UNSENT, {}, {"done": 1, "digest": "2026-05-01"}, False),
        ("a new record", NEW, {}, None, True),
        ("a record written already", NEW, {}, {"result": "started"}, False),
    ]
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        table = create_ledger_table(ddb, "netguard-ledger-conditions")
        answers = [(what, holds(clause, existing, values),
                    dynamodb_allows(ddb, table, f"other#{index}", existing, clause, values), expected)
                   for index, (what, clause, values, existing, expected) in enumerate(cases)]
    wrong = [answer for answer in answers if not answer[1] == answer[2] == answer[3]]
    assert wrong == [], "(case, Python, DynamoDB, expected):\n" + "\n".join(map(str, wrong))


def test_the_claim_condition_sent_to_dynamodb_is_the_rule_rendered() -> None:
    expression, names, typed = render(CLAIM_OPEN, claim_values(READ_AT, NOW, DEDUP))
    assert expression == ("attribute_not_exists(sk) OR #r = :failed OR (attribute_not_exists(#r) AND #at < :stale) OR "
                          "expires_at < :now OR expires_at > :latest OR attribute_not_exists(#at) OR "
                          "attribute_not_exists(expires_at) OR #at > :now_iso OR settled_at > :now_iso OR "
                          "(#r IN (:succeeded, :already) AND settled_at < :read)")
    assert names == {"#r": "result", "#at": "at"}
    assert typed == {":failed": {"S": FAILED}, ":stale": {"S": iso(-dt.timedelta(minutes=15))},
                     ":now": {"N": str(int(NOW.timestamp()))}, ":latest": {"N": str(LATEST)},
                     ":now_iso": {"S": iso(dt.timedelta(minutes=5))}, ":succeeded": {"S": SUCCEEDED},
                     ":already": {"S": ALREADY_DONE}, ":read": {"S": READ_AT}}


def test_a_finished_jobs_claim_holds_for_the_lookback_and_a_running_ones_for_the_dedup_window() -> None:
    """A finished job's violation is claimed for NETGUARD_JOB_LOOKBACK_DAYS (alerted once while sweeps list
    it); the same expiry on a running job's claim is beyond anything netguard writes for it: planted."""
    from chalicelib.ledger import MemoryLedger, rules
    from chalicelib.model import EventContext, Finding, Resource, ResourceRef
    from chalicelib.policy import load_policy

    def finding(status: str) -> Finding:
        ref = ResourceRef("AWS::SageMaker::TrainingJob", "train-1", "111122223333", "eu-west-1")
        resource = Resource(ref, "arn", {"JobStatus": status}, {}, status, read_at=iso(-dt.timedelta(minutes=1)))
        return Finding(load_policy().control("JOB.1"), resource, "NON_COMPLIANT", {"EnableNetworkIsolation": False})

    context = EventContext("sweep-1", "sweep")
    for status, hold in (("Completed", dt.timedelta(days=30)), ("InProgress", DEDUP)):
        ledger = MemoryLedger(dedup_hours=24, finished_days=30)
        original = rules.utcnow
        try:
            rules.utcnow = lambda: NOW
            assert ledger.claim(finding(status), "not-actionable", context)
            ledger.settle_claim(finding(status), "not-actionable", NO_ACTION)  # alerted, recorded
            [item] = ledger.records("claim#")
            assert item["expires_at"] == int((NOW + hold).timestamp())
            rules.utcnow = lambda: NOW + dt.timedelta(days=2)  # beyond the dedup window, within the lookback
            assert ledger.claim(finding(status), "not-actionable", context) is (status == "InProgress")
        finally:
            rules.utcnow = original
    running_claim = {**FRESH, "expires_at": int((NOW + dt.timedelta(days=30)).timestamp())}
    assert claim_open(running_claim, READ_AT, NOW, DEDUP)  # planted, for a running job
    assert not claim_open(running_claim, READ_AT, NOW, dt.timedelta(days=30))  # a finished job's own
