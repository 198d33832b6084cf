"""The fault scenario of `make reliability`: violations, events and AWS misbehaving on 30% of calls.

In a mock AWS account (moto, in process), netguard's own session goes through the fault layer
(netguard_testkit.faults: throttling, 5xx, timeouts, AccessDenied, seeded); the scenario's checks use a
clean session. Lambda is played as it behaves: an EventBridge invocation that raises is retried twice;
SQS redelivers a record reported as failed after its visibility timeout and moves it to the dead-letter
queue after 5 receives; the scheduled sweep runs in a fresh container each time.

Phases: every violation's CloudTrail event; then the recheck queue until empty; then sweeps until
nothing is left to fix (at most `max_sweeps`). Finally, with faults off, what AWS looks like. Figures:
violations remediated in the end, duplicate remediations (one violation acted on twice), and failed
remediations whose alert carried the error (delivered, or recorded undelivered and re-sent by a sweep).
"""
from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from netguard_testkit.world import OPEN_SSH

REGION = "us-east-1"
TABLE = "netguard-ledger-faults"
MAX_RECEIVES = 5  # the recheck queue's maxReceiveCount (deploy/netguard-stack.yaml)


@dataclass
class Figures:
    rate: float
    seed: int
    violations: int = 0
    remediated: int = 0
    remediated_by: Counter = field(default_factory=Counter)  # phase -> violations fixed by its end
    duplicate_remediations: int = 0
    failed_outcomes: int = 0
    failures_alerted: int = 0
    failures_alerted_with_error: int = 0
    invocation_errors: int = 0  # invocations that raised (and were retried, as Lambda does)
    dead_lettered: int = 0
    sweeps: int = 0
    requests: int = 0
    injected: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["remediated_by"] = dict(self.remediated_by)
        return out


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    removed = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(("NETGUARD_", "AWS_ENDPOINT_URL"))}
    os.environ.update(values)
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith("NETGUARD_")]:
            os.environ.pop(key)
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        os.environ.update(removed)


