"""`netguard scan`: the report format, exit codes, read-only by default, --enforce; one run of the real
command over HTTP against a moto server, and `netguard demo` end to end."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from chalicelib.cli import EXIT_CLEAN, EXIT_ERROR, EXIT_USAGE, EXIT_VIOLATIONS, main
from netguard_testkit.moto_fidelity import set_status
from netguard_testkit.world import build_network, create_notebook, ingress_rule_ids, remove_default_vpc

ROOT = Path(__file__).resolve().parents[2]
FINDING_KEYS = {"control", "resource_type", "resource_id", "arn", "account", "region", "status", "evidence", "decision"}


def scan_json(capsys, *extra) -> tuple[int, dict]:
    code = main(["scan", "--region", "us-east-1", "--format", "json", *extra])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_json_report_lists_every_finding_with_config_ids_and_exits_1_on_violations(aws, net, capsys):
    sm = aws.client("sagemaker")
    create_notebook(sm, aws.account, "nb-bad", net.public_subnet, [net.sg_jupyter])
    create_notebook(sm, aws.account, "nb-good", net.private_subnets[0], [net.sg_notebook_ok], "Disabled")
    code, report = scan_json(capsys)
    assert code == EXIT_VIOLATIONS
    assert all(FINDING_KEYS <= set(f) for f in report["findings"])
    bad = {(f["control"], f["resource_id"]) for f in report["findings"] if f["status"] == "NON_COMPLIANT"}
    assert bad == {("NB.1", "nb-bad"), ("NB.3", "nb-bad"), ("SG.2", net.sg_jupyter)}
    good = [f for f in report["findings"] if f["resource_id"] == "nb-good"]
    assert {f["status"] for f in good} == {"COMPLIANT"}
    nb = next(f for f in report["findings"] if f["resource_id"] == "nb-bad")
    assert nb["arn"].endswith(":notebook-instance/nb-bad") and nb["account"] == aws.account
    assert {f["status"] for f in report["findings"]} <= {"COMPLIANT", "NON_COMPLIANT", "NOT_APPLICABLE"}
    assert report["summary"]["non_compliant"] == 3 and report["summary"]["mode"] == "read-only"
    assert report["summary"]["by_control"]["SG.2"]["NON_COMPLIANT"] == 1


def test_scan_is_read_only_by_default(aws, net, capsys, monkeypatch):
    """The CLI builds its own session: count the calls it makes through botocore's event hooks."""
    create_notebook(aws.client("sagemaker"), aws.account, "nb-open", net.public_subnet, [net.sg_ssh_open])
    set_status(aws.account, aws.region, "nb-open", "InService")
    calls = []
    original = boto3.session.Session.__init__

    def counting_init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.events.register("before-call.*.*", lambda model=None, **_: calls.append(model.name))

    monkeypatch.setattr(boto3.session.Session, "__init__", counting_init)
    code, report = scan_json(capsys)
    assert code == EXIT_VIOLATIONS
    assert calls and all(op.startswith(("Describe", "List", "Get")) for op in calls), calls
    assert all(f["decision"]["kind"] == "report-only" for f in report["findings"] if f["decision"])
    assert "would stop" in next(f for f in report["findings"] if f["control"] == "NB.1")["decision"]["reason"]


def test_scan_enforce_remediates_and_records_to_the_ledger_file(aws, net, capsys, tmp_path):
    create_notebook(aws.client("sagemaker"), aws.account, "nb-open", net.public_subnet, [net.sg_jupyter])
    set_status(aws.account, aws.region, "nb-open", "InService")
    ledger = tmp_path / "ledger.jsonl"
    code, report = scan_json(capsys, "--enforce", "--ledger-file", str(ledger))
    assert code == EXIT_VIOLATIONS  # it found violations (and fixed what it could)
    assert report["summary"]["mode"] == "enforce" and report["summary"]["remediated"] == 3
    assert ingress_rule_ids(aws.client("ec2"), net.sg_jupyter) == {}
    records = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert {r["sk"].split("#")[0] for r in records} >= {"claim", "action", "decision"}
    # a second scan: the notebook is stopped and tagged, the rule is gone, nothing is written again
    code, report = scan_json(capsys, "--enforce", "--ledger-file", str(ledger))
    assert report["summary"]["by_status"].get("NON_COMPLIANT") == 2  # the notebook must be recreated
    assert report["summary"]["remediated"] == 2  # already-done counts, no new write


def test_clean_account_exits_0_and_table_output(aws, net, capsys):
    create_notebook(aws.client("sagemaker"), aws.account, "nb-good", net.private_subnets[0], [net.sg_notebook_ok],
                    "Disabled")
    assert main(["scan", "--region", "us-east-1"]) == EXIT_CLEAN
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["CONTROL", "SEVERITY", "RESOURCE", "DECISION", "RESULT"]
    assert "NON_COMPLIANT" not in out and "mode read-only" in out


def test_usage_errors_exit_2(capsys):
    assert main(["scan"]) == EXIT_USAGE
    assert main(["scan", "--region", "us-east-1", "--format", "yaml"]) == EXIT_USAGE
    assert "usage" in capsys.readouterr().err


