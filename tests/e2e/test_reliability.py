"""Reliability in the everyday suite (reduced forms of `make reliability`): AWS faults, duplicate and
concurrent deliveries, secrets kept out of logs, hostile text in alerts."""
from __future__ import annotations

import io
import json
import logging
import threading
import uuid
from typing import Any

import pytest

from chalicelib import handlers, notify
from conftest import alerts, invoke, json_lines, ledger_items
from netguard_testkit import events
from netguard_testkit.fault_scenario import run as fault_scenario
from netguard_testkit.faults import FaultInjector
from netguard_testkit.moto_fidelity import attach_notebook_eni

OPEN_SSH = [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]


def test_under_30_percent_faults_every_violation_is_remediated_once_and_failures_are_alerted() -> None:
    """One seed of the fault scenario (`make reliability` runs more seeds and a bigger world)."""
    logging.disable(logging.CRITICAL)
    try:
        figures = fault_scenario(rate=0.3, seed=1, groups=6, notebooks=3)
    finally:
        logging.disable(logging.NOTSET)
    print(json.dumps(figures.as_dict()))
    assert sum(figures.injected.values()) > 50  # the faults were there
    assert set(figures.injected) == {"throttle", "5xx", "timeout", "denied"}
    assert figures.remediated == figures.violations == 9
    assert figures.duplicate_remediations == 0
    assert figures.failed_outcomes > 0 and figures.failures_alerted_with_error == figures.failed_outcomes


def revokes(aws) -> int:
    return aws.calls.writes().count("ec2:RevokeSecurityGroupIngress")


def test_the_same_event_delivered_three_times_acts_once(stack) -> None:
    aws, net = stack["aws"], stack["net"]
    attach_notebook_eni(aws.client("ec2"), net.private_subnets[0], [net.sg_ssh_open], "nb")
    event = events.authorize_ingress(net.sg_ssh_open, OPEN_SSH, aws.account, aws.region)
    answers = [invoke(stack, "on_api_call", event) for _ in range(3)]
    assert revokes(aws) == 1
    assert answers[1] == answers[2] == answers[0]  # the stored result of the first (Powertools idempotency)
    assert len([a for a in alerts(stack) if a["message"].get("control", {}).get("id") == "SG.1"]) == 1


