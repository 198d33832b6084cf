"""`netguard demo` (make demo): the whole flow against an embedded mock AWS, offline.

A moto server runs in this process on a free loopback port; every AWS call netguard makes goes to
it over HTTP (AWS_ENDPOINT_URL). The demo builds a small account with the field guide's bad habits
next to a compliant notebook, sends real-shaped CloudTrail and state-change events through the
Chalice handlers, plays SageMaker's part (Pending -> InService), and prints what netguard found,
what it did, and the alerts as received: SNS read back through a subscribed SQS queue, Slack by a
local webhook receiver. Then it runs a read-only `netguard scan` over the same account, and `netguard
diagnose` on a training job whose VPC lost its ecr.dkr endpoint.
Everything it starts is stopped before it returns.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

PROJECT_DIR = Path(__file__).resolve().parent.parent
ACCOUNT_REGION = "us-east-1"
TABLE = "netguard-ledger-demo"


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log lines
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextlib.contextmanager
def demo_environment(endpoint: str) -> Iterator[None]:
    """Fake credentials and the moto endpoint for every client (netguard's and the demo's)."""
    values = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo",
              "AWS_DEFAULT_REGION": ACCOUNT_REGION, "NETGUARD_MODE": "enforce", "POWERTOOLS_DEV": "false"}
    removed = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("NETGUARD_") or k == "AWS_PROFILE"}
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        for key in [k for k in os.environ if k.startswith("NETGUARD_")]:
            os.environ.pop(key)
        os.environ.update(removed)


class Printer:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def title(self, text: str) -> None:
        self.out.write(f"\n== {text}\n")

    def line(self, text: str = "") -> None:
        self.out.write(f"{text}\n")

    def decisions(self, result: dict[str, Any]) -> None:
        if result.get("skipped"):
            self.line(f"   skipped ({result['skipped']}): {result.get('reason')}")
            return
        if not result["decisions"]:
            self.line(f"   {result['resources']} resource(s) evaluated: compliant, nothing to do")
        for d in result["decisions"]:
            action = f" [{d['action_id']}]" if d.get("action_id") else ""
            self.line(f"   {d['control']:<5} {d['resource']:<24} {d['decision']:<10} -> {d['result']}{action}")


def register(sub: Any) -> None:
    """Add `netguard demo` to the CLI's subparsers: the entry point netguard.commands:demo (pyproject.toml), so
    that chalicelib.cli never names the demo (the deployed code has no such entry point)."""
    demo = sub.add_parser("demo", help="run the whole flow against an embedded mock AWS (needs the dev install)")
    demo.add_argument("--keep-output", action="store_true", help=argparse.SUPPRESS)
    demo.set_defaults(run=lambda _args, out: run_demo(out))


def diagnose_broken_job(session: Any, net: Any, account: str, region: str, show: Printer, out: TextIO) -> None:
    """`netguard diagnose` on a training job whose image cannot be pulled: its VPC lost its ecr.dkr endpoint
    and has no NAT gateway. Read-only, like a user running it against the account."""
    from chalicelib.aws import Clients  # noqa: PLC0415
    from chalicelib.cli import build_parser  # noqa: PLC0415
    from chalicelib.diagnose.command import run_with  # noqa: PLC0415
    from netguard_testkit.world import tag_spec, tcp  # noqa: PLC0415

    ec2 = session.client("ec2")
    group = ec2.create_security_group(GroupName="training", Description="training", VpcId=net.vpc_id,
                                      TagSpecifications=tag_spec("security-group"))["GroupId"]
    ec2.revoke_security_group_egress(GroupId=group, IpPermissions=[{"IpProtocol": "-1",
                                                                    "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    table = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id",
                                                "Values": [net.private_subnets[0]]}])["RouteTables"][0]
    s3_list = next(r["DestinationPrefixListId"] for r in table["Routes"] if r.get("DestinationPrefixListId"))
    ec2.authorize_security_group_egress(GroupId=group, IpPermissions=[tcp(443, net.vpc_cidr), {
        "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "PrefixListIds": [{"PrefixListId": s3_list}]}])
    session.client("sagemaker").create_training_job(
        TrainingJobName="train-vpc", RoleArn=f"arn:aws:iam::{account}:role/sagemaker", EnableNetworkIsolation=True,
        AlgorithmSpecification={"TrainingImage": f"{account}.dkr.ecr.{region}.amazonaws.com/x:1",
                                "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": "s3://netguard-demo/out"}, StoppingCondition={"MaxRuntimeInSeconds": 3600},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        VpcConfig={"Subnets": list(net.private_subnets), "SecurityGroupIds": [group]})
    dkr = [e["VpcEndpointId"] for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]
           if e["ServiceName"].endswith(".ecr.dkr")]
    ec2.delete_vpc_endpoints(VpcEndpointIds=dkr)
    show.title(f"10. netguard diagnose training-job/train-vpc (its VPC's ecr.dkr endpoint {', '.join(dkr)} was "
               f"deleted; no NAT gateway)")
    args = build_parser().parse_args(["diagnose", "training-job/train-vpc", "--region", region])
    show.line(f"exit status {run_with(Clients(session), region, args, out)}")


CHECKED_TEMPLATE = PROJECT_DIR / "tests" / "fixtures" / "iac" / "deviation-notebook-internet.yaml"


def show_check(show: Printer, out: TextIO) -> None:
    """`netguard check` on a CloudFormation template before deploy: the secure architecture with a notebook
    given direct internet access. No AWS: the template alone, through the same checks."""
    from chalicelib.cli import build_parser  # noqa: PLC0415

    path = CHECKED_TEMPLATE.relative_to(PROJECT_DIR)
    show.title(f"11. netguard check {path} --region {ACCOUNT_REGION} (before deploy, no AWS call)")
    shown = str(path) if Path.cwd() == PROJECT_DIR else str(CHECKED_TEMPLATE)  # `make demo` runs in the project
    args = build_parser().parse_args(["check", shown, "--region", ACCOUNT_REGION])
    code = args.run(args, out)
    show.line(f"   exit status {code}: the template would deploy a notebook with direct internet access")


def run_demo(out: TextIO) -> int:
    import boto3  # noqa: PLC0415
    from chalice.test import Client  # noqa: PLC0415

    from netguard_testkit import events  # noqa: PLC0415
    from netguard_testkit.moto_fidelity import attach_notebook_eni, aws_like_notebooks, set_status  # noqa: PLC0415
    from netguard_testkit.moto_sagemaker import aws_like_sagemaker  # noqa: PLC0415
    from netguard_testkit.receiver import WebhookReceiver  # noqa: PLC0415
    from netguard_testkit.world import (  # noqa: PLC0415
        TAGS,
        build_network,
        create_alert_channels,
        create_ledger_table,
        create_notebook,
        create_training_job,
        drain_alerts,
        ingress_rule_ids,
        remove_default_vpc,
    )

    show = Printer(out)
    engine_output = io.StringIO()
    with moto_server() as endpoint, WebhookReceiver() as slack, demo_environment(endpoint), aws_like_notebooks(), \
            aws_like_sagemaker():
        session = boto3.session.Session(region_name=ACCOUNT_REGION)
        ec2, sm = session.client("ec2"), session.client("sagemaker")
        account = session.client("sts").get_caller_identity()["Account"]
        region = ACCOUNT_REGION
        show.title(f"mock AWS account {account} in {region}, served over HTTP at {endpoint}")
        remove_default_vpc(ec2)
        net = build_network(ec2, account, region)
        create_ledger_table(session.client("dynamodb"), TABLE)
        topic, queue, param = create_alert_channels(session.client("sns"), session.client("sqs"),
                                                    session.client("ssm"), slack.url, prefix="netguard-demo")
        os.environ.update(NETGUARD_LEDGER_TABLE=TABLE, NETGUARD_ALERT_TOPIC_ARN=topic,
                          NETGUARD_SLACK_WEBHOOK_PARAM=param,
                          NETGUARD_SLACK_ALLOWED_URLS=slack.url)
        show.line(f"VPC {net.vpc_id} {net.vpc_cidr}: private subnets {', '.join(net.private_subnets)}, "
                  f"public subnet {net.public_subnet} (0.0.0.0/0 -> {net.igw_id})")
        show.line(f"security groups: {net.sg_notebook_ok} 443 from the VPC (compliant), "
                  f"{net.sg_ssh_open} 22 from 0.0.0.0/0, {net.sg_jupyter} 8888 from the VPC")
        show.line(f"ledger table {TABLE}, alert topic {topic.rsplit(':', 1)[-1]}, Slack webhook in SSM {param}")

        if str(PROJECT_DIR) not in sys.path:
            sys.path.insert(0, str(PROJECT_DIR))  # app.py is the Chalice project's, not an installed module
        from app import app  # noqa: PLC0415 - after the environment is set
        from chalicelib import handlers  # noqa: PLC0415

        handlers.runtime.cache_clear()
        previous_stream = handlers.logger.registered_handler.setStream(engine_output)
        try:
            with Client(app, stage_name="demo") as client, contextlib.redirect_stdout(engine_output):
                def send(handler: str, event: dict[str, Any], what: str) -> dict[str, Any]:
                    result = client.lambda_.invoke(handler, event).payload
                    with contextlib.redirect_stdout(out):
                        show.line(f"-> {what} (event {event['id'][:8]}, {handler})")
                        show.decisions(result)
                    return result

                with contextlib.redirect_stdout(out):
                    show.title("1. A data scientist creates four notebooks (SageMaker starts them Pending)")
                create_notebook(sm, account, "nb-public-internet", net.public_subnet, [net.sg_jupyter], "Enabled")
                create_notebook(sm, account, "nb-no-vpc", direct_internet="Enabled")
                create_notebook(sm, account, "nb-private", net.private_subnets[0], [net.sg_notebook_ok], "Disabled")
                lab_exemption = {"netguard:exempt": "NB.1 NB.2",
                                 "netguard:exempt-reason": "isolated lab, ticket SEC-42",
                                 "netguard:exempt-until": (dt.date.today() + dt.timedelta(days=60)).isoformat()}
                create_notebook(sm, account, "nb-lab", direct_internet="Enabled", tags=lab_exemption)
                send("on_api_call", events.create_notebook("nb-public-internet", account, region, net.public_subnet,
                                                           [net.sg_jupyter]),
                     "CreateNotebookInstance nb-public-internet")
                send("on_api_call", events.create_notebook("nb-no-vpc", account, region, None, []),
                     "CreateNotebookInstance nb-no-vpc")
                send("on_api_call", events.create_notebook("nb-private", account, region, net.private_subnets[0],
                                                           [net.sg_notebook_ok], "Disabled"),
                     "CreateNotebookInstance nb-private")
                send("on_api_call", events.create_notebook("nb-lab", account, region, None, [], tags=lab_exemption),
                     "CreateNotebookInstance nb-lab (tagged with an exemption: alerted with who set it)")

                with contextlib.redirect_stdout(out):
                    show.title("2. The notebooks reach InService: SageMaker sends its state-change events")
                state_events = {}
                for name, subnet, groups in (("nb-public-internet", net.public_subnet, [net.sg_jupyter]),
                                             ("nb-no-vpc", None, []),
                                             ("nb-private", net.private_subnets[0], [net.sg_notebook_ok]),
                                             ("nb-lab", None, [])):
                    set_status(account, region, name, "InService")
                    state_events[name] = events.notebook_state_change(name, "InService", account, region, subnet,
                                                                      groups)
                    send("on_state_change", state_events[name], f"Notebook Instance State Change {name} InService")
                with contextlib.redirect_stdout(out):
                    show.line("-> the nb-public-internet event delivered a second time (EventBridge is at-least-once):"
                              " the stored result, no second stop, no alert")
                    show.decisions(client.lambda_.invoke("on_state_change", state_events["nb-public-internet"]).payload)

                with contextlib.redirect_stdout(out):
                    show.title("3. Someone opens SSH to the world on a group used by a SageMaker network interface")
                attach_notebook_eni(ec2, net.private_subnets[1], [net.sg_ssh_open], "nb-private")
                open_rule = next(r for r in ingress_rule_ids(ec2, net.sg_ssh_open).values() if r["FromPort"] == 22)
                send("on_api_call", events.authorize_ingress(net.sg_ssh_open, [{"IpProtocol": "tcp", "FromPort": 22,
                                                                                "ToPort": 22,
                                                                                "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
                                                             account, region, rule_set=[open_rule]),
                     f"AuthorizeSecurityGroupIngress {net.sg_ssh_open} tcp/22 from 0.0.0.0/0")
                send("on_api_call",
                     {"id": "forged-1", "source": "my.scripts", "detail-type": "AWS API Call via CloudTrail"},
                     "a forged event that claims to be CloudTrail")

                with contextlib.redirect_stdout(out):
                    show.title("4. The other families: a job, a model, a Studio domain, the VPC, its endpoints, tags")
                role = f"arn:aws:iam::{account}:role/sagemaker"
                create_training_job(sm, account, "train-no-isolation", net, isolated=False)
                send("on_api_call", events.api_call("CreateTrainingJob", "aws.sagemaker",
                                                    {"trainingJobName": "train-no-isolation"}, None, account, region),
                     "CreateTrainingJob train-no-isolation (EnableNetworkIsolation false)")
                sm.create_model(ModelName="model-open", ExecutionRoleArn=role, EnableNetworkIsolation=False,
                                PrimaryContainer={"Image": "123.dkr.ecr.us-east-1.amazonaws.com/x:1"},
                                Tags=[{"Key": k, "Value": v} for k, v in TAGS.items()])
                send("on_api_call", events.api_call("CreateModel", "aws.sagemaker", {"modelName": "model-open"}, None,
                                                    account, region), "CreateModel model-open (no isolation, no VPC)")
                sm.create_endpoint_config(EndpointConfigName="config-single", ProductionVariants=[{
                    "VariantName": "AllTraffic", "ModelName": "model-open", "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1}], Tags=[{"Key": k, "Value": v} for k, v in TAGS.items()])
                send("on_api_call", events.api_call("CreateEndpointConfig", "aws.sagemaker",
                                                    {"endpointConfigName": "config-single"}, None, account, region),
                     "CreateEndpointConfig config-single (one instance)")
                domain = sm.create_domain(DomainName="studio", AuthMode="IAM", VpcId=net.vpc_id,
                                          SubnetIds=list(net.private_subnets),
                                          AppNetworkAccessType="PublicInternetOnly",
                                          DefaultUserSettings={"ExecutionRole": role,
                                                               "SecurityGroups": [net.sg_notebook_ok]},
                                          Tags=[{"Key": k, "Value": v} for k, v in TAGS.items()])
                send("on_api_call", events.api_call("CreateDomain", "aws.sagemaker", {"domainName": "studio"},
                                                    {"domainArn": domain["DomainArn"]}, account, region),
                     "CreateDomain studio (PublicInternetOnly)")
                ec2.modify_vpc_attribute(VpcId=net.vpc_id, EnableDnsHostnames={"Value": False})
                send("on_api_call", events.api_call("ModifyVpcAttribute", "aws.ec2",
                                                    {"vpcId": net.vpc_id, "enableDnsHostnames": {"value": False}},
                                                    {"_return": True}, account, region),
                     f"ModifyVpcAttribute {net.vpc_id} enableDnsHostnames=false")
                sts = next(e["VpcEndpointId"] for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]
                           if e["ServiceName"].endswith(".sts"))
                ec2.modify_vpc_endpoint(VpcEndpointId=sts, PrivateDnsEnabled=False)
                send("on_api_call", events.api_call("ModifyVpcEndpoint", "aws.ec2",
                                                    {"vpcEndpointId": sts, "privateDnsEnabled": False}, None,
                                                    account, region),
                     f"ModifyVpcEndpoint {sts} privateDnsEnabled=false")
                adhoc = ec2.create_security_group(GroupName="adhoc", Description="adhoc", VpcId=net.vpc_id)["GroupId"]
                send("on_api_call", events.create_security_group(adhoc, "adhoc", net.vpc_id, account, region),
                     f"CreateSecurityGroup {adhoc} without tags")

                with contextlib.redirect_stdout(out):
                    show.title("5. What the events missed: AWS Config and a scheduled sweep")
                legacy = ec2.create_security_group(GroupName="legacy-rdp", Description="legacy", VpcId=net.vpc_id,
                                                   TagSpecifications=[{"ResourceType": "security-group", "Tags": [
                                                       {"Key": k, "Value": v} for k, v in TAGS.items()]}])["GroupId"]
                ec2.authorize_security_group_ingress(GroupId=legacy, IpPermissions=[{
                    "IpProtocol": "tcp", "FromPort": 3389, "ToPort": 3389, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
                attach_notebook_eni(ec2, net.private_subnets[1], [legacy], "nb-private")
                evaluation = client.lambda_.invoke("config_rule", events.config_rule_invocation(
                    "AWS::EC2::SecurityGroup", legacy, account, region)).payload
                with contextlib.redirect_stdout(out):
                    show.line(f"-> Config custom rule: ConfigurationItemChangeNotification for {legacy} "
                              f"(RDP open, its CloudTrail event never arrived)")
                    show.line(f"   PutEvaluations (result token TESTMODE: moto accepts test-mode evaluations only): "
                              f"{evaluation['by_compliance']}")
                    left = [f"tcp/{r['FromPort']}" for r in ingress_rule_ids(ec2, legacy).values()]
                    show.line(f"   {legacy} ingress now: {', '.join(left) or 'none (revoked, SG.1)'}")
                ec2.modify_subnet_attribute(SubnetId=net.private_subnets[1], MapPublicIpOnLaunch={"Value": True})
                session.client("s3").create_bucket(Bucket="netguard-demo-reports")
                os.environ.update(NETGUARD_REPORT_BUCKET="netguard-demo-reports", NETGUARD_REGIONS=region)
                handlers.runtime.cache_clear()
                sweep_event = {"version": "0", "id": "sweep-demo", "detail-type": "Scheduled Event",
                               "source": "aws.events", "account": account, "time": "2026-11-27T06:00:00Z",
                               "region": region, "resources": [], "detail": {}}
                planned = client.lambda_.invoke("sweep", sweep_event).payload
                summary = json.loads(session.client("s3").get_object(
                    Bucket="netguard-demo-reports",
                    Key=f"netguard/sweeps/{planned['sweep_id']}/summary.json")["Body"].read())
                with contextlib.redirect_stdout(out):
                    show.line(f"-> scheduled sweep {planned['sweep_id']} ({planned['tasks']} account-region; "
                              f"private subnet {net.private_subnets[1]} set to assign public IPs, no event sent)")
                    show.line(f"   {summary['resources']} resources, {sum(summary['violations'].values())} violations, "
                              f"{summary['remediated']} remediated, {summary['alerts']} new alerts, one digest")
                    show.line(f"   report s3://netguard-demo-reports/netguard/sweeps/{planned['sweep_id']}/summary.json"
                              f" (+ {len(summary['reports'])} part report)")
                    public_ips = ec2.describe_subnets(SubnetIds=[net.private_subnets[1]])["Subnets"][0]
                    show.line(f"   subnet {net.private_subnets[1]} MapPublicIpOnLaunch is now "
                              f"{public_ips['MapPublicIpOnLaunch']}")
        finally:
            handlers.logger.registered_handler.setStream(previous_stream)
            handlers.runtime.cache_clear()
            from chalicelib.cli import configure_logging  # noqa: PLC0415

            configure_logging(verbose=False)  # the handlers' JSON logging is for Lambda, not this terminal

        show.title("6. What AWS looks like now")
        for nb in sm.list_notebook_instances()["NotebookInstances"]:
            tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=nb["NotebookInstanceArn"])["Tags"]}
            quarantine = (f"  netguard:quarantined={tags['netguard:quarantined']}" if "netguard:quarantined" in tags
                          else "")
            show.line(f"   notebook {nb['NotebookInstanceName']:<20} {nb['NotebookInstanceStatus']:<10}{quarantine}")
        for group_id in (net.sg_jupyter, net.sg_ssh_open, net.sg_notebook_ok):
            rules = [f"{r['IpProtocol']}/{r['FromPort']} from {r.get('CidrIpv4') or r.get('CidrIpv6')}"
                     for r in ingress_rule_ids(ec2, group_id).values()]
            show.line(f"   group {group_id:<22} ingress: {', '.join(rules) or 'none'}")

        sns_alerts = drain_alerts(session.client("sqs"), queue)
        show.title(f"7. Alerts: {len(sns_alerts)} on SNS (read back from a subscribed queue), "
                   f"{len(slack.payloads)} on Slack (local webhook receiver)")
        for alert in sns_alerts:
            a = alert["attributes"]
            if a.get("kind") in ("digest", "notice"):
                show.line(f"   SNS  [digest  ] {alert['subject']}")
                continue
            show.line(f"   SNS  [{a['severity']:<8}] {a['control']:<5} action={a['action']:<10} {alert['subject']}")
        for payload in slack.payloads[:3]:
            show.line(f"   Slack: {payload['text'][:110]}")
        if len(slack.payloads) > 3:
            show.line(f"   Slack: ... and {len(slack.payloads) - 3} more, same facts as SNS")

        items = session.client("dynamodb").scan(TableName=TABLE)["Items"]
        kinds: dict[str, int] = {}
        for item in items:
            pk, sk = item["pk"]["S"], item["sk"]["S"]
            kind = pk.split("#", 1)[0] if pk.startswith(("idempotency#", "uses#", "alert#")) else sk.split("#", 1)[0]
            kinds[kind] = kinds.get(kind, 0) + 1
        show.title("8. Ledger " + TABLE + ": " + ", ".join(f"{v} {k}" for k, v in sorted(kinds.items())))
        logs = [json.loads(line) for line in engine_output.getvalue().splitlines() if line.startswith("{")]
        show.line(f"   engine output: {sum('_aws' not in x for x in logs)} JSON log lines, "
                  f"{sum('_aws' in x for x in logs)} EMF metric lines (correlation id = event id)")

        show.title("9. netguard scan --region us-east-1 (read-only) over the same account")
        from chalicelib.aws import Clients  # noqa: PLC0415
        from chalicelib.cli import build_report, render_table  # noqa: PLC0415
        from chalicelib.scan import run_scan  # noqa: PLC0415

        for key in ("NETGUARD_LEDGER_TABLE", "NETGUARD_ALERT_TOPIC_ARN", "NETGUARD_SLACK_WEBHOOK_PARAM",
                    "NETGUARD_SLACK_ALLOWED_URLS", "NETGUARD_REPORT_BUCKET", "NETGUARD_REGIONS"):
            os.environ.pop(key, None)
        result = run_scan(Clients(boto3.session.Session(region_name=region)), region)
        render_table(build_report(result.rows, result.errors, False, result.account, region), out)
        diagnose_broken_job(session, net, account, region, show, out)
    show_check(show, out)
    show.title("done: moto server, webhook receiver stopped; nothing left running")
    return 0