def test_could_not_run_exits_3_with_the_reason_on_stderr(monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr("chalicelib.aws.RETRY_CONFIG", {"retries": {"max_attempts": 1}, "connect_timeout": 1})
    code = main(["scan", "--region", "us-east-1", "--format", "json"])
    captured = capsys.readouterr()
    assert code == EXIT_ERROR
    assert captured.out == "" and "could not scan us-east-1" in captured.err


@pytest.fixture
def moto_http():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_the_installed_command_over_http_against_a_moto_server(moto_http):
    """The real command in a child process, standard credential chain + AWS_ENDPOINT_URL: only the
    JSON report on stdout, logs on stderr, exit status 1 for violations."""
    session = boto3.session.Session(region_name="us-east-1")
    ec2 = session.client("ec2", endpoint_url=moto_http)
    sm = session.client("sagemaker", endpoint_url=moto_http)
    account = session.client("sts", endpoint_url=moto_http).get_caller_identity()["Account"]
    remove_default_vpc(ec2)
    net = build_network(ec2, account, "us-east-1")
    create_notebook(sm, account, "nb-http", direct_internet="Enabled")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETGUARD_")}
    env.update(AWS_ENDPOINT_URL=moto_http, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    proc = subprocess.run([sys.executable, "-m", "chalicelib.cli", "-v", "scan", "--region", "us-east-1",
                           "--format", "json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_VIOLATIONS, proc.stderr
    report = json.loads(proc.stdout)  # stdout is exactly one JSON document
    bad = {(f["control"], f["resource_id"]) for f in report["findings"] if f["status"] == "NON_COMPLIANT"}
    assert bad == {("NB.1", "nb-http"), ("NB.2", "nb-http")}
    ssh = next(f for f in report["findings"] if f["control"] == "SG.1" and f["resource_id"] == net.sg_ssh_open)
    assert ssh["status"] == "NOT_APPLICABLE"  # open to the world, but no SageMaker resource uses it
    assert ("INFO netguard.scan: scanning 1 SageMaker resources and 1 VPC, 3 Subnet, 7 VPCEndpoint, 5 SecurityGroup"
            in proc.stderr)


def test_demo_runs_offline_and_shows_every_stage():
    from netguard_demo.run import run_demo

    out = io.StringIO()
    assert run_demo(out) == 0
    text = out.getvalue()
    for expected in ("deferred", "remediate  -> succeeded", "exempt", "skipped (ignored)",
                     "netguard:quarantined=NB.1 NB.3", "on SNS", "on Slack", "no second stop", "mode read-only",
                     "JOB.1 train-no-isolation       remediate  -> succeeded", "MD.1  model-open",
                     "EP.1  config-single", "DM.1  d-studio                 remediate  -> succeeded",
                     "VPC.2", "VPC.6", "TAG.1", "PutEvaluations", "{'NON_COMPLIANT': 1}", "none (revoked, SG.1)",
                     "one digest", "MapPublicIpOnLaunch is now False", "SNS  [digest  ] [netguard] sweep"):
        assert expected in text, expected
    diagnosis = text[text.index("== 10. netguard diagnose training-job/train-vpc"):]
    assert "1. [blocks] No ecr.dkr interface endpoint" in diagnosis and "exit status 1" in diagnosis


class _Tty(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_progress_goes_to_a_terminal_only():
    from chalicelib.cli import Progress

    for tty, expected in ((True, "\rscanned 3/10 resources\n"), (False, "")):
        stream = _Tty(tty)
        meter = Progress(10, stream)
        meter.update(3)
        meter.close()
        assert stream.getvalue() == expected


def test_html_report_is_one_file_whose_summaries_are_the_json_reports(aws, net, capsys, tmp_path):
    """`--format html -o FILE` against moto: the page, read back with html.parser, counts what the JSON report
    counts (by control, by status), lists each violation with its fix; an unwritable --output is refused
    before the scan (exit 2), and nothing goes to stdout."""
    from conftest import parse_html

    sm = aws.client("sagemaker")
    create_notebook(sm, aws.account, "nb-bad", net.public_subnet, [net.sg_jupyter])
    create_notebook(sm, aws.account, "nb-good", net.private_subnets[0], [net.sg_notebook_ok], "Disabled")
    _, report = scan_json(capsys)
    page_file = tmp_path / "report.html"
    assert main(["scan", "--region", "us-east-1", "--format", "html", "-o", str(page_file)]) == EXIT_VIOLATIONS
    captured = capsys.readouterr()
    assert captured.out == "" and f"report written to {page_file}" in captured.err
    page = parse_html(page_file.read_text(encoding="utf-8"))
    assert page.counts("by-control") == report["summary"]["by_control"]
    assert page.counts("by-account") == {aws.account: report["summary"]["by_status"]}
    violations = [f for f in report["findings"] if f["status"] == "NON_COMPLIANT"]
    assert len(page.sections) == len(violations) == 3
    nb1 = next(s for s in page.sections.values() if " NB.1 " in f" {s} ")
    assert "nb-bad" in nb1 and "stop the notebook instance" in nb1 and '"DirectInternetAccess": "Enabled"' in nb1
    assert not {tag for tag, _ in page.tags} & {"script", "img", "link"}
    assert list(tmp_path.iterdir()) == [page_file]  # written whole: no temporary file left

    for bad in (str(tmp_path / "missing" / "r.html"), str(tmp_path)):
        assert main(["scan", "--region", "us-east-1", "--format", "html", "-o", bad]) == EXIT_USAGE
        assert "--output" in capsys.readouterr().err