def test_two_concurrent_invocations_for_one_violation_act_once(stack, monkeypatch) -> None:
    """Two different events (two CloudTrail records) for the same open rule, handled at the same time:
    the ledger's conditional claim lets one act; the other reports a duplicate. Both are held at the
    claim until both have read the rule as open (otherwise a fast first invocation revokes it before the
    second reads, and the second has nothing to claim: right, but not the race this test is about)."""
    aws, net = stack["aws"], stack["net"]
    attach_notebook_eni(aws.client("ec2"), net.private_subnets[0], [net.sg_ssh_open], "nb")
    # one container's runtime, shared by both threads (as two containers share the table)
    ledger = handlers.runtime().ledger
    at_claim = threading.Barrier(2, timeout=30)
    held: set[int] = set()
    claim_many = ledger.claim_many

    def claim_together(claims: list[Any], context: Any, attempts: int = 3) -> list[Any]:
        if any(f.control.id == "SG.1" for f, _ in claims) and threading.get_ident() not in held:
            held.add(threading.get_ident())
            at_claim.wait()
        return claim_many(claims, context, attempts)

    monkeypatch.setattr(ledger, "claim_many", claim_together)
    first = events.authorize_ingress(net.sg_ssh_open, OPEN_SSH, aws.account, aws.region)
    second = events.authorize_ingress(net.sg_ssh_open, OPEN_SSH, aws.account, aws.region)
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def deliver(event: dict[str, Any]) -> None:
        barrier.wait()
        results.append(invoke(stack, "on_api_call", event))

    threads = [threading.Thread(target=deliver, args=(e,)) for e in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert revokes(aws) == 1
    sg1 = sorted(d["result"] for r in results for d in r["decisions"] if d["control"] == "SG.1")
    assert sg1 == ["duplicate", "succeeded"]


SECRET_URL_PATH = "/services/T0SECRET/B0SECRET/xoxb-very-secret-token"


def test_secrets_never_reach_the_logs(stack, monkeypatch, capsys, caplog) -> None:
    """The webhook URL (failing, so error paths run) and the member external id appear in no log line,
    engine output or metric of netguard's, at DEBUG level. (botocore's own DEBUG logging, off unless
    someone turns the root logger to DEBUG, prints every response body, parameters included.)"""
    aws, net = stack["aws"], stack["net"]
    slack = stack["slack"]
    secret_url = slack.url.rsplit("/", 1)[0] + SECRET_URL_PATH
    aws.client("ssm").put_parameter(Name="/netguard/secret-test", Value=secret_url, Type="SecureString")
    monkeypatch.setenv("NETGUARD_SLACK_WEBHOOK_PARAM", "/netguard/secret-test")
    monkeypatch.setenv("NETGUARD_MEMBER_EXTERNAL_ID", "ext-id-do-not-log-4242")
    monkeypatch.setenv("NETGUARD_MEMBER_ROLE_NAME", "netguard-member")
    monkeypatch.setenv("NETGUARD_HOME_ACCOUNT", aws.account)
    handlers.runtime.cache_clear()
    notify.clear_cache()
    stream = io.StringIO()
    previous = handlers.logger.registered_handler.setStream(stream)
    caplog.set_level(logging.DEBUG, logger="netguard")  # netguard's own loggers, at their most verbose
    try:
        handlers.runtime().notifier.slack_sleep = lambda seconds: None
        attach_notebook_eni(aws.client("ec2"), net.private_subnets[0], [net.sg_ssh_open], "nb")
        slack.fail_next(500, count=8, body=f"error at {secret_url}")  # an error body that echoes the URL
        invoke(stack, "on_api_call", events.authorize_ingress(net.sg_ssh_open, OPEN_SSH, aws.account, aws.region))
        slack.recover()
        invoke(stack, "sweep", {"version": "0", "id": "s-1", "detail-type": "Scheduled Event", "source": "aws.events",
                                "account": aws.account, "time": "2026-11-27T06:00:00Z", "region": aws.region,
                                "resources": [], "detail": {}})
    finally:
        handlers.logger.registered_handler.setStream(previous)
    captured = stream.getvalue() + capsys.readouterr().out + caplog.text
    assert json_lines(stream), "the handlers logged nothing: the test would prove nothing"
    assert "not delivered on slack" in captured  # the failure path ran and was logged
    for secret in ("T0SECRET", "B0SECRET", "xoxb-very-secret-token", "ext-id-do-not-log-4242"):
        assert secret not in captured, secret


HOSTILE = {
    "mention": "<!channel> <!here> <@U123>",
    "bold": "*bold* _it_ ~strike~",
    "link": "<http://evil.example|click here>",
    "newlines": "line1\nline2\r\n```\nbreak out",
    "huge": "x" * 10_000,
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_names_and_tags_are_escaped_and_fit(kind: str) -> None:
    from test_notify import _mrkdwn_texts, make_alert

    value = HOSTILE[kind]
    alert = make_alert(resource_id=value, evidence={"tags": {"Owner": value}}, principal=value)
    payload = notify.slack_blocks(alert)
    texts = [payload["text"]] + [t["text"] for t in _mrkdwn_texts(payload)]
    for text in texts:
        assert "<!channel>" not in text and "<!here>" not in text and "<@U123>" not in text
        assert "<http://evil.example|" not in text
        assert len(text) <= 3000
    assert len(payload["text"]) <= notify.SLACK_FALLBACK_MAX
    _, message = notify.fit_message(alert, notify.SNS_MAX_BYTES)
    assert len(message.encode()) <= notify.SNS_MAX_BYTES
    subject = notify.sns_subject(alert)
    assert len(subject) <= 100 and "\n" not in subject and all(" " <= c <= "~" for c in subject)


OUTAGES = {
    "slack 500": lambda stack, aws: stack["slack"].fail_next(500, count=1000),
    "slack 429 Retry-After": lambda stack, aws: stack["slack"].fail_next(429, count=1000, headers={"Retry-After": "1"}),
    "slack timeouts": lambda stack, aws: stack["slack"].stall_next(0.5, count=1000),
    "sns errors": lambda stack, aws: FaultInjector(rate=1.0, kinds=("5xx",), services={"sns"}).install(
        aws.clients.session),
}


@pytest.mark.parametrize("outage", sorted(OUTAGES))
def test_alerts_sent_during_an_outage_are_delivered_after_it(stack, monkeypatch, outage: str) -> None:
    """Alerts sent while a channel is down are recorded as undelivered and delivered by the next sweep
    once the channel is back: none is lost."""
    aws, net = stack["aws"], stack["net"]
    monkeypatch.setitem(notify.SlackWebhook.__init__.__kwdefaults__, "timeout", 0.2)  # stalls time out fast
    monkeypatch.setenv("NETGUARD_REGIONS", aws.region)
    handlers.runtime.cache_clear()
    handlers.runtime().notifier.slack_sleep = lambda seconds: None
    injector = None
    if outage == "sns errors":
        injector = OUTAGES[outage](stack, aws)
    else:
        OUTAGES[outage](stack, aws)
    attach_notebook_eni(aws.client("ec2"), net.private_subnets[0], [net.sg_ssh_open], "nb")
    invoke(stack, "on_api_call", events.authorize_ingress(net.sg_ssh_open, OPEN_SSH, aws.account, aws.region))
    channel = "sns" if injector else "slack"
    pending = [i for i in ledger_items(stack, "") if i["pk"] == "alert#undelivered"]
    during = {json.loads(i["alert"])["alert_id"]: json.loads(i["alert"]) for i in pending if i["channel"] == channel}
    sent = set(during)
    assert len(sent) == 2  # SG.1 and SG.2, both undelivered on the channel that is down
    if injector:
        injector.enabled = False
    else:
        stack["slack"].recover()
    handlers.runtime.cache_clear()  # the sweep runs in its own container
    result = invoke(stack, "sweep", {"version": "0", "id": f"s-{outage}", "detail-type": "Scheduled Event",
                                     "source": "aws.events", "account": aws.account, "time": "2026-11-27T06:00:00Z",
                                     "region": aws.region, "resources": [], "detail": {}})
    left = [i for i in ledger_items(stack, "") if i["pk"] == "alert#undelivered"]
    if injector:
        delivered = {a["message"]["alert_id"] for a in alerts(stack)}
    else:  # a Slack message names its control and resource in its text
        texts = [p["text"] for p in stack["slack"].payloads]
        delivered = {aid for aid, alert in during.items()
                     if any(alert["control"]["id"] in t and alert["resource"]["id"] in t for t in texts)}
    print(f"{outage}: {len(sent)} alerts during the outage, {result['undelivered_alerts']['resent']} re-sent by the "
          f"next sweep, {len(left)} still undelivered, {len(sent - delivered)} lost")
    assert result["undelivered_alerts"] == {"resent": 2, "still_undelivered": 0, "left_for_next_sweep": 0}
    assert left == []
    assert sent <= delivered


def ledger_writes(aws) -> list[str]:
    return [op for op in aws.calls.ops("dynamodb") if op not in ("Query", "GetItem")]


def test_an_event_settles_its_claims_actions_and_decisions_in_one_batch(stack) -> None:
    """Before acting: the idempotency record, the conditional claims of its decisions in one
    transaction, the budgets and the action's before-state. After: one BatchWriteItem for the rest
    (claims and actions with their results, the decisions), then Powertools' update. (A security
    group uses nothing netguard indexes: no write for the dependency index.)"""
    aws, net = stack["aws"], stack["net"]
    attach_notebook_eni(aws.client("ec2"), net.private_subnets[0], [net.sg_ssh_open], "nb")
    result = invoke(stack, "on_api_call", events.authorize_ingress(net.sg_ssh_open, OPEN_SSH, aws.account, aws.region))
    decided = [d for d in result["decisions"] if d["result"] != "duplicate"]
    acted = {d["action_id"] for d in decided if d["action_id"]}
    assert len(decided) >= 2 and acted
    writes = ledger_writes(aws)
    assert writes.count("BatchWriteItem") == 1
    assert writes.count("TransactWriteItems") == 1  # the claims
    assert writes.count("PutItem") == 1 + len(acted)  # idempotency, before-states
    # the account's budget per action (one account: the organization's cap cannot bind, its counter is not
    # kept), idempotency completed
    assert writes.count("UpdateItem") == len(acted) + 1
    settled = {i["sk"].split("#")[1]: i.get("result") for i in ledger_items(stack, "claim#")}
    assert settled == {d["control"]: d["result"] for d in decided}
    assert len(ledger_items(stack, "decision#")) == len(decided)
    actions = ledger_items(stack, "action")
    assert {i["result"] for i in actions} == {"succeeded"} and all(i["before"] and i["resource"] for i in actions)


def test_a_failing_batch_is_written_item_by_item_and_what_fails_is_logged(stack, monkeypatch, engine_log) -> None:
    """BatchWriteItem failing every time: the run writes its settlement item by item; an item that
    still fails is logged with what it was and still alerted. No action is redone."""
    from botocore.exceptions import ClientError

    aws, net = stack["aws"], stack["net"]
    attach_notebook_eni(aws.client("ec2"), net.private_subnets[0], [net.sg_ssh_open], "nb")
    ledger = handlers.runtime().ledger
    slow = ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}}, "X")
    monkeypatch.setattr(ledger.ddb, "batch_write_item", lambda **_: (_ for _ in ()).throw(slow))
    apply = ledger._apply

    def apply_but_decisions(op):  # decisions refused one by one too: only they stay unwritten
        if "Put" in op and op["Put"]["Item"]["sk"]["S"].startswith("decision#"):
            raise slow
        apply(op)

    monkeypatch.setattr(ledger, "_apply", apply_but_decisions)
    result = invoke(stack, "on_api_call", events.authorize_ingress(net.sg_ssh_open, OPEN_SSH, aws.account, aws.region))
    decided = [d for d in result["decisions"] if d["result"] != "duplicate"]
    assert revokes(aws) == 1
    assert {i["sk"].split("#")[1]: i.get("result") for i in ledger_items(stack, "claim#")} == {
        d["control"]: d["result"] for d in decided}  # settled item by item
    assert {i["result"] for i in ledger_items(stack, "action")} == {"succeeded"}
    assert ledger_items(stack, "decision#") == []
    logged = [line["message"] for line in json_lines(engine_log) if "could not record the decision" in line["message"]]
    assert len(logged) == len(decided) and all("ProvisionedThroughputExceededException" in m for m in logged)
    assert len(alerts(stack)) == len(decided)  # still alerted