def run(rate: float = 0.3, seed: int = 7, groups: int = 12, notebooks: int = 6, max_sweeps: int = 10) -> Figures:
    import boto3  # noqa: PLC0415
    from chalice.test import Client  # noqa: PLC0415
    from moto import mock_aws  # noqa: PLC0415

    from chalicelib import handlers, notify, pipeline  # noqa: PLC0415
    from chalicelib.aws import Clients  # noqa: PLC0415
    from netguard_testkit import events  # noqa: PLC0415
    from netguard_testkit.faults import FaultInjector  # noqa: PLC0415
    from netguard_testkit.moto_fidelity import aws_like_notebooks, notebook_status, set_status  # noqa: PLC0415
    from netguard_testkit.moto_sagemaker import aws_like_sagemaker  # noqa: PLC0415
    from netguard_testkit.receiver import WebhookReceiver  # noqa: PLC0415
    from netguard_testkit.world import (  # noqa: PLC0415
        build_network,
        create_alert_channels,
        create_ledger_table,
        create_notebook,
        open_ssh_groups,
        remove_default_vpc,
    )

    figures = Figures(rate, seed)
    started = time.monotonic()
    base_env = {"AWS_ACCESS_KEY_ID": "faults", "AWS_SECRET_ACCESS_KEY": "faults", "AWS_DEFAULT_REGION": REGION}
    with _environment(base_env), mock_aws(), aws_like_notebooks(), aws_like_sagemaker(), WebhookReceiver() as slack:
        setup = boto3.session.Session(region_name=REGION)
        ec2, sm, sqs = setup.client("ec2"), setup.client("sagemaker"), setup.client("sqs")
        account = setup.client("sts").get_caller_identity()["Account"]
        remove_default_vpc(ec2)
        net = build_network(ec2, account, REGION)
        create_ledger_table(setup.client("dynamodb"), TABLE)
        topic, readback, param = create_alert_channels(setup.client("sns"), sqs, setup.client("ssm"), slack.url)
        recheck_url = sqs.create_queue(QueueName="netguard-recheck-faults",
                                       Attributes={"VisibilityTimeout": "1"})["QueueUrl"]

        # The violations: open SSH on notebook interfaces, notebooks with internet in a public subnet.
        group_ids = open_ssh_groups(ec2, net, groups)
        names = [f"nb-open-{i}" for i in range(notebooks)]
        for name in names:
            create_notebook(sm, account, name, net.public_subnet, [net.sg_notebook_ok], "Enabled")
            set_status(account, REGION, name, "InService")
        figures.violations = groups + notebooks

        def fixed() -> int:
            open_rules = 0
            for gid in group_ids:
                rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [gid]}])
                open_rules += any(not r["IsEgress"] and r.get("CidrIpv4") == "0.0.0.0/0"
                                  for r in rules["SecurityGroupRules"])
            stopped = sum(notebook_status(account, REGION, n) in ("Stopping", "Stopped") for n in names)
            return groups - open_rules + stopped

        # netguard's clients: through the fault layer; botocore's retry waits skipped (figures, not time)
        faulty = boto3.session.Session(region_name=REGION)
        injector = FaultInjector(rate=rate, seed=seed).install(faulty)
        outcomes: list[tuple[str, str, str]] = []  # (alert id, result, detail) of every alerted outcome
        delivered: dict[str, bool] = {}
        resent: set[str] = set()
        real_record = pipeline.Pipeline._notify
        real_send_all = notify.Notifier.send_all
        real_resend = notify.Notifier.resend

        def record(self: Any, context: Any, report: Any) -> None:
            real_record(self, context, report)
            outcomes.extend((notify.alert_id(context, o), o.result, o.detail) for o in report.outcomes
                            if o.result == "failed")

        def send_all(self: Any, alerts: Any) -> list[dict[str, str]]:
            results = real_send_all(self, alerts)
            for alert, result in zip(alerts, results, strict=True):
                delivered[str(alert.get("alert_id"))] = notify.DELIVERED in result.values()
            return results

        def resend(self: Any, alert: Any, channel: str) -> str:
            result = real_resend(self, alert, channel)
            if result == notify.DELIVERED:
                resent.add(str(alert.get("alert_id")))
            return result

        env = {"NETGUARD_LEDGER_TABLE": TABLE, "NETGUARD_ALERT_TOPIC_ARN": topic, "NETGUARD_SLACK_WEBHOOK_PARAM": param,
               "NETGUARD_SLACK_ALLOWED_URLS": slack.url,
               "NETGUARD_RECHECK_QUEUE_URL": recheck_url, "NETGUARD_RECHECK_DELAY_SECONDS": "1",
               "NETGUARD_REGIONS": REGION, "NETGUARD_MODE": "enforce", "NETGUARD_MAX_ACTIONS": "10000",
               "NETGUARD_MAX_ACTIONS_ORG": "10000",
               "POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "CRITICAL",
               # reads in turn: the seeded faults fall on the same calls every run (reproducible figures)
               "NETGUARD_READ_CONCURRENCY": "1"}
        import app as app_module  # noqa: PLC0415

        with _environment(env), \
                mock.patch.object(handlers, "make_clients", lambda settings: Clients(faulty)), \
                mock.patch("botocore.retries.standard.ExponentialBackoff.delay_amount", lambda self, context: 0), \
                mock.patch.object(pipeline.Pipeline, "_notify", record), \
                mock.patch.object(notify.Notifier, "send_all", send_all), \
                mock.patch.object(notify.Notifier, "resend", resend), \
                mock.patch.object(notify.Notifier, "__init__", _quick_slack(notify.Notifier.__init__)), \
                Client(app_module.app, stage_name="faults") as client:
            handlers.runtime.cache_clear()
            # a new deployment: no webhook URL cached by an earlier run in this process (its receiver
            # is gone; a stale URL would fail Slack for the cache's lifetime)
            notify.clear_cache()

            def invoke(name: str, event: Any) -> Any:
                """As Lambda invokes asynchronously: an invocation that raises is tried twice more."""
                for _ in range(3):
                    try:
                        return client.lambda_.invoke(name, event).payload
                    except Exception:  # noqa: BLE001 - the retry is the point
                        figures.invocation_errors += 1
                return None

            for gid in group_ids:
                invoke("on_api_call", events.authorize_ingress(gid, OPEN_SSH, account, REGION))
            for name in names:
                invoke("on_state_change", events.notebook_state_change(name, "InService", account, REGION,
                                                                        net.public_subnet, [net.sg_notebook_ok]))
            injector.enabled = False
            figures.remediated_by["events"] = fixed()
            injector.enabled = True

            receives: Counter[str] = Counter()
            for _ in range(40):  # the recheck queue, until empty
                time.sleep(1.1)
                injector.enabled = False  # SQS's own delivery is not netguard's call
                messages = sqs.receive_message(QueueUrl=recheck_url, MaxNumberOfMessages=10).get("Messages", [])
                injector.enabled = True
                if not messages:
                    break
                records = []
                for m in messages:
                    receives[m["MessageId"]] += 1
                    records.append({"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                                    "attributes": {"ApproximateReceiveCount": str(receives[m["MessageId"]])},
                                    "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                                    "eventSourceARN": f"arn:aws:sqs:{REGION}:{account}:netguard-recheck-faults",
                                    "awsRegion": REGION})
                answer = invoke("recheck", {"Records": records})
                failed = {f["itemIdentifier"] for f in (answer or {"batchItemFailures": [
                    {"itemIdentifier": r["messageId"]} for r in records]})["batchItemFailures"]}
                injector.enabled = False
                for m in messages:
                    if m["MessageId"] not in failed or receives[m["MessageId"]] >= MAX_RECEIVES:
                        figures.dead_lettered += m["MessageId"] in failed
                        sqs.delete_message(QueueUrl=recheck_url, ReceiptHandle=m["ReceiptHandle"])
                injector.enabled = True
            injector.enabled = False
            figures.remediated_by["rechecks"] = fixed()
            injector.enabled = True

            for n in range(max_sweeps):
                injector.enabled = False
                done = fixed() == figures.violations and not _undelivered(setup)
                injector.enabled = True
                if done:
                    break
                handlers.runtime.cache_clear()  # the sweep function's own container
                invoke("sweep", {"version": "0", "id": f"sweep-{uuid.uuid4()}", "detail-type": "Scheduled Event",
                                 "source": "aws.events", "account": account, "time": "2026-11-27T06:00:00Z",
                                 "region": REGION, "resources": [], "detail": {}})
                figures.sweeps = n + 1
            injector.enabled = False
            figures.remediated_by["sweeps"] = fixed()

        figures.remediated = fixed()
        figures.duplicate_remediations = _duplicates(setup)
        figures.failed_outcomes = len(outcomes)
        alerted = [(aid, detail) for aid, _, detail in outcomes if delivered.get(aid) or aid in resent]
        figures.failures_alerted = len(alerted)
        figures.failures_alerted_with_error = sum(1 for _, detail in alerted if ":" in detail)
        figures.requests = injector.requests
        figures.injected = injector.by_kind()
        _ = readback
    figures.seconds = time.monotonic() - started
    return figures


