"""Audit evidence: what ran, not only what runs. Scans and sweeps evaluate the jobs that finished within
NETGUARD_JOB_LOOKBACK_DAYS (listed with CreationTimeAfter), decide them not actionable, record and alert
them once; Studio domains get DM.1/DM.2 from scans and sweeps; the SQS handlers skip a batch that is not one."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib import handlers
from chalicelib.aws import Clients
from chalicelib.ledger import rules
from chalicelib.scan import run_scan
from chalicelib.settings import Settings
from conftest import alerts, invoke, ledger_items
from netguard_testkit.moto_fidelity import aws_like_notebooks
from netguard_testkit.moto_sagemaker import aws_like_sagemaker, set_job_created, set_job_status
from netguard_testkit.secure_world import SecureWorld, build_secure_world
from netguard_testkit.world import create_training_job, remove_default_vpc

REGION = "us-east-1"
FINISHED = "finished; cannot be stopped"
LISTS = ("ListTrainingJobs", "ListProcessingJobs", "ListHyperParameterTuningJobs", "ListTransformJobs")


@dataclasses.dataclass
class World:
    session: Any
    w: SecureWorld
    params: list[tuple[str, dict[str, Any]]]  # (operation, parameters) of every SageMaker call netguard made

    def client(self, service: str) -> Any:
        return self.session.client(service, region_name=REGION)

    def scan(self, enforce: bool = False, ledger: str | None = None, **settings: Any) -> list[dict[str, Any]]:
        netguard = boto3.session.Session(region_name=REGION)
        netguard.events.register("provide-client-params.sagemaker.*",
                                 lambda params, model, **_: self.params.append((model.name, dict(params))))
        result = run_scan(Clients(netguard), REGION, enforce=enforce, ledger_file=ledger,
                          settings=dataclasses.replace(Settings.from_env(), **settings))
        assert not result.errors, result.errors
        return result.rows


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws(), aws_like_notebooks(), aws_like_sagemaker():
        session = boto3.session.Session(region_name=REGION)
        remove_default_vpc(session.client("ec2"))
        account = session.client("sts").get_caller_identity()["Account"]
        yield World(session, build_secure_world(session, account, REGION, with_public_subnet=True), [])


def _training(x: World, name: str, subnets: list[str] | None = None, isolated: bool = False) -> str:
    x.client("sagemaker").create_training_job(
        TrainingJobName=name, RoleArn=x.w.sagemaker_role_arn, EnableNetworkIsolation=isolated,
        AlgorithmSpecification={"TrainingImage": "123.dkr.ecr.us-east-1.amazonaws.com/x:1",
                                "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": "s3://b/out"}, StoppingCondition={"MaxRuntimeInSeconds": 3600},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        VpcConfig={"SecurityGroupIds": [x.w.sg_training], "Subnets": subnets or list(x.w.private_subnet_ids)},
        Tags=x.w.tag_list)
    return name


def _violating_jobs(x: World) -> dict[str, str]:
    """One job of each kind without network isolation (kind -> name), still InProgress."""
    sm, vpc = x.client("sagemaker"), {"SecurityGroupIds": [x.w.sg_training], "Subnets": list(x.w.private_subnet_ids)}
    _training(x, "old-train-open")
    sm.create_processing_job(
        ProcessingJobName="old-process-open", RoleArn=x.w.sagemaker_role_arn,
        AppSpecification={"ImageUri": "123.dkr.ecr.us-east-1.amazonaws.com/p:1"},
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}},
        NetworkConfig={"EnableNetworkIsolation": False, "VpcConfig": vpc}, Tags=x.w.tag_list)
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="old-tune-open",
        HyperParameterTuningJobConfig={"Strategy": "Random", "ResourceLimits": {
            "MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 1}},
        TrainingJobDefinition={
            "AlgorithmSpecification": {"TrainingImage": "123.dkr.ecr.us-east-1.amazonaws.com/x:1",
                                       "TrainingInputMode": "File"},
            "RoleArn": x.w.sagemaker_role_arn, "OutputDataConfig": {"S3OutputPath": "s3://b/t"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600}, "VpcConfig": vpc, "EnableNetworkIsolation": False},
        Tags=x.w.tag_list)
    sm.create_model(ModelName="open-model", ExecutionRoleArn=x.w.sagemaker_role_arn, VpcConfig=vpc,
                    PrimaryContainer={"Image": "123.dkr.ecr.us-east-1.amazonaws.com/s:1"}, Tags=x.w.tag_list)
    sm.create_transform_job(
        TransformJobName="old-batch-open", ModelName="open-model",
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/in/"}}},
        TransformOutput={"S3OutputPath": "s3://b/out/"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1}, Tags=x.w.tag_list)
    return {"training": "old-train-open", "processing": "old-process-open", "tuning": "old-tune-open",
            "transform": "old-batch-open"}


def _failing(rows: list[dict[str, Any]], resource_id: str) -> dict[str, dict[str, Any]]:
    return {r["control"]: r for r in rows if r["resource_id"] == resource_id and r["status"] == "NON_COMPLIANT"}


def test_a_scan_reports_finished_jobs_of_every_kind_as_not_actionable_and_stops_nothing(world, tmp_path):
    jobs = _violating_jobs(world)
    for (kind, name), status in zip(jobs.items(), ("Completed", "Failed", "Stopped", "Completed"), strict=True):
        set_job_status(world.w.account, REGION, kind, name, status)
        set_job_created(world.w.account, REGION, kind, name, dt.datetime.now(dt.UTC) - dt.timedelta(days=30))
    rows = world.scan(enforce=True, ledger=str(tmp_path / "ledger.jsonl"))
    for kind, name in jobs.items():
        job1 = _failing(rows, name)["JOB.1"]
        assert job1["evidence"] and job1["decision"]["kind"] == "not-actionable", (kind, job1)
        assert job1["decision"]["reason"].startswith(FINISHED) and job1["decision"]["action"] is None
        assert job1["decision"]["result"] == "no-action"
    # the secure world's own jobs are still running: evaluated as before, and compliant
    assert _failing(rows, world.w.training_job_name) == {}
    assert not [op for op, _ in world.params if op.startswith("Stop")]


def test_jobs_created_before_the_lookback_are_not_listed_and_running_ones_always_are(world):
    _training(world, "ran-last-month")
    set_job_status(world.w.account, REGION, "training", "ran-last-month", "Completed")
    _training(world, "ran-last-year")
    set_job_status(world.w.account, REGION, "training", "ran-last-year", "Completed")
    set_job_created(world.w.account, REGION, "training", "ran-last-year",
                    dt.datetime.now(dt.UTC) - dt.timedelta(days=200))
    _training(world, "runs-for-months")  # created long ago, still running: handled as today
    set_job_created(world.w.account, REGION, "training", "runs-for-months",
                    dt.datetime.now(dt.UTC) - dt.timedelta(days=200))
    rows = world.scan()
    listed = {r["resource_id"] for r in rows if r["resource_type"] == "AWS::SageMaker::TrainingJob"}
    assert {"ran-last-month", "runs-for-months", world.w.training_job_name} <= listed
    assert "ran-last-year" not in listed
    assert "would stop" in _failing(rows, "runs-for-months")["JOB.1"]["decision"]["reason"]
    assert _failing(rows, "ran-last-month")["JOB.1"]["decision"]["reason"] == f"read-only scan: {FINISHED} " \
        "(the job is Completed: it ran with these settings)"
    # each of the four lists: once for the running jobs, once for those created within the lookback
    for operation in LISTS:
        calls = [p for op, p in world.params if op == operation]
        assert {"StatusEquals": "InProgress"} in calls, operation
        [since] = [p["CreationTimeAfter"] for p in calls if "CreationTimeAfter" in p]
        assert abs((dt.datetime.now(dt.UTC) - dt.timedelta(days=90) - since).total_seconds()) < 300
    world.params.clear()
    rows = world.scan(job_lookback_days=400)
    assert "ran-last-year" in {r["resource_id"] for r in rows}


def test_a_finished_job_no_longer_makes_its_subnet_sagemakers(world):
    """VPC.9 is about subnets SageMaker uses now: a job that ran in a public-IP subnet last week does not make
    netguard change that subnet today."""
    subnet = world.w.public_subnet_id
    world.client("ec2").modify_subnet_attribute(SubnetId=subnet, MapPublicIpOnLaunch={"Value": True})
    _training(world, "ran-in-public", subnets=[subnet], isolated=True)
    running = world.scan()
    assert "VPC.9" in _failing(running, subnet) and "JOB.2" in _failing(running, "ran-in-public")
    set_job_status(world.w.account, REGION, "training", "ran-in-public", "Completed")
    finished = world.scan()
    assert _failing(finished, subnet) == {}
    assert _failing(finished, "ran-in-public")["JOB.2"]["decision"]["reason"].startswith("read-only scan: finished")


# --- sweeps, through the deployed handlers (DynamoDB ledger, SNS) -----------------------------------------

def _sweep(stack) -> dict[str, Any]:
    aws = stack["aws"]
    return invoke(stack, "sweep", {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
                                   "source": "aws.events", "account": aws.account, "time": "2026-11-27T06:00:00Z",
                                   "region": aws.region, "detail": {},
                                   "resources": [f"arn:aws:events:{aws.region}:{aws.account}:rule/netguard-sweep"]})


def _alerts_about(sent: list[dict[str, Any]], resource_id: str) -> list[dict[str, Any]]:
    return [a["message"] for a in sent if (a["message"].get("resource") or {}).get("id") == resource_id]


@pytest.fixture
def sweeping(stack, monkeypatch) -> Any:
    stack["aws"].client("s3").create_bucket(Bucket="netguard-reports-test")
    monkeypatch.setenv("NETGUARD_REPORT_BUCKET", "netguard-reports-test")
    monkeypatch.setenv("NETGUARD_REGIONS", stack["aws"].region)
    handlers.runtime.cache_clear()
    return stack


def _summary(stack, sweep_id: str) -> dict[str, Any]:
    body = stack["aws"].client("s3").get_object(Bucket="netguard-reports-test",
                                                Key=f"netguard/sweeps/{sweep_id}/summary.json")["Body"].read()
    return json.loads(body)


def test_a_sweep_records_and_alerts_a_finished_jobs_violation_once_and_reports_it_every_time(sweeping, monkeypatch):
    stack = sweeping
    aws, net = stack["aws"], stack["net"]
    create_training_job(aws.client("sagemaker"), aws.account, "ran-open", net, isolated=False)
    set_job_status(aws.account, aws.region, "training", "ran-open", "Completed")
    first = _sweep(stack)
    [alert] = [a for a in _alerts_about(alerts(stack), "ran-open") if a["control"]["id"] == "JOB.1"]
    assert alert["decision"] == "not-actionable" and alert["reason"].startswith(FINISHED)
    assert aws.calls.writes(("sagemaker",)) == []
    assert _summary(stack, first["sweep_id"])["finished_jobs"] == 1

    # two days later (beyond NETGUARD_DEDUP_HOURS): the same finished job, no second alert, no second record
    later = rules.utcnow() + dt.timedelta(days=2)
    monkeypatch.setattr(rules, "utcnow", lambda: later)
    second = _sweep(stack)
    assert [a for a in _alerts_about(alerts(stack), "ran-open") if a["control"]["id"] == "JOB.1"] == []
    decisions = [i for i in ledger_items(stack, "decision#") if i["control"] == "JOB.1" and "ran-open" in i["pk"]]
    assert len(decisions) == 1 and decisions[0]["decision"] == "not-actionable"
    summary = _summary(stack, second["sweep_id"])
    assert summary["finished_jobs"] == 1 and summary["violations"]["JOB.1"] == 1  # still in the sweep's report


def test_a_sweep_of_an_account_with_studio_domains_reports_dm1_and_dm2(sweeping):
    stack = sweeping
    aws, net = stack["aws"], stack["net"]
    sm = aws.client("sagemaker")
    user = {"ExecutionRole": f"arn:aws:iam::{aws.account}:role/sagemaker", "SecurityGroups": [net.sg_notebook_ok]}
    # created without tags, as people do (moto used to fail ListTags on such a domain)
    internet = sm.create_domain(DomainName="open-studio", AuthMode="IAM", VpcId=net.vpc_id, DefaultUserSettings=user,
                                SubnetIds=list(net.private_subnets), AppNetworkAccessType="PublicInternetOnly")
    public = sm.create_domain(DomainName="public-studio", AuthMode="IAM", VpcId=net.vpc_id, DefaultUserSettings=user,
                              SubnetIds=[net.public_subnet], AppNetworkAccessType="VpcOnly")
    result = _sweep(stack)
    summary = _summary(stack, result["sweep_id"])
    assert summary["violations"]["DM.1"] == 1 and summary["violations"]["DM.2"] == 1 and summary["error_count"] == 0
    sent = alerts(stack)
    open_id, public_id = (d["DomainArn"].rsplit("/", 1)[1] for d in (internet, public))
    assert {a["control"]["id"] for a in _alerts_about(sent, open_id)} >= {"DM.1"}
    assert {a["control"]["id"] for a in _alerts_about(sent, public_id)} >= {"DM.2"}
    assert sm.describe_domain(DomainId=open_id)["AppNetworkAccessType"] == "VpcOnly"  # no app ran: remediated


@pytest.mark.parametrize("event", [{"Records": [{"foo": "bar"}]}, {"Records": []}, {"Records": [None, 7]}],
                         ids=["not-sqs-records", "empty", "not-objects"])
@pytest.mark.parametrize("handler", ["recheck", "sweep_worker"])
def test_sqs_handlers_skip_a_batch_whose_records_are_not_sqs_shaped(stack, handler, event):
    assert invoke(stack, handler, event) == {"batchItemFailures": []}