def _claims(stack, count: int) -> tuple[Any, list[tuple[Any, str]], Any]:
    """`count` distinct findings to claim (the baseline's controls on as many notebooks as it takes),
    and the runtime's DynamoDB ledger."""
    from chalicelib.model import NON_COMPLIANT, NOTEBOOK, EventContext, Finding, Resource, ResourceRef
    from chalicelib.policy import load_policy

    aws = stack["aws"]
    controls = load_policy().controls
    claims = []
    for i in range(count):
        ref = ResourceRef(NOTEBOOK, f"nb-{i // len(controls)}", aws.account, aws.region)
        claims.append((Finding(controls[i % len(controls)], Resource(ref, f"arn:{ref.key}", {}), NON_COMPLIANT, {}),
                       "remediate"))
    return handlers.runtime().ledger, claims, EventContext(f"evt-{uuid.uuid4()}", "test")


def test_claims_are_made_together_and_one_taken_already_is_answered_false(stack) -> None:
    """120 claims: transactions of 100 and 20. Claims taken earlier cancel their transaction: they are
    answered False and the others are claimed by the transaction tried again; nothing is taken twice."""
    aws = stack["aws"]
    ledger, claims, context = _claims(stack, 120)
    assert ledger.claim_many(claims[:3], context) == [True, True, True]
    calls = len(aws.calls.ops("dynamodb"))
    assert ledger.claim_many(claims, context) == [False] * 3 + [True] * 117
    # the first hundred cancelled (3 taken), then its other 97, then the last 20
    assert aws.calls.ops("dynamodb")[calls:] == ["TransactWriteItems"] * 3
    assert ledger.claim_many(claims, context) == [False] * 120
    _, fresh, _ = _claims(stack, 125)
    assert ledger.claim_many([fresh[-1], fresh[-1]], context) == [True, False]  # one item twice: the first decides


