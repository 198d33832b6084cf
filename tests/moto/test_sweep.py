"""Scheduled sweeps: fan-out per account-region, the S3 report, one digest per sweep, no re-alerting
of unchanged known violations, continuation near the time limit, and member accounts reached through
the member role (moto maps assumed-role credentials to the role's account)."""
from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import boto3
import pytest

from chalicelib import handlers
from chalicelib.aws import Clients
from chalicelib.ledger import MemoryLedger
from chalicelib.settings import Settings
from chalicelib.sweep import STOP_MARGIN_SECONDS, SweepDeps, Task, accounts_to_sweep, run_task, start_sweep
from conftest import alerts, invoke, ledger_items
from netguard_testkit.moto_fidelity import attach_notebook_eni, notebook_status, set_status
from netguard_testkit.world import build_network, create_notebook, remove_default_vpc

BUCKET = "netguard-reports-test"
MEMBER = "111111111111"
ROLE = "netguard-member"
EXTERNAL_ID = "netguard-test-external-id"
DIGEST = "netguard.digest/v1"


def scheduled_event(account: str, region: str) -> dict[str, Any]:
    """A scheduled EventBridge event, as the sweep's rule sends it."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": account, "time": "2026-11-27T06:00:00Z", "region": region,
            "resources": [f"arn:aws:events:{region}:{account}:rule/netguard-prod-sweep"], "detail": {}}


def sqs_batch(bodies: list[str]) -> tuple[dict[str, Any], list[str]]:
    ids = [str(uuid.uuid4()) for _ in bodies]
    return {"Records": [{"messageId": i, "receiptHandle": f"rh-{i}", "body": b, "attributes": {},
                         "messageAttributes": {}, "md5OfBody": "0" * 32, "eventSource": "aws:sqs",
                         "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:netguard-sweep-test",
                         "awsRegion": "us-east-1"} for i, b in zip(ids, bodies, strict=True)]}, ids


@pytest.fixture
def reports(stack, monkeypatch) -> Any:
    s3 = stack["aws"].client("s3")
    s3.create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("NETGUARD_REPORT_BUCKET", BUCKET)
    monkeypatch.setenv("NETGUARD_REGIONS", stack["aws"].region)
    handlers.runtime.cache_clear()

    def read(key: str) -> dict[str, Any]:
        return json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    return read


def violating_world(aws, net) -> None:
    """A notebook with internet access in a public subnet (InService), and an open-SSH group on a notebook ENI."""
    create_notebook(aws.client("sagemaker"), aws.account, "nb-open", net.public_subnet, [net.sg_notebook_ok])
    set_status(aws.account, aws.region, "nb-open", "InService")
    attach_notebook_eni(aws.client("ec2"), net.private_subnets[0], [net.sg_ssh_open], "nb-ssh")


def digests(sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a["message"] for a in sent if a["message"].get("schema") == DIGEST]


def test_sweep_remediates_reports_to_s3_and_sends_one_digest(stack, reports) -> None:
    aws, net = stack["aws"], stack["net"]
    violating_world(aws, net)
    result = invoke(stack, "sweep", scheduled_event(aws.account, aws.region))
    assert result["tasks"] == 1 and result["accounts"] == [aws.account]
    assert notebook_status(aws.account, aws.region, "nb-open") == "Stopping"
    assert "ec2:RevokeSecurityGroupIngress" in aws.calls.writes()

    summary = reports(f"netguard/sweeps/{result['sweep_id']}/summary.json")
    assert summary["targets"] == [f"{aws.account}/{aws.region}"] and summary["error_count"] == 0
    assert summary["violations"]["NB.1"] == 1 and summary["violations"]["SG.1"] == 1
    assert summary["remediated"] >= 3  # NB.1 and NB.3 by one stop, SG.1 by one revoke
    part = reports(summary["reports"][0])
    assert part["summary"]["resources"] == summary["resources"] > 10
    assert {(f["control"], f["resource_id"]) for f in part["findings"]} >= {("NB.1", "nb-open"),
                                                                             ("SG.1", net.sg_ssh_open)}
    assert all(f["status"] == "NON_COMPLIANT" for f in part["findings"])

    sent = alerts(stack)
    assert len(digests(sent)) == 1
    digest = digests(sent)[0]
    assert digest["report"] == f"s3://{BUCKET}/netguard/sweeps/{result['sweep_id']}/summary.json"
    individual = [a for a in sent if a["message"].get("schema") != DIGEST]
    assert {a["message"]["control"]["id"] for a in individual} >= {"NB.1", "NB.3", "SG.1"}
    assert any(p["text"].startswith("[netguard] sweep") for p in stack["slack"].payloads)

    # The next sweep: the digest again, but no individual alert for what is known and unchanged.
    second = invoke(stack, "sweep", scheduled_event(aws.account, aws.region))
    again = alerts(stack)
    assert [d["sweep_id"] for d in digests(again)] == [second["sweep_id"]]
    assert [a for a in again if a["message"].get("schema") != DIGEST] == []


def member_clients(aws) -> Clients:
    return Clients(aws.clients.session, ROLE, EXTERNAL_ID, aws.account)


def member_session(aws, account: str) -> Any:
    creds = aws.client("sts").assume_role(RoleArn=f"arn:aws:iam::{account}:role/{ROLE}",
                                          RoleSessionName="setup", ExternalId=EXTERNAL_ID)["Credentials"]
    return boto3.session.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                                 aws_session_token=creds["SessionToken"], region_name=aws.region)


def test_fan_out_over_accounts_and_regions_counts_each_part_once(stack, reports, monkeypatch) -> None:
    aws = stack["aws"]
    member = member_session(aws, MEMBER)
    remove_default_vpc(member.client("ec2"))
    member_net = build_network(member.client("ec2"), MEMBER, aws.region)
    attach_notebook_eni(member.client("ec2"), member_net.private_subnets[0], [member_net.sg_ssh_open], "nb-ssh")
    sqs = aws.client("sqs")
    queue = sqs.create_queue(QueueName="netguard-sweep-test")["QueueUrl"]
    monkeypatch.setenv("NETGUARD_SWEEP_QUEUE_URL", queue)
    monkeypatch.setenv("NETGUARD_ACCOUNTS", f"{aws.account},{MEMBER}")
    monkeypatch.setenv("NETGUARD_REGIONS", f"{aws.region},eu-west-1")
    monkeypatch.setattr(handlers, "make_clients", lambda settings: member_clients(aws))
    handlers.runtime.cache_clear()

    planned = invoke(stack, "sweep", scheduled_event(aws.account, aws.region))
    assert planned["tasks"] == 4
    bodies = [m["Body"] for _ in range(2) for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10,
                                                                       VisibilityTimeout=0).get("Messages", [])]
    tasks = sorted({(json.loads(b)["account"], json.loads(b)["region"]): b for b in bodies}.items())
    assert [k for k, _ in tasks] == sorted([(aws.account, "eu-west-1"), (aws.account, aws.region),
                                            (MEMBER, "eu-west-1"), (MEMBER, aws.region)])
    for _, body in tasks:
        event, _ids = sqs_batch([body])
        assert invoke(stack, "sweep_worker", event) == {"batchItemFailures": []}
    # a redelivered message (the worker died before SQS deleted it) is neither counted nor digested twice
    event, _ids = sqs_batch([tasks[-1][1]])
    invoke(stack, "sweep_worker", event)

    sent = alerts(stack)
    assert len(digests(sent)) == 1
    summary = reports(f"netguard/sweeps/{planned['sweep_id']}/summary.json")
    assert summary["targets"] == [f"{a}/{r}" for (a, r), _ in tasks]
    # the member account's network was read with the member role's credentials: its resources are there
    part = reports(f"netguard/sweeps/{planned['sweep_id']}/{MEMBER}/{aws.region}/part-0000.json")
    home = reports(f"netguard/sweeps/{planned['sweep_id']}/{aws.account}/{aws.region}/part-0000.json")
    assert part["account"] == MEMBER and part["summary"]["resources"] == home["summary"]["resources"] > 10
    assert ("SG.1", member_net.sg_ssh_open, MEMBER) in {(f["control"], f["resource_id"], f["account"])
                                                        for f in part["findings"]}
    revoked = member.client("ec2").describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [member_net.sg_ssh_open]}])["SecurityGroupRules"]
    assert not [r for r in revoked if not r["IsEgress"] and r.get("CidrIpv4") == "0.0.0.0/0"]
    meta = [i for i in ledger_items(stack, "meta") if i["pk"] == f"sweep#{planned['sweep_id']}"][0]
    assert (int(meta["done"]), int(meta["expected"])) == (4, 4)


def test_a_worker_near_its_time_limit_continues_in_a_new_invocation(aws, net) -> None:
    violating_world(aws, net)
    settings = Settings(mode="enforce", sweep_chunk=5, regions=(aws.region,))
    ledger = MemoryLedger()
    continued: list[Task] = []
    deps = SweepDeps(_policy(), settings, aws.clients, ledger, None, enqueue=continued.append)
    start_sweep(deps, "sweep-1", send=lambda tasks: None)
    # checked before each chunk after the first: time for the second, not for the third
    clock = iter([STOP_MARGIN_SECONDS + 60, STOP_MARGIN_SECONDS - 1])
    first = run_task(Task("sweep-1", aws.account, aws.region), deps, lambda: next(clock))
    assert first["resources"] == 10 and len(continued) == 1 and continued[0].offset == 10
    assert ledger.items[("sweep#sweep-1", "meta")]["done"] == 0  # not finished: no digest yet
    rest = run_task(continued[0], deps)
    assert ledger.items[("sweep#sweep-1", "meta")]["done"] == 1
    whole = run_task(Task("sweep-2", aws.account, aws.region), SweepDeps(_policy(), settings, aws.clients,
                                                                         MemoryLedger(), None))
    assert first["resources"] + rest["resources"] >= whole["resources"] - 2  # shared network read once per part


def test_accounts_come_from_the_organization(aws) -> None:
    org = aws.client("organizations")
    org.create_organization(FeatureSet="ALL")
    created = org.create_account(AccountName="ml-prod", Email="ml-prod@example.com")["CreateAccountStatus"]
    accounts = accounts_to_sweep(Settings(accounts=("organization",)), aws.clients)
    assert accounts == sorted([aws.account, created["AccountId"]])
    # a list of member accounts: those and our own
    assert accounts_to_sweep(Settings(accounts=(MEMBER,)), aws.clients) == sorted([aws.account, MEMBER])
    assert accounts_to_sweep(Settings(), aws.clients) == [aws.account]


def test_an_account_that_cannot_be_assumed_is_reported_not_fatal(aws, net) -> None:
    def deny(params: dict[str, Any], **_: Any) -> Any:
        if MEMBER in str(params.get("body")):  # the query-protocol body: a dict of parameters
            from types import SimpleNamespace

            return (SimpleNamespace(status_code=403), {"Error": {"Code": "AccessDenied", "Message": "not authorized"},
                                                       "ResponseMetadata": {"HTTPStatusCode": 403}})
        return None

    aws.clients.session.events.register("before-call.sts.AssumeRole", deny)
    ledger = MemoryLedger()
    settings = Settings(mode="alert", accounts=(aws.account, MEMBER), regions=(aws.region,))
    deps = SweepDeps(_policy(), settings, member_clients(aws), ledger, None)
    result = start_sweep(deps, "sweep-x")
    assert result["tasks"] == 2
    stats = {s["account"]: s for s in ledger.sweep_stats("sweep-x")}
    assert stats[MEMBER]["error_count"] >= 1 and "AccessDenied" in stats[MEMBER]["errors"][0]["error"]
    assert stats[MEMBER]["resources"] == 0
    assert stats[aws.account]["resources"] > 10 and ledger.items[("sweep#sweep-x", "meta")]["digest"]


def _policy() -> Any:
    from chalicelib.policy import load_policy

    return load_policy()


def test_a_task_failing_on_its_last_delivery_still_ends_the_sweep(stack, reports, monkeypatch) -> None:
    aws = stack["aws"]
    sqs = aws.client("sqs")
    queue = sqs.create_queue(QueueName="netguard-sweep-test")["QueueUrl"]
    monkeypatch.setenv("NETGUARD_SWEEP_QUEUE_URL", queue)
    handlers.runtime.cache_clear()
    planned = invoke(stack, "sweep", scheduled_event(aws.account, aws.region))
    body = sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"]

    import chalicelib.sweep

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("worker bug")

    monkeypatch.setattr(chalicelib.sweep, "run_task", broken)
    event, ids = sqs_batch([body])
    assert invoke(stack, "sweep_worker", event) == {"batchItemFailures": [{"itemIdentifier": ids[0]}]}
    assert digests(alerts(stack)) == []  # an early delivery: SQS will deliver it again

    event, ids = sqs_batch([body])
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "5"  # the queue's maxReceiveCount
    assert invoke(stack, "sweep_worker", event) == {"batchItemFailures": [{"itemIdentifier": ids[0]}]}
    digest = digests(alerts(stack))
    assert len(digest) == 1 and digest[0]["error_count"] == 1 and "worker bug" in digest[0]["errors"][0]["error"]
    assert reports(f"netguard/sweeps/{planned['sweep_id']}/summary.json")["error_count"] == 1


def test_a_sweep_reads_sagemaker_tags_in_bulk_and_reads_them_again_only_before_acting(stack, reports) -> None:
    """Tags of every SageMaker resource come from the Resource Groups Tagging API (100 per call); the
    one notebook netguard stops gets its tags read again just before (ListTags), nothing else does."""
    aws, net = stack["aws"], stack["net"]
    sm = aws.client("sagemaker")
    for i in range(12):
        create_notebook(sm, aws.account, f"nb-ok-{i}", net.private_subnets[i % 2], [net.sg_notebook_ok])
    violating_world(aws, net)
    invoke(stack, "sweep", scheduled_event(aws.account, aws.region))
    assert notebook_status(aws.account, aws.region, "nb-open") == "Stopping"
    assert aws.calls.ops("resourcegroupstaggingapi") == ["GetResources"]
    assert aws.calls.ops("sagemaker").count("DescribeNotebookInstance") == 13
    assert aws.calls.ops("sagemaker").count("ListTags") == 1  # nb-open, before it was stopped


def test_an_exemption_tagged_after_the_bulk_read_is_honoured(stack, reports, monkeypatch) -> None:
    """The tagging index lags and the sweep's read is minutes old: a notebook exempted since is not
    stopped; the decision made again with its current tags says why."""
    from chalicelib import collect

    aws, net = stack["aws"], stack["net"]
    violating_world(aws, net)
    arn = f"arn:aws:sagemaker:{aws.region}:{aws.account}:notebook-instance/nb-open"
    read = collect.Lookups._read_sagemaker_tags

    def read_then_exempt(self):  # the owner exempts the notebook right after the bulk read
        found = read(self)
        aws.client("sagemaker").add_tags(ResourceArn=arn, Tags=[
            {"Key": "netguard:exempt", "Value": "NB.1 NB.3"}, {"Key": "netguard:exempt-reason", "Value": "migration"},
            {"Key": "netguard:exempt-until", "Value": (dt.date.today() + dt.timedelta(days=7)).isoformat()}])
        return found

    monkeypatch.setattr(collect.Lookups, "_read_sagemaker_tags", read_then_exempt)
    result = invoke(stack, "sweep", scheduled_event(aws.account, aws.region))
    assert notebook_status(aws.account, aws.region, "nb-open") == "InService"
    assert "sagemaker:StopNotebookInstance" not in aws.calls.writes()
    summary = reports(f"netguard/sweeps/{result['sweep_id']}/summary.json")
    part = reports(summary["reports"][0])
    assert {f["decision"]["kind"] for f in part["findings"] if f["resource_id"] == "nb-open"} == {"exempt"}


def _stale_index_entry(aws, net) -> None:
    """The index remembers a notebook of another environment in the VPC, deleted since (entries live 30 days)."""
    from chalicelib.model import NOTEBOOK, SUBNET, ResourceRef

    handlers.runtime().ledger.remember_uses(ResourceRef(NOTEBOOK, "nb-gone", aws.account, aws.region),
                                            [ResourceRef(SUBNET, net.private_subnets[0], aws.account, aws.region)],
                                            "staging")


def _vpc11(reports, result, vpc_id: str) -> list[dict[str, Any]]:
    summary = reports(f"netguard/sweeps/{result['sweep_id']}/summary.json")
    return [f for f in reports(summary["reports"][0])["findings"]
            if f["control"] == "VPC.11" and f["resource_id"] == vpc_id]


def test_a_whole_sweep_answers_vpc11_from_what_it_read_not_from_the_index(stack, reports, monkeypatch) -> None:
    """A sweep reads every SageMaker resource of the region before its VPCs: which environments share a
    VPC is what it read, not what the index remembers (no query per subnet, no deleted resource)."""
    aws, net = stack["aws"], stack["net"]
    create_notebook(aws.client("sagemaker"), aws.account, "nb-demo", net.private_subnets[0], [net.sg_notebook_ok])
    _stale_index_entry(aws, net)
    asked: list[str] = []
    ledger_type = type(handlers.runtime().ledger)
    read = ledger_type.users_with_environment
    monkeypatch.setattr(ledger_type, "users_with_environment",
                        lambda self, used: asked.append(used.key) or read(self, used))
    result = invoke(stack, "sweep", scheduled_event(aws.account, aws.region))
    assert _vpc11(reports, result, net.vpc_id) == [] and asked == []

    # A second notebook of another environment in the VPC: found from the sweep's own reads.
    create_notebook(aws.client("sagemaker"), aws.account, "nb-dev", net.private_subnets[1], [net.sg_notebook_ok],
                    tags={"Environment": "dev"})
    result = invoke(stack, "sweep", scheduled_event(aws.account, aws.region))
    [finding] = _vpc11(reports, result, net.vpc_id)
    assert finding["evidence"]["Environments"] == {"demo": ["nb-demo"], "dev": ["nb-dev"]} and asked == []


def test_a_sagemaker_read_failing_puts_vpc11_back_on_the_index(stack, reports, monkeypatch) -> None:
    """A notebook that could not be read may be in the VPC: the index answers for what the sweep missed."""
    from botocore.exceptions import ClientError

    from chalicelib import collect

    aws, net = stack["aws"], stack["net"]
    for name in ("nb-demo", "nb-unreadable"):
        create_notebook(aws.client("sagemaker"), aws.account, name, net.private_subnets[0], [net.sg_notebook_ok])
    _stale_index_entry(aws, net)
    read = collect.COLLECTORS[collect.NOTEBOOK]

    def throttled(lookups, ref, hints):
        if ref.resource_id == "nb-unreadable":
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}},
                              "DescribeNotebookInstance")
        return read(lookups, ref, hints)

    monkeypatch.setitem(collect.COLLECTORS, collect.NOTEBOOK, throttled)
    result = invoke(stack, "sweep", scheduled_event(aws.account, aws.region))
    [finding] = _vpc11(reports, result, net.vpc_id)
    assert finding["evidence"]["Environments"] == {"demo": ["nb-demo"], "staging": ["nb-gone"]}
