"""Notify: alert facts, SNS delivery (moto), Slack payload escaping and webhook delivery (real local HTTP)."""
from __future__ import annotations

import json
import logging
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib import notify
from chalicelib.aws import Clients
from chalicelib.errors import DeliveryError
from chalicelib.model import (
    ALERT_ONLY,
    NON_COMPLIANT,
    NOTEBOOK,
    REMEDIATE,
    SUCCEEDED,
    Control,
    Decision,
    EventContext,
    Finding,
    Outcome,
    Resource,
    ResourceRef,
)
from chalicelib.settings import Settings
from netguard_testkit.receiver import WebhookReceiver

REGION = "us-east-1"
ACCOUNT = "123456789012"
SECRET = "T0SECRET/B0SECRET/zzSECRETtoken42"  # the secret part of every test webhook URL
SECRET_PIECES = ("T0SECRET", "B0SECRET", "zzSECRETtoken42")
NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
HOSTILE = "<!channel> *bold* _it_ ~strike~ `tick` <http://x|y>\nsecond line & more"

BASELINE_FIELDS = {
    "schema", "alert_id", "control", "severity", "verdict", "resource", "evidence", "decision", "action",
    "result", "detail", "reason", "action_id", "principal", "event_id", "event_name", "trigger", "guidance", "time",
}


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SNS", "AWS_ENDPOINT_URL_SSM",
                 "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    notify.clear_cache()
    yield
    notify.clear_cache()


@pytest.fixture
def aws() -> Iterator[Clients]:
    with mock_aws():
        yield Clients(boto3.session.Session(region_name=REGION))


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(path=f"/services/{SECRET}") as receiver:
        yield receiver


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="netguard")
    return caplog


class FakeLedger:
    def __init__(self) -> None:
        self.calls: list[tuple[dict, str, str]] = []

    def record_undelivered(self, alert: dict, channel: str, error: str) -> None:
        self.calls.append((alert, channel, error))


