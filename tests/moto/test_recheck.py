"""The recheck queue: deferred decisions and retryable failures are looked at again, through SQS,
with partial batch failure reports (what could not be processed goes back to the queue, then to its
dead-letter queue; nothing is dropped)."""
from __future__ import annotations

import json
import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from chalicelib import handlers
from chalicelib.errors import InvalidEvent
from chalicelib.model import NOTEBOOK, ResourceRef
from chalicelib.recheck import MESSAGE_SCHEMA, Recheck, RecheckQueue, decode, delay_for, encode
from chalicelib.settings import Settings
from conftest import invoke
from netguard_testkit import events
from netguard_testkit.moto_fidelity import notebook_status, set_status
from netguard_testkit.world import create_notebook


@pytest.fixture
def recheck_queue(stack, monkeypatch) -> str:
    sqs = stack["aws"].client("sqs")
    dlq = sqs.create_queue(QueueName="netguard-recheck-dlq-test")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName="netguard-recheck-test", Attributes={
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})})["QueueUrl"]
    monkeypatch.setenv("NETGUARD_RECHECK_QUEUE_URL", url)
    monkeypatch.setenv("NETGUARD_RECHECK_DELAY_SECONDS", "1")
    handlers.runtime.cache_clear()
    return url


def receive(stack, url: str, wait: float = 2.5) -> list[dict[str, Any]]:
    """Every message on the queue once its delay has passed (as SQS hands them to Lambda)."""
    sqs = stack["aws"].client("sqs")
    deadline, got = time.monotonic() + wait, []
    while time.monotonic() < deadline:
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            got.append(m)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        if got:
            break
        time.sleep(0.2)
    return got


def sqs_event(bodies: list[str], queue: str = "netguard-recheck-test") -> tuple[dict[str, Any], list[str]]:
    """An SQS batch as Lambda delivers it, each record with its own message id."""
    ids = [str(uuid.uuid4()) for _ in bodies]
    records = [{"messageId": mid, "receiptHandle": f"rh-{mid}", "body": body, "attributes": {
        "ApproximateReceiveCount": "1", "SentTimestamp": "1795740000000", "SenderId": "AIDAEXAMPLE",
        "ApproximateFirstReceiveTimestamp": "1795740000001"}, "messageAttributes": {},
        "md5OfBody": "0" * 32, "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue}", "awsRegion": "us-east-1"}
        for mid, body in zip(ids, bodies, strict=True)]
    return {"Records": records}, ids


# --------------------------------------------------------------------------------------------- pure


def test_messages_round_trip_and_bad_ones_say_why() -> None:
    ref = ResourceRef(NOTEBOOK, "nb", "123456789012", "us-east-1")
    again = decode(encode(Recheck((ref,), "Pending", 2, "evt-1")))
    assert again == Recheck((ref,), "Pending", 2, "evt-1")
    for body, reason in (("{", "not JSON"), (json.dumps({"schema": "x"}), MESSAGE_SCHEMA),
                         (json.dumps({"schema": MESSAGE_SCHEMA, "refs": [], "attempt": 1}), "refs"),
                         (json.dumps({"schema": MESSAGE_SCHEMA, "attempt": 0, "refs": [
                             {"type": NOTEBOOK, "id": "nb", "account": "123456789012", "region": "us-east-1"}]}),
                          "attempt"),
                         (json.dumps({"schema": MESSAGE_SCHEMA, "attempt": 1, "refs": [
                             {"type": "AWS::S3::Bucket", "id": "b", "account": "123456789012",
                              "region": "us-east-1"}]}), "unsupported")):
        with pytest.raises(InvalidEvent, match=reason):
            decode(body)


def test_backoff_doubles_and_stays_within_the_sqs_delay_limit() -> None:
    assert [delay_for(n, 60) for n in (1, 2, 3, 4, 5, 6)] == [60, 120, 240, 480, 900, 900]