def _quick_slack(init: Any) -> Any:
    """Slack retries without their waits (the figures are about outcomes, not time)."""
    def wrapped(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["slack_sleep"] = lambda seconds: None
        init(self, *args, **kwargs)
    return wrapped


def _undelivered(setup: Any) -> bool:
    items = setup.client("dynamodb").query(TableName=TABLE, KeyConditionExpression="pk = :pk",
                                           ExpressionAttributeValues={":pk": {"S": "alert#undelivered"}})
    return bool(items.get("Items"))


def _duplicates(setup: Any) -> int:
    """Violations remediated more than once: actions that succeeded (changed something) for the same
    resource, remediation and control, beyond the first."""
    ddb = setup.client("dynamodb")
    done: Counter[tuple[str, str, str]] = Counter()
    for page in ddb.get_paginator("scan").paginate(TableName=TABLE):
        for item in page["Items"]:
            if item["pk"]["S"].startswith("action#") and item.get("result", {}).get("S") == "succeeded":
                for control in item["controls"]["L"]:
                    done[(item["resource"]["S"], item["action"]["S"], control["S"])] += 1
    return sum(n - 1 for n in done.values() if n > 1)


def main() -> int:  # pragma: no cover - run by reliability/faults.py
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(description="netguard under injected AWS faults")
    parser.add_argument("--rate", type=float, default=0.3)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--groups", type=int, default=12)
    parser.add_argument("--notebooks", type=int, default=6)
    args = parser.parse_args()
    ok = True
    for seed in (int(s) for s in args.seeds.split(",")):
        f = run(args.rate, seed, args.groups, args.notebooks)
        print(json.dumps(f.as_dict()))
        ok &= (f.remediated == f.violations and f.duplicate_remediations == 0
               and f.failures_alerted == f.failed_outcomes)
    return 0 if ok else 1