def test_claims_fall_back_to_one_put_each_when_the_transaction_fails(stack, monkeypatch) -> None:
    from botocore.exceptions import ClientError

    ledger, claims, context = _claims(stack, 5)
    refused = ClientError({"Error": {"Code": "ValidationException", "Message": "no transactions here"}},
                          "TransactWriteItems")
    monkeypatch.setattr(ledger.ddb, "transact_write_items", lambda **_: (_ for _ in ()).throw(refused))
    assert ledger.claim_many(claims[:2], context) == [True, True]
    assert ledger.claim_many(claims, context) == [False, False, True, True, True]


def test_every_undelivered_alert_is_resent_by_one_sweep_within_its_time(aws) -> None:
    """Not 100 per sweep: all of them, page after page, unless the invocation's time runs short, when
    what is left is counted and kept for the next sweep."""
    from chalicelib.ledger import DynamoLedger
    from netguard_testkit.world import create_ledger_table

    table = create_ledger_table(aws.client("dynamodb"), "netguard-ledger-resend")
    ledger = DynamoLedger(table, aws.clients)
    for index in range(250):
        ledger.record_undelivered({"alert_id": f"a-{index:03d}", "text": "x" * 2000}, "sns", "outage")

    class Delivering:
        def __init__(self) -> None:
            self._down: dict = {}
            self.sent: list = []

        def resend(self, alert, channel):
            self.sent.append(alert["alert_id"])
            return notify.DELIVERED

    first = Delivering()
    clock = iter(range(200, -100, -1))  # seconds left, one fewer per alert: 181 go before 20 s are left
    counts = notify.resend_undelivered(ledger, first, time_left=lambda: next(clock), margin=20)
    assert counts == {"resent": 181, "still_undelivered": 0, "left_for_next_sweep": 69}
    assert first.sent == sorted(first.sent)  # oldest first
    again = notify.resend_undelivered(ledger, Delivering())
    assert again == {"resent": 69, "still_undelivered": 0, "left_for_next_sweep": 0}
    assert list(ledger.undelivered()) == []
