"""The audit through the CLI's JSON contract: `scan` reports Studio domains (DM.1, DM.2) and the jobs that ran
within the lookback; `report --since` answers "what happened this quarter" from the ledger (file or DynamoDB),
by control and account, as table, JSON or CSV, and says which records it cannot trust."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest

from chalicelib.audit import CSV_FIELDS, SCHEMA
from chalicelib.cli import EXIT_CLEAN, EXIT_USAGE, EXIT_VIOLATIONS, main
from conftest import TABLE
from netguard_testkit.moto_fidelity import set_status
from netguard_testkit.moto_sagemaker import set_job_status
from netguard_testkit.world import create_ledger_table, create_notebook, create_training_job

FINDING_KEYS = {"control", "title", "severity", "resource_type", "resource_id", "arn", "account", "region", "status",
                "evidence", "decision"}
TODAY = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
EXIT_UNTRUSTED = 4


def run(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def bad(report: dict) -> dict[tuple[str, str], dict]:
    return {(f["control"], f["resource_id"]): f for f in report["findings"] if f["status"] == "NON_COMPLIANT"}


def studio_domains(aws, net) -> tuple[str, str]:
    sm = aws.client("sagemaker")
    user = {"ExecutionRole": f"arn:aws:iam::{aws.account}:role/sagemaker", "SecurityGroups": [net.sg_notebook_ok]}
    internet = sm.create_domain(DomainName="open-studio", AuthMode="IAM", VpcId=net.vpc_id, DefaultUserSettings=user,
                                SubnetIds=list(net.private_subnets), AppNetworkAccessType="PublicInternetOnly")
    public = sm.create_domain(DomainName="public-studio", AuthMode="IAM", VpcId=net.vpc_id, DefaultUserSettings=user,
                              SubnetIds=[net.public_subnet], AppNetworkAccessType="VpcOnly")
    return internet["DomainArn"].rsplit("/", 1)[1], public["DomainArn"].rsplit("/", 1)[1]


def test_scan_json_reports_dm1_and_dm2_for_studio_domains(aws, net, capsys):
    internet, public = studio_domains(aws, net)
    code, out, _ = run(capsys, "scan", "--region", "us-east-1", "--format", "json")
    report = json.loads(out)
    assert code == EXIT_VIOLATIONS and report["summary"]["errors"] == []
    failing = bad(report)
    assert ("DM.1", internet) in failing and ("DM.2", internet) not in failing
    assert ("DM.2", public) in failing and ("DM.1", public) not in failing
    dm1 = failing[("DM.1", internet)]
    assert FINDING_KEYS <= set(dm1) and dm1["resource_type"] == "AWS::SageMaker::Domain"
    assert dm1["evidence"] and dm1["decision"]["kind"] == "report-only"
    assert report["summary"]["by_control"]["DM.1"]["NON_COMPLIANT"] == 1


def test_scan_json_reports_a_finished_job_within_the_lookback(aws, net, capsys, tmp_path):
    create_training_job(aws.client("sagemaker"), aws.account, "ran-open", net, isolated=False)
    set_job_status(aws.account, aws.region, "training", "ran-open", "Completed")
    ledger = tmp_path / "ledger.jsonl"
    code, out, _ = run(capsys, "scan", "--region", "us-east-1", "--format", "json", "--enforce",
                       "--ledger-file", str(ledger), "--job-lookback-days", "30")
    job1 = bad(json.loads(out))[("JOB.1", "ran-open")]
    assert code == EXIT_VIOLATIONS
    assert job1["decision"]["kind"] == "not-actionable" and job1["decision"]["result"] == "no-action"
    assert job1["decision"]["reason"].startswith("finished; cannot be stopped")
    assert job1["evidence"]
    assert run(capsys, "scan", "--region", "us-east-1", "--job-lookback-days", "0")[0] == EXIT_USAGE


# --- netguard report -------------------------------------------------------------------------------------

@pytest.fixture
def recorded(aws, net, capsys, tmp_path):
    """A quarter's ledger file: a notebook stopped, an SSH rule revoked, a finished job reported."""
    create_notebook(aws.client("sagemaker"), aws.account, "nb-open", net.public_subnet, [net.sg_jupyter])
    set_status(aws.account, aws.region, "nb-open", "InService")
    create_training_job(aws.client("sagemaker"), aws.account, "ran-open", net, isolated=False)
    set_job_status(aws.account, aws.region, "training", "ran-open", "Completed")
    ledger = tmp_path / "ledger.jsonl"
    assert run(capsys, "scan", "--region", "us-east-1", "--enforce", "--ledger-file", str(ledger))[0] == 1
    return ledger


def test_report_json_lists_every_decision_and_action_by_control_and_account(aws, recorded, capsys):
    code, out, _ = run(capsys, "report", "--since", TODAY, "--ledger-file", str(recorded), "--format", "json")
    report = json.loads(out)
    assert code == EXIT_CLEAN and report["schema"] == SCHEMA
    rows = {(r["control"], r["resource_id"]): r for r in report["records"]}
    assert rows[("JOB.1", "ran-open")]["decision"] == "not-actionable"
    assert rows[("JOB.1", "ran-open")]["reason"].startswith("finished; cannot be stopped")
    assert rows[("NB.1", "nb-open")]["result"] == "succeeded" and rows[("NB.1", "nb-open")]["action_id"]
    assert rows[("NB.1", "nb-open")]["trust"] == "not-checked"  # a local file: nothing is signed there
    assert {a["action"] for a in report["actions"]} >= {"quarantine_notebook", "revoke_rules"}
    summary = report["summary"]
    assert summary["by_control"]["JOB.1"]["violations"] == 1
    assert summary["by_account"][aws.account]["decisions"] == len(report["records"])
    assert summary["untrusted"] == 0 and "not signed" in summary["note"]
    # the filters, and a period before any of it
    code, out, _ = run(capsys, "report", "--since", TODAY, "--ledger-file", str(recorded), "--format", "json",
                       "--control", "JOB.1")
    assert {r["control"] for r in json.loads(out)["records"]} == {"JOB.1"}
    code, out, _ = run(capsys, "report", "--since", TODAY, "--ledger-file", str(recorded), "--format", "json",
                       "--account", "210987654321")
    assert json.loads(out)["records"] == []
    code, out, _ = run(capsys, "report", "--since", "2026-01-01", "--until", "2026-01-31",
                       "--ledger-file", str(recorded), "--format", "json")
    assert json.loads(out)["summary"]["decisions"] == 0