def test_past_the_last_attempt_nothing_is_sent(aws, caplog) -> None:
    settings = Settings(recheck_queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/q", recheck_max_attempts=3)
    ref = ResourceRef(NOTEBOOK, "nb", aws.account, aws.region)
    assert RecheckQueue(settings, aws.clients).schedule([(ref, "Pending")], "evt", attempt=4) == []
    assert aws.calls.calls == [] and "giving up re-checking" in caplog.text


# ------------------------------------------------------------------------------------- end to end


def test_pending_notebook_is_rechecked_then_stopped(stack, recheck_queue) -> None:
    aws, net = stack["aws"], stack["net"]
    create_notebook(aws.client("sagemaker"), aws.account, "nb-late", net.public_subnet, [net.sg_notebook_ok])
    result = invoke(stack, "on_api_call",
                    events.create_notebook("nb-late", aws.account, aws.region, net.public_subnet, [net.sg_notebook_ok]))
    assert result["rechecks"] == 1 and aws.calls.writes() == []
    first = receive(stack, recheck_queue)
    assert len(first) == 1
    body = json.loads(first[0]["Body"])
    assert body["attempt"] == 1 and body["refs"][0]["id"] == "nb-late" and "Pending" in body["reason"]

    # still Pending at the first recheck: a new message, one attempt further, nothing written
    event, _ = sqs_event([first[0]["Body"]])
    answer = invoke(stack, "recheck", event)
    assert answer == {"batchItemFailures": []} and aws.calls.writes() == []
    second = receive(stack, recheck_queue, wait=4)
    assert [json.loads(m["Body"])["attempt"] for m in second] == [2]

    # InService by the second: stopped, once
    set_status(aws.account, aws.region, "nb-late", "InService")
    event, _ = sqs_event([second[0]["Body"]])
    assert invoke(stack, "recheck", event) == {"batchItemFailures": []}
    assert notebook_status(aws.account, aws.region, "nb-late") == "Stopping"
    assert aws.calls.writes() == ["sagemaker:StopNotebookInstance", "sagemaker:AddTags"]
    assert receive(stack, recheck_queue, wait=1.5) == []  # nothing left to recheck


def test_a_batch_reports_only_its_failed_records(stack, recheck_queue) -> None:
    """Good, malformed and throttled records in one batch: the good one is processed, the other two
    are reported as failures (SQS delivers them again; after maxReceiveCount, the DLQ keeps them)."""
    aws, net = stack["aws"], stack["net"]
    for name in ("nb-good", "nb-throttled"):
        create_notebook(aws.client("sagemaker"), aws.account, name, net.public_subnet, [net.sg_notebook_ok])
        set_status(aws.account, aws.region, name, "InService")

    def throttle(params: dict[str, Any], **_: Any) -> Any:
        """SageMaker throttling the reads of one notebook (a response in place of the HTTP call)."""
        if b"nb-throttled" in params.get("body", b""):
            return (SimpleNamespace(status_code=400), {"Error": {"Code": "ThrottlingException",
                                                                 "Message": "Rate exceeded"},
                                                       "ResponseMetadata": {"HTTPStatusCode": 400}})
        return None

    aws.clients.session.events.register("before-call.sagemaker.DescribeNotebookInstance", throttle)

    def body(name: str) -> str:
        return encode(Recheck((ResourceRef(NOTEBOOK, name, aws.account, aws.region),), "Pending", 1, "evt"))

    event, ids = sqs_event([body("nb-good"), "{not json", body("nb-throttled")])
    answer = invoke(stack, "recheck", event)
    assert sorted(f["itemIdentifier"] for f in answer["batchItemFailures"]) == sorted([ids[1], ids[2]])
    assert notebook_status(aws.account, aws.region, "nb-good") == "Stopping"
    assert notebook_status(aws.account, aws.region, "nb-throttled") == "InService"
    assert aws.calls.writes() == ["sagemaker:StopNotebookInstance", "sagemaker:AddTags"]


def test_recheck_in_a_foreign_account_is_refused(stack, recheck_queue, monkeypatch) -> None:
    aws = stack["aws"]
    monkeypatch.setenv("NETGUARD_HOME_ACCOUNT", aws.account)
    handlers.runtime.cache_clear()
    event, ids = sqs_event([encode(Recheck((ResourceRef(NOTEBOOK, "nb", "999999999999", aws.region),), "x", 1, "e"))])
    assert invoke(stack, "recheck", event) == {"batchItemFailures": [{"itemIdentifier": ids[0]}]}
    assert aws.calls.calls == []