class Sleeps(list):
    """A recording stand-in for time.sleep."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class RecordingSns:
    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.error = error

    def publish(self, **kwargs: Any) -> dict:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        return {"MessageId": "m-1"}


class RecordingClients:
    """A Clients stand-in: records (service, region) and hands out the given fakes."""

    def __init__(self, **fakes: Any) -> None:
        self.fakes = fakes
        self.asked: list[tuple[str, str | None]] = []

    def client(self, service: str, region: str | None = None, account: str | None = None) -> Any:
        self.asked.append((service, region))
        return self.fakes[service]


def make_control(**overrides: Any) -> Control:
    values: dict[str, Any] = dict(
        id="NB.1", title="Notebook has no direct internet access", severity="high", resource_types=(NOTEBOOK,),
        mode="enforce", check="notebook_direct_internet", params={}, remediation="stop-notebook",
        guidance="Recreate the notebook with DirectInternetAccess=Disabled & a private subnet.",
        peers=("SageMaker.1",), applies_when=None, source="policies/notebook.yaml",
    )
    values.update(overrides)
    return Control(**values)


def make_case(
    resource_id: str = "nb-1",
    evidence: Any = None,
    kind: str = REMEDIATE,
    result: str = SUCCEEDED,
    detail: str = "notebook stopped and tagged netguard:quarantined",
    principal: str | None = "arn:aws:sts::123456789012:assumed-role/DataSci/alice",
    control: Control | None = None,
    action: str | None = "stop-notebook",
) -> tuple[EventContext, Outcome]:
    ref = ResourceRef(NOTEBOOK, resource_id, ACCOUNT, REGION)
    resource = Resource(ref, f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:notebook-instance/{resource_id.lower()}", {})
    finding = Finding(control or make_control(), resource, NON_COMPLIANT,
                      {"DirectInternetAccess": "Enabled"} if evidence is None else evidence)
    decision = Decision(finding, kind, "control NB.1 is in enforce mode", action)
    outcome = Outcome(decision, result, detail, action_id="act-123")
    context = EventContext("evt-1", "api-call", "CreateNotebookInstance", principal, "2024-05-06T07:00:00Z")
    return context, outcome


def make_alert(**kwargs: Any) -> dict[str, Any]:
    context, outcome = make_case(**kwargs)
    return notify.build_alert(context, outcome, now=NOW)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for piece in SECRET_PIECES:
            assert piece not in text


def assert_logs_clean(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    captured = capsys.readouterr()
    rendered = [caplog.text, captured.out, captured.err]
    rendered += [record.getMessage() for record in caplog.records]
    rendered += [repr(record.__dict__) for record in caplog.records]
    assert_no_secret(*rendered)


# ------------------------------------------------------------------------------------------- alerts


def test_build_alert_carries_every_baseline_fact() -> None:
    context, outcome = make_case()
    alert = notify.build_alert(context, outcome, now=NOW)

    assert set(alert) == BASELINE_FIELDS
    assert alert["schema"] == notify.ALERT_SCHEMA == "netguard.alert/v1"
    assert alert["control"] == {"id": "NB.1", "title": "Notebook has no direct internet access"}
    assert alert["severity"] == "high"
    assert alert["verdict"] == NON_COMPLIANT
    assert alert["resource"] == {
        "type": NOTEBOOK, "id": "nb-1", "arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:notebook-instance/nb-1",
        "account": ACCOUNT, "region": REGION,
    }
    assert alert["evidence"] == {"DirectInternetAccess": "Enabled"}
    assert (alert["decision"], alert["action"], alert["result"]) == (REMEDIATE, "stop-notebook", SUCCEEDED)
    assert "notebook stopped" in alert["detail"] and "enforce mode" in alert["detail"]
    assert alert["reason"] == "control NB.1 is in enforce mode"
    assert alert["action_id"] == "act-123"
    assert alert["principal"] == "arn:aws:sts::123456789012:assumed-role/DataSci/alice"
    assert (alert["event_id"], alert["event_name"], alert["trigger"]) == ("evt-1", "CreateNotebookInstance", "api-call")
    assert alert["guidance"].startswith("Recreate the notebook")
    assert alert["time"] == "2024-05-06T07:08:09Z"
    json.dumps(alert)  # plain JSON data


def test_alert_id_is_deterministic_and_per_decision_kind() -> None:
    context, outcome = make_case()
    first = notify.build_alert(context, outcome, now=NOW)["alert_id"]
    later = notify.build_alert(context, outcome)["alert_id"]
    assert first == later and re.fullmatch(r"[0-9a-f]{16}", first)
    other_context, other = make_case(kind=ALERT_ONLY, action=None)
    alert = notify.build_alert(other_context, other, account="999999999999")
    assert alert["alert_id"] != first
    assert alert["action"] is None
    assert alert["resource"]["account"] == "999999999999"


def test_build_alert_makes_evidence_plain_json() -> None:
    alert = make_alert(evidence={"rules": ({"cidr": "0.0.0.0/0"},), "when": NOW})
    assert alert["evidence"] == {"rules": [{"cidr": "0.0.0.0/0"}], "when": str(NOW)}


# ---------------------------------------------------------------------------------------------- SNS


def _topic_and_queue(aws: Clients) -> tuple[str, str]:
    sns, sqs = aws.client("sns", REGION), aws.client("sqs", REGION)
    topic_arn = sns.create_topic(Name="netguard-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn,
                  Attributes={"RawMessageDelivery": "false"})
    return topic_arn, queue_url


def _received_envelopes(aws: Clients, queue_url: str) -> list[dict]:
    messages = aws.client("sqs", REGION).receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    return [json.loads(message["Body"]) for message in messages.get("Messages", [])]


def test_sns_message_is_the_alert_json_with_filter_attributes(aws: Clients) -> None:
    topic_arn, queue_url = _topic_and_queue(aws)
    alert = make_alert()

    notify.publish_sns(aws.client("sns", REGION), topic_arn, alert)

    [envelope] = _received_envelopes(aws, queue_url)
    assert json.loads(envelope["Message"]) == alert
    assert json.loads(envelope["Message"])["schema"] == "netguard.alert/v1"
    assert envelope["Subject"] == "[netguard] HIGH NB.1 nb-1: remediate succeeded"
    assert envelope["MessageAttributes"] == {
        "severity": {"Type": "String", "Value": "high"},
        "control": {"Type": "String", "Value": "NB.1"},
        "action": {"Type": "String", "Value": "remediate"},
        "account": {"Type": "String", "Value": ACCOUNT},
    }


def test_sns_subject_is_one_short_ascii_line() -> None:
    alert = make_alert(resource_id="nb\n<x>\tünïcode-" + "y" * 300)
    subject = notify.sns_subject(alert)
    assert subject.startswith("[netguard] HIGH NB.1 nb <x> ?n?code-")
    assert len(subject) <= 100 and subject.endswith("...")
    assert all(" " <= ch <= "~" for ch in subject)


def test_sns_attributes_are_never_empty() -> None:
    alert = make_alert()
    alert["resource"]["account"] = None
    assert notify.sns_attributes(alert)["account"] == {"DataType": "String", "StringValue": "unknown"}


@pytest.mark.parametrize("filler", ["x", "é", "\x01"])
def test_oversized_evidence_is_truncated_under_256kb(filler: str) -> None:
    alert = make_alert(evidence={"rules": [filler * 1000] * 400})
    sns = RecordingSns()

    notify.publish_sns(sns, "arn:aws:sns:us-east-1:123456789012:t", alert)

    [call] = sns.calls
    attributes = sum(len(k) + len(v["DataType"]) + len(v["StringValue"]) for k, v in call["MessageAttributes"].items())
    total = len(call["Message"].encode()) + attributes + len(call["Subject"].encode())
    assert total <= 256 * 1024
    assert len(call["Message"].encode()) > 200 * 1024  # truncated, not emptied
    sent = json.loads(call["Message"])
    assert sent["evidence"]["truncated"] is True
    assert sent["evidence"]["preview"].startswith('{"rules": ["')
    assert {k: v for k, v in sent.items() if k != "evidence"} == {k: v for k, v in alert.items() if k != "evidence"}


def test_small_evidence_is_sent_whole() -> None:
    sns = RecordingSns()
    alert = make_alert()
    notify.publish_sns(sns, "arn:aws:sns:us-east-1:123456789012:t", alert)
    assert json.loads(sns.calls[0]["Message"])["evidence"] == {"DirectInternetAccess": "Enabled"}


def test_oversized_alert_is_accepted_by_sns(aws: Clients) -> None:
    topic_arn, queue_url = _topic_and_queue(aws)
    alert = make_alert(evidence={"blob": "z" * 400_000}, detail="d" * 300_000)
    notify.publish_sns(aws.client("sns", REGION), topic_arn, alert)
    [envelope] = _received_envelopes(aws, queue_url)
    sent = json.loads(envelope["Message"])
    assert sent["evidence"]["truncated"] is True
    assert len(sent["detail"]) <= 4096


def test_sns_failure_raises_delivery_error_from_client_error(aws: Clients) -> None:
    from botocore.exceptions import ClientError

    missing = f"arn:aws:sns:{REGION}:{ACCOUNT}:no-such-topic"
    with pytest.raises(DeliveryError, match="no-such-topic") as caught:
        notify.publish_sns(aws.client("sns", REGION), missing, make_alert())
    assert isinstance(caught.value.__cause__, ClientError)


# ----------------------------------------------------------------------------------- Slack payload


def _mrkdwn_texts(payload: dict) -> list[dict]:
    texts: list[dict] = []
    for block in payload["blocks"]:
        if block["type"] == "section":
            texts += [block["text"]] if "text" in block else []
            texts += block.get("fields", [])
        elif block["type"] == "context":
            texts += block["elements"]
    return texts


def _outside_code(text: str) -> str:
    """`text` without its code blocks and inline code spans (where Slack applies no formatting)."""
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", text)


def _field(payload: dict, label: str) -> str:
    fields = payload["blocks"][1]["fields"]
    return next(field["text"] for field in fields if field["text"].startswith(f"*{label}*\n"))


def test_slack_payload_shape() -> None:
    payload = notify.slack_blocks(make_alert())
    kinds = [block["type"] for block in payload["blocks"]]
    assert kinds == ["header", "section", "section", "section", "section", "context"]
    header = payload["blocks"][0]["text"]
    assert header["type"] == "plain_text" and header["text"] == "HIGH NB.1: Notebook has no direct internet access"
    labels = [field["text"].split("\n")[0] for field in payload["blocks"][1]["fields"]]
    assert labels == ["*Control*", "*Severity*", "*Resource*", "*Account*", "*Region*", "*Decision*", "*Result*"]
    assert "`nb-1`" in _field(payload, "Resource")
    assert "remediate (`stop-notebook`)" in _field(payload, "Decision")
    assert payload["blocks"][3]["text"]["text"].startswith("*Evidence*\n```\n{")
    assert "Recreate the notebook" in payload["blocks"][4]["text"]["text"]
    assert "&amp; a private subnet" in payload["blocks"][4]["text"]["text"]
    context = payload["blocks"][5]["elements"][0]["text"]
    assert "`evt-1`" in context and "`arn:aws:sts::123456789012:assumed-role/DataSci/alice`" in context
    assert payload["text"] == "[netguard] HIGH NB.1: remediate succeeded on `nb-1`"
    json.dumps(payload)


def test_slack_escapes_user_controlled_text() -> None:
    alert = make_alert(
        resource_id=HOSTILE,
        evidence={"tag": HOSTILE, "note": "<!here> ```break out```"},
        detail=f"failed for {HOSTILE}",
        principal="arn:aws:sts::1:assumed-role/AWSReserved_SSO_x/*evil* <!everyone>",
    )
    payload = notify.slack_blocks(alert)
    texts = _mrkdwn_texts(payload)
    everything = [payload["text"]] + [text["text"] for text in texts]

    for text in everything:
        assert "<" not in text and ">" not in text  # no <!channel>, no <url|label>, no stray entity
        outside = _outside_code(text)
        for formatting in ("*bold*", "_it_", "~strike~", "*evil*", "_SSO_", "http://x"):
            assert formatting not in outside
        assert "`tick`" not in text and "```break" not in text  # user backticks cannot close a span
    assert all(text["type"] == "mrkdwn" and text["verbatim"] is True for text in texts)

    resource = _field(payload, "Resource")
    assert "&lt;!channel&gt; *bold* _it_ ~strike~ ˋtickˋ &lt;http://x|y&gt; second line &amp; more" in resource
    assert "&lt;!channel&gt;" in payload["text"] and "\n" not in payload["text"]
    context = payload["blocks"][-1]["elements"][0]["text"]
    assert "\n" not in context and "&lt;!everyone&gt;" in context
    evidence = next(t["text"] for t in texts if t["text"].startswith("*Evidence*"))
    assert "&lt;!here&gt; ˋˋˋbreak outˋˋˋ" in evidence


def test_slack_truncates_long_text_within_block_kit_limits() -> None:
    long_text = "a<" * 5000  # 10 KB, and escaping makes it longer
    alert = make_alert(
        resource_id=long_text, evidence={"blob": long_text}, detail=long_text, principal=long_text,
        control=make_control(title="T" * 400, guidance=long_text),
    )
    alert["resource"].update(account=long_text, region=long_text, arn=long_text)
    alert.update(event_id=long_text, event_name=long_text, action=long_text)
    payload = notify.slack_blocks(alert)

    assert len(payload["blocks"][0]["text"]["text"]) <= 150
    assert payload["blocks"][0]["text"]["text"].endswith("…")
    plain = notify.slack_blocks(make_alert(control=make_control(title="R&D " * 60)))["blocks"][0]["text"]["text"]
    assert len(plain) == 150 and "&amp;" not in plain  # plain_text: no entities, cut exactly at the limit
    assert len(payload["text"]) <= notify.SLACK_FALLBACK_MAX
    for field in payload["blocks"][1]["fields"]:
        assert len(field["text"]) <= 2000
    for block in payload["blocks"][2:]:
        for text in ([block["text"]] if "text" in block else block.get("elements", [])):
            assert len(text["text"]) <= 3000
    for text in [payload["text"]] + [t["text"] for t in _mrkdwn_texts(payload)]:
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), "an entity was cut in half"
        assert text.count("```") % 2 == 0
        assert _outside_code(text).count("`") == 0  # every code span is closed
    assert "…`" in _field(payload, "Resource")
    evidence = payload["blocks"][3]["text"]["text"]
    assert evidence.endswith("…\n```")


def test_slack_handles_missing_optional_facts() -> None:
    alert = make_alert(principal=None, action=None, detail="")
    alert["guidance"] = ""
    payload = notify.slack_blocks(alert)
    assert [block["type"] for block in payload["blocks"]] == ["header", "section", "section", "section", "context"]
    assert "by —" in payload["blocks"][-1]["elements"][0]["text"]


# ----------------------------------------------------------------------------------- Slack webhook


@pytest.mark.parametrize("url", [
    f"http://example.com/services/{SECRET}",
    f"http://127.0.0.1.evil.com/services/{SECRET}",
    f"http://10.0.0.1/services/{SECRET}",
    f"ftp://127.0.0.1/services/{SECRET}",
    f"file:///services/{SECRET}",
    f"https:///services/{SECRET}",
    f"https://hooks.slack.com:99999/services/{SECRET}",
    f"https://hooks.slack.com/services/{SECRET} \n",
])
def test_unsafe_webhook_url_is_refused_before_any_network_call(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("network call attempted")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(DeliveryError) as caught:
        notify.SlackWebhook(url).post({"text": "hi"})
    assert_no_secret(str(caught.value), repr(caught.value))
    assert caught.value.__cause__ is None or not any(p in str(caught.value.__cause__) for p in SECRET_PIECES)


@pytest.mark.parametrize("url", [
    f"https://hooks.slack.com/services/{SECRET}",
    f"http://localhost:8080/services/{SECRET}",
    f"http://127.5.6.7:9/services/{SECRET}",
    f"http://[::1]:9/services/{SECRET}",
])
def test_safe_webhook_urls_are_accepted(url: str) -> None:
    webhook = notify.SlackWebhook(url)
    assert_no_secret(webhook.redacted_url, repr(webhook))
    assert webhook.redacted_url.endswith("/***")


def test_redaction_keeps_only_scheme_and_host() -> None:
    assert notify.redact_url(f"https://hooks.slack.com/services/{SECRET}") == "https://hooks.slack.com/***"
    assert notify.redact_urls(f"boom at https://hooks.slack.com/services/{SECRET}?x=1 end") == (
        "boom at https://hooks.slack.com/*** end"
    )


def test_webhook_delivers_payload(hook: WebhookReceiver) -> None:
    payload = notify.slack_blocks(make_alert())
    notify.SlackWebhook(hook.url).post(payload)
    assert hook.payloads == [payload]


def test_429_honours_retry_after_then_succeeds(hook: WebhookReceiver, logs, capsys) -> None:
    hook.fail_next(429, headers={"Retry-After": "7"})
    sleeps = Sleeps()
    notify.SlackWebhook(hook.url, sleep=sleeps).post({"text": "hello"})
    assert sleeps == [7.0]
    assert hook.payloads == [{"text": "hello"}] and hook.attempts == 2
    assert "429" in logs.text
    assert_logs_clean(logs, capsys)


def test_retry_after_is_capped(hook: WebhookReceiver) -> None:
    hook.fail_next(429, headers={"Retry-After": "3600"})
    hook.fail_next(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    sleeps = Sleeps()
    notify.SlackWebhook(hook.url, sleep=sleeps).post({"text": "hello"})
    assert sleeps == [30.0, 2.0]  # capped; an HTTP date falls back to exponential backoff
    assert len(hook.payloads) == 1


def test_500_twice_then_success_backs_off_exponentially(hook: WebhookReceiver) -> None:
    hook.fail_next(500, count=2)
    sleeps = Sleeps()
    notify.SlackWebhook(hook.url, sleep=sleeps).post({"text": "hello"})
    assert sleeps == [1.0, 2.0]
    assert len(hook.payloads) == 1 and hook.attempts == 3


def test_persistent_500_fails_after_bounded_attempts(hook: WebhookReceiver, logs, capsys) -> None:
    hook.fail_next(500, count=10)
    sleeps = Sleeps()
    with pytest.raises(DeliveryError, match=r"after 4 attempts: HTTP 500 internal_error") as caught:
        notify.SlackWebhook(hook.url, sleep=sleeps).post({"text": "hello"})
    assert hook.attempts == 4 and sleeps == [1.0, 2.0, 4.0] and hook.payloads == []
    assert_no_secret(str(caught.value))
    assert_logs_clean(logs, capsys)


def test_max_attempts_is_configurable(hook: WebhookReceiver) -> None:
    hook.fail_next(503, count=10)
    with pytest.raises(DeliveryError):
        notify.SlackWebhook(hook.url, sleep=Sleeps(), max_attempts=2).post({"text": "hello"})
    assert hook.attempts == 2


@pytest.mark.parametrize("status", [400, 403, 404, 410])
def test_client_errors_are_not_retried(hook: WebhookReceiver, status: int) -> None:
    hook.fail_next(status)
    sleeps = Sleeps()
    with pytest.raises(DeliveryError, match=f"HTTP {status}") as caught:
        notify.SlackWebhook(hook.url, sleep=sleeps).post({"text": "hello"})
    assert hook.attempts == 1 and sleeps == []
    assert_no_secret(str(caught.value))


def test_invalid_payload_is_rejected_like_slack(hook: WebhookReceiver) -> None:
    with pytest.raises(DeliveryError, match="HTTP 400 invalid_payload"):
        notify.SlackWebhook(hook.url, sleep=Sleeps()).post({"neither": "text nor blocks"})
    assert hook.payloads == []


def test_redirects_are_not_followed(hook: WebhookReceiver) -> None:
    hook.fail_next(302, headers={"Location": "http://example.com/steal"})
    with pytest.raises(DeliveryError, match="HTTP 302"):
        notify.SlackWebhook(hook.url, sleep=Sleeps()).post({"text": "hello"})
    assert hook.attempts == 1


def test_timeout_is_retried(hook: WebhookReceiver) -> None:
    hook.stall_next(1.0)
    sleeps = Sleeps()
    notify.SlackWebhook(hook.url, sleep=sleeps, timeout=0.2).post({"text": "hello"})
    assert sleeps == [1.0]
    assert hook.payloads == [{"text": "hello"}]


def test_connection_errors_are_retried_then_fail(logs, capsys) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps = Sleeps()
    with pytest.raises(DeliveryError, match="after 4 attempts") as caught:
        notify.SlackWebhook(f"http://127.0.0.1:{port}/services/{SECRET}", sleep=sleeps).post({"text": "x"})
    assert sleeps == [1.0, 2.0, 4.0]
    assert_no_secret(str(caught.value))
    assert_logs_clean(logs, capsys)


# ------------------------------------------------------------------------------ webhook URL secrets


def test_webhook_url_from_ssm_securestring_is_cached(aws: Clients) -> None:
    url = f"https://hooks.slack.com/services/{SECRET}"
    ssm = aws.client("ssm", None)
    ssm.put_parameter(Name="/netguard/slack", Value=url, Type="SecureString")

    assert notify.resolve_webhook_url("/netguard/slack", aws) == url
    ssm.delete_parameter(Name="/netguard/slack")
    assert notify.resolve_webhook_url("/netguard/slack", aws) == url  # served from the cache

    notify.clear_cache()
    with pytest.raises(DeliveryError, match="ParameterNotFound") as caught:
        notify.resolve_webhook_url("/netguard/slack", aws)
    assert "/netguard/slack" in str(caught.value)


def test_webhook_url_cache_expires_after_five_minutes(aws: Clients) -> None:
    ssm = aws.client("ssm", None)
    ssm.put_parameter(Name="/netguard/slack", Value="https://hooks.slack.com/services/a", Type="SecureString")
    calls: list[str] = []
    ssm.meta.events.register("before-call.ssm.GetParameter", lambda **kwargs: calls.append("get"))

    notify.resolve_webhook_url("/netguard/slack", aws, clock=lambda: 1000.0)
    notify.resolve_webhook_url("/netguard/slack", aws, clock=lambda: 1299.0)
    assert calls == ["get"]
    notify.resolve_webhook_url("/netguard/slack", aws, clock=lambda: 1301.0)
    assert calls == ["get", "get"]


@pytest.mark.parametrize("secret_string", [
    "https://hooks.slack.com/services/{SECRET}",
    '{"url": "https://hooks.slack.com/services/{SECRET}"}',
    '{"webhook_url": "https://hooks.slack.com/services/{SECRET}", "channel": "#sec"}',
])
def test_webhook_url_from_secrets_manager_is_cached(aws: Clients, secret_string: str) -> None:
    url = f"https://hooks.slack.com/services/{SECRET}"
    secrets = aws.client("secretsmanager", REGION)
    arn = secrets.create_secret(Name="netguard/slack", SecretString=secret_string.replace("{SECRET}", SECRET))["ARN"]
    calls: list[str] = []
    secrets.meta.events.register("before-call.secrets-manager.GetSecretValue", lambda **kwargs: calls.append("get"))

    assert notify.resolve_webhook_url(arn, aws) == url  # region taken from the ARN
    assert notify.resolve_webhook_url(arn, aws) == url
    assert calls == ["get"]
    assert notify.resolve_webhook_url("secretsmanager:netguard/slack", aws, REGION) == url
    assert calls == ["get", "get"]  # another name, another cache entry


def test_secret_json_without_url_is_an_error(aws: Clients) -> None:
    aws.client("secretsmanager", REGION).create_secret(Name="netguard/slack", SecretString='{"token": "x"}')
    with pytest.raises(DeliveryError, match="'url' or 'webhook_url'"):
        notify.resolve_webhook_url("secretsmanager:netguard/slack", aws)


def test_missing_secret_is_a_delivery_error(aws: Clients) -> None:
    with pytest.raises(DeliveryError, match="ResourceNotFoundException"):
        notify.resolve_webhook_url("secretsmanager:nope", aws)


# ----------------------------------------------------------------------------------------- Notifier


def _slack_param(aws: Clients, url: str) -> str:
    aws.client("ssm", None).put_parameter(Name="/netguard/slack", Value=url, Type="SecureString")
    return "/netguard/slack"


def test_notifier_delivers_to_both_channels(aws: Clients, hook: WebhookReceiver) -> None:
    topic_arn, queue_url = _topic_and_queue(aws)
    settings = Settings(alert_topic_arn=topic_arn, slack_webhook_param=_slack_param(aws, hook.url),
                        slack_allowed_urls=(hook.url,))
    ledger = FakeLedger()
    alert = make_alert()

    results = notify.Notifier(settings, aws, ledger=ledger, slack_sleep=Sleeps()).send(alert)

    assert results == {"sns": "delivered", "slack": "delivered"}
    assert [json.loads(e["Message"])["alert_id"] for e in _received_envelopes(aws, queue_url)] == [alert["alert_id"]]
    assert hook.payloads == [notify.slack_blocks(alert)]
    assert ledger.calls == []


def test_persistent_slack_failure_is_recorded_and_never_logs_the_url(
    aws: Clients, hook: WebhookReceiver, logs, capsys
) -> None:
    hook.fail_next(500, count=10)
    settings = Settings(slack_webhook_param=_slack_param(aws, hook.url),
                        slack_allowed_urls=(hook.url,))
    ledger, sleeps = FakeLedger(), Sleeps()
    alert = make_alert()

    results = notify.Notifier(settings, aws, ledger=ledger, slack_sleep=sleeps).send(alert)

    assert results["sns"] == "not-configured"
    assert results["slack"].startswith("failed: Slack webhook http://127.0.0.1:")
    assert hook.attempts == 4 and sleeps == [1.0, 2.0, 4.0]
    [(recorded, channel, error)] = ledger.calls
    assert recorded == alert and channel == "slack" and "HTTP 500" in error
    assert f"alert {alert['alert_id']} not delivered on slack" in logs.text
    assert_no_secret(results["slack"], error)
    assert_logs_clean(logs, capsys)


def test_one_failing_channel_does_not_stop_the_other(aws: Clients, hook: WebhookReceiver, logs, capsys) -> None:
    missing_topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:no-such-topic"
    settings = Settings(alert_topic_arn=missing_topic, slack_webhook_param=_slack_param(aws, hook.url),
                        slack_allowed_urls=(hook.url,))
    ledger = FakeLedger()

    results = notify.Notifier(settings, aws, ledger=ledger, slack_sleep=Sleeps()).send(make_alert())

    assert results["sns"].startswith("failed: SNS publish") and results["slack"] == "delivered"
    assert [call[1] for call in ledger.calls] == ["sns"]
    assert len(hook.payloads) == 1
    assert_logs_clean(logs, capsys)


def test_unresolvable_webhook_is_recorded_and_sns_still_sent(aws: Clients) -> None:
    topic_arn, queue_url = _topic_and_queue(aws)
    settings = Settings(alert_topic_arn=topic_arn, slack_webhook_param="/netguard/missing")
    ledger = FakeLedger()

    results = notify.Notifier(settings, aws, ledger=ledger).send(make_alert())

    assert results["sns"] == "delivered"
    assert results["slack"].startswith("failed: cannot read the Slack webhook URL")
    assert "ParameterNotFound" in results["slack"]
    assert [call[1] for call in ledger.calls] == ["slack"]
    assert len(_received_envelopes(aws, queue_url)) == 1


def test_unexpected_error_on_one_channel_is_contained(hook: WebhookReceiver, logs) -> None:
    notify._cache[("/p", None)] = (float("inf"), hook.url)
    clients = RecordingClients(sns=RecordingSns(error=RuntimeError("kaboom")))
    settings = Settings(alert_topic_arn="arn:aws:sns:eu-west-1:123456789012:alerts", slack_webhook_param="/p",
                        slack_allowed_urls=(hook.url,))
    ledger = FakeLedger()

    results = notify.Notifier(settings, clients, ledger=ledger).send(make_alert())

    assert results == {"sns": "failed: unexpected RuntimeError: kaboom", "slack": "delivered"}
    assert clients.asked == [("sns", "eu-west-1")]  # region from the topic ARN
    assert [call[1] for call in ledger.calls] == ["sns"]


def test_failing_ledger_is_logged_not_raised(aws: Clients, logs) -> None:
    class BrokenLedger:
        attempts = 0

        def record_undelivered(self, alert: dict, channel: str, error: str) -> None:
            self.attempts += 1
            raise OSError("table gone")

    settings = Settings(alert_topic_arn=f"arn:aws:sns:{REGION}:{ACCOUNT}:no-such-topic")
    ledger = BrokenLedger()
    alert = make_alert()
    results = notify.Notifier(settings, aws, ledger=ledger).send(alert)
    assert results["sns"].startswith("failed:")
    assert ledger.attempts == notify.UNDELIVERED_RECORD_ATTEMPTS
    assert "recording the sns delivery failure failed too (OSError: table gone)" in logs.text
    assert alert["alert_id"] in logs.text and '"schema": "netguard.alert/v1"' in logs.text  # the whole alert


def test_failure_without_ledger_is_still_logged(aws: Clients, logs) -> None:
    settings = Settings(alert_topic_arn=f"arn:aws:sns:{REGION}:{ACCOUNT}:no-such-topic")
    notify.Notifier(settings, aws).send(make_alert())
    assert any(r.levelno == logging.WARNING and "not delivered on sns" in r.getMessage() for r in logs.records)


def test_nothing_configured_touches_no_client() -> None:
    clients = RecordingClients()
    results = notify.Notifier(Settings(), clients).send(make_alert())
    assert results == {"sns": "not-configured", "slack": "not-configured"}
    assert clients.asked == []


def test_import_is_cheap() -> None:
    code = (
        "import sys, chalicelib.notify; "
        "heavy = [m for m in ('boto3', 'botocore', 'urllib.request') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


# ------------------------------------------------------------------------------------------ receiver


def test_receiver_answers_like_slack_and_stops_cleanly() -> None:
    import urllib.error
    import urllib.request

    with WebhookReceiver() as receiver:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/services/T000/B000/XXXX", receiver.url)
        request = urllib.request.Request(receiver.url, data=b'{"text": "hi"}', method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert (response.status, response.read()) == (200, b"ok")
        wrong = urllib.request.Request(receiver.url.replace("XXXX", "YYYY"), data=b'{"text": "hi"}', method="POST")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(wrong, timeout=5)
        assert (caught.value.code, caught.value.read()) == (404, b"no_service")
        caught.value.close()
        assert receiver.running
    assert not receiver.running
    assert receiver.payloads == [{"text": "hi"}]


def test_a_failed_channel_is_paused_then_tried_again(hook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """During an outage the second alert is recorded undelivered without spending retries; after the
    pause the channel is tried again."""
    monkeypatch.setattr(notify.delivery, "resolve_webhook_url", lambda *a, **k: hook.url)
    now = [1000.0]
    recorded: list[tuple[str, str]] = []

    class Ledger:
        def record_undelivered(self, alert: Any, channel: str, error: str) -> None:
            recorded.append((channel, error))

    notifier = notify.Notifier(Settings(slack_webhook_param="/p", slack_allowed_urls=(hook.url,)), Clients(),
                               ledger=Ledger(), slack_sleep=lambda s: None, clock=lambda: now[0])
    hook.fail_next(503, count=4)
    assert notifier.send(make_alert())["slack"].startswith("failed")
    assert hook.attempts == 4
    assert notifier.send(make_alert())["slack"].startswith("failed: not attempted")
    assert hook.attempts == 4 and len(recorded) == 2
    now[0] += notify.CHANNEL_PAUSE_SECONDS + 1
    assert notifier.send(make_alert())["slack"] == "delivered"
    assert len(hook.payloads) == 1


def test_sweep_digest_renders_within_slack_and_sns_limits() -> None:
    from chalicelib.sweep import digest_alert

    long_text = "<!channel> *x* " * 700  # 10 KB of mrkdwn-looking text in error messages
    summary = {"sweep_id": "20261127T060000Z-abc", "targets": [f"{i:012d}/us-east-1" for i in range(300)],
               "resources": 12345, "violations": {f"C.{i}": i for i in range(60)}, "remediated": 7, "failed": 1,
               "alerts": 9, "error_count": 2, "summary_key": "netguard/sweeps/x/summary.json",
               "errors": [{"target": "111111111111/us-east-1", "resource": long_text, "error": long_text}] * 5}
    alert = digest_alert(summary, "netguard-reports-x")
    subject = notify.sns_subject(alert)
    assert subject.startswith("[netguard] sweep 20261127T060000Z-abc: 12345 resources") and len(subject) <= 100
    assert notify.sns_attributes(alert)["kind"]["StringValue"] == "digest"
    payload = notify.slack_blocks(alert)
    assert payload["blocks"][0]["text"]["text"] == "netguard sweep 20261127T060000Z-abc"
    assert len(payload["text"]) <= notify.SLACK_FALLBACK_MAX
    texts = [t["text"] for t in _mrkdwn_texts(payload)]
    assert all(len(t) <= 3000 for t in texts)
    assert not any("<!channel>" in t for t in texts)  # escaped (&lt;!channel&gt;) or inside a code block
    assert any("s3://netguard-reports-x/netguard/sweeps/x/summary.json" in t for t in texts)


# ------------------------------------------------------------------------------- alerts of one run


def _drain(aws: Clients, queue_url: str) -> list[dict]:
    sqs, found = aws.client("sqs", REGION), []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        found += [json.loads(m["Body"]) for m in messages]
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
    return found


def test_the_alerts_of_a_run_go_to_sns_in_batches_of_ten_each_as_send_would_publish_it(aws: Clients) -> None:
    topic_arn, queue_url = _topic_and_queue(aws)
    calls: list[str] = []
    sns = aws.client("sns", REGION)
    sns.meta.events.register("before-call.sns.*", lambda model, **_: calls.append(model.name))
    alerts = [make_alert(resource_id=f"nb-{i}") for i in range(23)]

    results = notify.Notifier(Settings(alert_topic_arn=topic_arn), aws, ledger=FakeLedger()).send_all(alerts)

    assert results == [{"sns": "delivered", "slack": "not-configured"}] * 23
    assert calls == ["PublishBatch"] * 3
    received = {json.loads(e["Message"])["alert_id"]: e for e in _drain(aws, queue_url)}
    assert set(received) == {a["alert_id"] for a in alerts}
    alone, _ = notify.sns_message(alerts[0])
    envelope = received[alerts[0]["alert_id"]]
    assert envelope["Subject"] == alone["Subject"] and json.loads(envelope["Message"]) == alerts[0]
    assert {k: v["Value"] for k, v in envelope["MessageAttributes"].items()} == {
        k: v["StringValue"] for k, v in alone["MessageAttributes"].items()}


def test_batches_stay_within_snss_256_kb_and_an_alert_too_big_even_alone_is_reported() -> None:
    big = [make_alert(resource_id=f"nb-{i}", evidence={"blob": "x" * 100_000}) for i in range(5)]
    batches = notify.sns_batches(big)
    assert [len(b) for b in batches] == [2, 2, 1]
    for batch in batches:
        size = sum(notify.sns_message(big[i])[1] for i, _ in batch)
        assert size <= notify.SNS_MAX_BYTES


class BatchSns:
    """PublishBatch that fails the entries whose Id is listed, or raises for the whole call."""

    def __init__(self, failed_ids: set[str] = frozenset(), error: Exception | None = None) -> None:
        self.failed_ids, self.error, self.calls = failed_ids, error, []

    def publish_batch(self, TopicArn: str, PublishBatchRequestEntries: list[dict]) -> dict:  # noqa: N803
        self.calls.append([e["Id"] for e in PublishBatchRequestEntries])
        if self.error is not None:
            raise self.error
        return {"Successful": [{"Id": e["Id"]} for e in PublishBatchRequestEntries if e["Id"] not in self.failed_ids],
                "Failed": [{"Id": i, "Code": "InternalError", "Message": "try again", "SenderFault": False}
                           for i in sorted(self.failed_ids)]}


def test_an_entry_sns_refuses_is_recorded_undelivered_and_the_rest_delivered() -> None:
    sns = BatchSns(failed_ids={"1"})
    ledger = FakeLedger()
    alerts = [make_alert(resource_id=f"nb-{i}") for i in range(3)]
    settings = Settings(alert_topic_arn="arn:aws:sns:eu-west-1:123456789012:alerts")

    results = notify.Notifier(settings, RecordingClients(sns=sns), ledger=ledger).send_all(alerts)

    assert [r["sns"] for r in results] == ["delivered", "failed: SNS publish to arn:aws:sns:eu-west-1:123456789012:"
                                           "alerts failed: InternalError: try again", "delivered"]
    assert [(a["alert_id"], channel) for a, channel, _ in ledger.calls] == [(alerts[1]["alert_id"], "sns")]


def test_a_batch_call_that_fails_records_every_alert_of_it_and_pauses_the_channel() -> None:
    from botocore.exceptions import EndpointConnectionError

    sns = BatchSns(error=EndpointConnectionError(endpoint_url="https://sns.eu-west-1.amazonaws.com"))
    ledger = FakeLedger()
    alerts = [make_alert(resource_id=f"nb-{i}") for i in range(12)]
    settings = Settings(alert_topic_arn="arn:aws:sns:eu-west-1:123456789012:alerts")

    results = notify.Notifier(settings, RecordingClients(sns=sns), ledger=ledger).send_all(alerts)

    assert len(sns.calls) == 1  # the second batch is not attempted while the channel is down
    assert all(r["sns"].startswith("failed: ") for r in results)
    assert "EndpointConnectionError" in results[0]["sns"] and "not attempted" in results[11]["sns"]
    assert sorted(a["alert_id"] for a, _, _ in ledger.calls) == sorted(a["alert_id"] for a in alerts)