def test_report_csv_and_table(recorded, capsys):
    code, out, _ = run(capsys, "report", "--since", TODAY, "--ledger-file", str(recorded), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == EXIT_CLEAN and tuple(rows[0]) == CSV_FIELDS
    job = next(r for r in rows if r["control"] == "JOB.1")
    assert job["resource_id"] == "ran-open" and json.loads(job["evidence"])
    code, out, _ = run(capsys, "report", "--since", TODAY, "--ledger-file", str(recorded))
    lines = out.splitlines()
    assert lines[2].split() == ["CONTROL", "ACCOUNT", "VIOLATIONS", "DECISIONS", "ACTED", "UNTRUSTED"]
    assert any(line.split()[:1] == ["JOB.1"] for line in lines) and "decision records are not signed" in out


@pytest.mark.parametrize("args", [["--since", "yesterday"], ["--since", "2026-10-01", "--until", "2026-09-01"],
                                  ["--since", "2026-10-01", "--format", "xml"], ["--until", "2026-10-01"]])
def test_report_usage_errors_exit_2(capsys, tmp_path, args):
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text("")
    code, out, err = run(capsys, "report", "--ledger-file", str(ledger), *args)
    assert code == EXIT_USAGE and out == "" and err


def test_report_without_a_ledger_is_a_usage_error(capsys, tmp_path):
    code, _, err = run(capsys, "report", "--since", TODAY, "--ledger-file", str(tmp_path / "none.jsonl"))
    assert code == EXIT_USAGE and "no ledger file" in err


def test_report_over_the_dynamodb_ledger_checks_signatures_and_marks_forged_records(aws, net, capsys, monkeypatch):
    ddb = aws.client("dynamodb")
    create_ledger_table(ddb, TABLE)
    key = aws.client("kms").create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["Arn"]
    monkeypatch.setenv("NETGUARD_LEDGER_TABLE", TABLE)
    monkeypatch.setenv("NETGUARD_LEDGER_KEY_ID", key)
    create_notebook(aws.client("sagemaker"), aws.account, "nb-open", net.public_subnet, [net.sg_jupyter])
    set_status(aws.account, aws.region, "nb-open", "InService")
    assert run(capsys, "scan", "--region", "us-east-1", "--enforce")[0] == EXIT_VIOLATIONS

    code, out, _ = run(capsys, "report", "--since", TODAY, "--format", "json")
    report = json.loads(out)
    assert code == EXIT_CLEAN and report["ledger"] == f"ledger table {TABLE}"
    acted = [r for r in report["records"] if r["action_id"]]
    assert acted and {r["trust"] for r in acted} == {"signed"}
    assert {a["signature"] for a in report["actions"]} == {"signed"}

    # someone who can write the table: a decision naming an action that never was, and an action altered
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    forged = {"pk": {"S": f"res#{aws.account}#us-east-1#AWS::EC2::SecurityGroup#{net.sg_ssh_open}"},
              "sk": {"S": f"decision#{now}#forged-event#SG.1"}, "control": {"S": "SG.1"},
              "resource": {"S": json.dumps({"type": "AWS::EC2::SecurityGroup", "id": net.sg_ssh_open,
                                            "account": aws.account, "region": "us-east-1"})},
              "status": {"S": "NON_COMPLIANT"}, "decision": {"S": "remediate"}, "result": {"S": "succeeded"},
              "action_id": {"S": "act-00000000000000000000"}, "evidence": {"S": "{}"}}
    ddb.put_item(TableName=TABLE, Item=forged)
    altered = next(a["action_id"] for a in report["actions"] if a["action"] == "revoke_rules")
    ddb.update_item(TableName=TABLE, Key={"pk": {"S": f"action#{altered}"}, "sk": {"S": "action"}},
                    UpdateExpression="SET detail = :d", ExpressionAttributeValues={":d": {"S": "nothing happened"}})
    code, out, err = run(capsys, "report", "--since", TODAY, "--format", "json")
    report = json.loads(out)
    assert code == EXIT_UNTRUSTED and "could not be trusted" in err
    trust = {(r["control"], r["resource_id"], r["action_id"]): r["trust"] for r in report["records"]}
    assert trust[("SG.1", net.sg_ssh_open, "act-00000000000000000000")] == "missing"
    assert {t for (c, _, a), t in trust.items() if a == altered} == {"bad-signature"}
    assert next(a for a in report["actions"] if a["action_id"] == altered)["signature"] == "bad-signature"
    # without the key nothing can be checked: said, not trusted
    monkeypatch.delenv("NETGUARD_LEDGER_KEY_ID")
    code, out, _ = run(capsys, "report", "--since", TODAY, "--format", "json", "--control", "NB.1")
    assert code == EXIT_UNTRUSTED and {r["trust"] for r in json.loads(out)["records"] if r["action_id"]} == {"no-key"}
