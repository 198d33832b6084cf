"""`netguard restore <action-id>`: real remediations (scan --enforce, or the pipeline for an event) recorded
in a JSONL ledger file or the DynamoDB ledger, then undone from their before-state, against moto."""
from __future__ import annotations

import json

import boto3
import pytest

from chalicelib.cli import EXIT_CLEAN, EXIT_ERROR, EXIT_REFUSED, EXIT_USAGE, main
from chalicelib.ledger import MemoryLedger
from chalicelib.model import SECURITY_GROUP, EventContext, ResourceRef, Trigger
from chalicelib.pipeline import Pipeline
from chalicelib.policy import load_policy
from chalicelib.remediate import QUARANTINE_TAG
from chalicelib.restore import (
    ALREADY_RESTORED,
    FAILED,
    NOTHING_TO_RESTORE,
    REFUSED,
    RESTORED,
    WOULD_RESTORE,
    FileLedger,
    TableLedger,
    UnknownAction,
    restore_action,
)
from chalicelib.scan import run_scan
from chalicelib.settings import Settings
from conftest import TABLE, CallLog
from netguard_testkit.moto_fidelity import attach_notebook_eni, notebook_status, set_status
from netguard_testkit.moto_sagemaker import add_studio_app, job_status
from netguard_testkit.world import TAGS, create_ledger_table, create_notebook, tcp

RULE_FIELDS = ("IsEgress", "IpProtocol", "FromPort", "ToPort", "CidrIpv4", "CidrIpv6", "Description")


def rules_of(ec2, group_id):
    """The group's rules without their ids (a restored rule gets a new id), comparable as a set."""
    rules = ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [group_id]}])["SecurityGroupRules"]
    return {tuple(r.get(k) for k in RULE_FIELDS) for r in rules}


def enforce(aws, ledger_file=None):
    """`netguard scan --enforce` in the test account: the real remediations, recorded in the ledger."""
    return run_scan(aws.clients, aws.region, enforce=True, ledger_file=ledger_file)


def action_id(result, action, resource_id=None):
    ids = {o.action_id for o in result.report.outcomes
           if o.decision.action == action and o.action_id
           and (resource_id is None or o.decision.finding.resource.ref.resource_id == resource_id)}
    assert len(ids) == 1, (action, ids, [(o.decision.action, o.result, o.detail) for o in result.report.outcomes])
    return ids.pop()


@pytest.fixture
def cli_calls(monkeypatch):
    """The command builds its own boto3 session: log what it calls through botocore's event hooks."""
    log = CallLog()
    original = boto3.session.Session.__init__

    def logging_init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.events.register("before-call.*.*", log)

    monkeypatch.setattr(boto3.session.Session, "__init__", logging_init)
    return log


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def open_groups(aws, net):
    """The demo's open-SSH group, used by a notebook's network interface, plus RDP from anywhere over IPv6
    with a description: SG.1 and SG.2 fail, and netguard revokes both rules in one action."""
    ec2 = aws.client("ec2")
    attach_notebook_eni(ec2, net.private_subnets[0], [net.sg_ssh_open], "nb-ssh")
    ec2.authorize_security_group_ingress(GroupId=net.sg_ssh_open, IpPermissions=[
        {**tcp(3389, "::/0"), "Ipv6Ranges": [{"CidrIpv6": "::/0", "Description": "vendor RDP"}]}])
    return rules_of(ec2, net.sg_ssh_open)


# --- security group rules ------------------------------------------------------------------------

def test_revoked_rules_come_back_exactly_from_the_ledger_file_and_a_second_run_writes_nothing(aws, net, tmp_path,
                                                                                              open_groups):
    ec2 = aws.client("ec2")
    ledger = tmp_path / "netguard-ledger.jsonl"
    act = action_id(enforce(aws, str(ledger)), "revoke_rules")
    assert {(r[2], r[4] or r[5]) for r in rules_of(ec2, net.sg_ssh_open) if not r[0]} == set()  # both revoked
    original = [line for line in ledger.read_text().splitlines() if json.loads(line)["pk"] == f"action#{act}"]

    aws.calls.calls.clear()
    report = restore_action(FileLedger(str(ledger)), aws.clients, act, yes=True)  # SSH and RDP from anywhere
    assert report.result == RESTORED
    assert aws.calls.writes() == ["ec2:AuthorizeSecurityGroupIngress"] * 2  # one call per rule
    assert rules_of(ec2, net.sg_ssh_open) == open_groups  # same ports, CIDRs and descriptions
    assert any("SG.1" in note and "netguard:exempt='SG.1 SG.2'" in note for note in report.notes)

    aws.calls.calls.clear()
    again = restore_action(FileLedger(str(ledger)), aws.clients, act, yes=True)
    assert again.result == ALREADY_RESTORED and "already matches the before-state" in again.detail
    assert aws.calls.writes() == []
    assert rules_of(ec2, net.sg_ssh_open) == open_groups

    # both restores are new lines; the action's own line is untouched
    restores = [r for r in lines(ledger) if r["pk"] == f"action#{act}" and r["sk"].startswith("restore#")]
    assert [r["result"] for r in restores] == [RESTORED, ALREADY_RESTORED]
    assert [c["operation"] for c in restores[0]["calls"]] == ["ec2:AuthorizeSecurityGroupIngress"] * 2
    assert restores[1]["calls"] == []
    assert [line for line in ledger.read_text().splitlines() if json.loads(line)["pk"] == f"action#{act}"
            and json.loads(line)["sk"] == "action"] == original


def ledger_key(aws) -> str:
    """The stack's ledger signing key: a KMS HMAC key."""
    return aws.client("kms").create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["Arn"]


def test_restore_from_the_dynamodb_ledger_adds_a_restore_item_and_leaves_the_action_item(aws, net, open_groups,
                                                                                         monkeypatch):
    ddb = aws.client("dynamodb")
    create_ledger_table(ddb, TABLE)
    monkeypatch.setenv("NETGUARD_LEDGER_TABLE", TABLE)
    signing_key = ledger_key(aws)
    monkeypatch.setenv("NETGUARD_LEDGER_KEY_ID", signing_key)
    act = action_id(enforce(aws), "revoke_rules")
    key = {"pk": {"S": f"action#{act}"}, "sk": {"S": "action"}}
    original = ddb.get_item(TableName=TABLE, Key=key)["Item"]
    assert original["result"]["S"] == "succeeded" and original["mac"]["S"]

    ledger = TableLedger(TABLE, aws.clients.client("dynamodb", aws.region), key_id=signing_key,
                         kms=aws.client("kms"))
    report = restore_action(ledger, aws.clients, act, yes=True)
    assert report.result == RESTORED and report.recorded and report.record.signature == "signed"
    assert rules_of(aws.client("ec2"), net.sg_ssh_open) == open_groups

    assert ddb.get_item(TableName=TABLE, Key=key)["Item"] == original
    items = ddb.query(TableName=TABLE, KeyConditionExpression="pk = :pk",
                      ExpressionAttributeValues={":pk": {"S": f"action#{act}"}})["Items"]
    [restore] = [i for i in items if i["sk"]["S"].startswith("restore#")]
    assert restore["result"]["S"] == RESTORED and restore["resource"]["S"].endswith(net.sg_ssh_open)
    assert [c["operation"] for c in json.loads(restore["calls"]["S"])] == ["ec2:AuthorizeSecurityGroupIngress"] * 2
    assert int(restore["expires_at"]["N"]) > 0


def test_dry_run_prints_the_calls_and_writes_nothing(aws, net, tmp_path, open_groups):
    ledger = tmp_path / "ledger.jsonl"
    act = action_id(enforce(aws, str(ledger)), "revoke_rules")
    size = ledger.stat().st_size
    aws.calls.calls.clear()
    report = restore_action(FileLedger(str(ledger)), aws.clients, act, dry_run=True)
    assert report.result == WOULD_RESTORE
    assert aws.calls.writes() == []
    assert ledger.stat().st_size == size  # not even the ledger
    ssh = next(c for c in report.calls if c["params"]["IpPermissions"][0]["FromPort"] == 22)
    assert ssh["operation"] == "AuthorizeSecurityGroupIngress" and ssh["result"] == "would call"
    assert ssh["params"] == {"GroupId": net.sg_ssh_open, "IpPermissions": [
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]}
    assert rules_of(aws.client("ec2"), net.sg_ssh_open) != open_groups


def test_a_rule_someone_already_put_back_counts_as_restored(aws, net, tmp_path, open_groups):
    ec2 = aws.client("ec2")
    ledger = tmp_path / "ledger.jsonl"
    act = action_id(enforce(aws, str(ledger)), "revoke_rules")
    ec2.authorize_security_group_ingress(GroupId=net.sg_ssh_open, IpPermissions=[tcp(22, "0.0.0.0/0")])
    aws.calls.calls.clear()
    report = restore_action(FileLedger(str(ledger)), aws.clients, act, yes=True)  # RDP from ::/0
    assert report.result == RESTORED
    assert aws.calls.writes() == ["ec2:AuthorizeSecurityGroupIngress"]  # only the RDP rule
    assert any("ingress tcp 22 from 0.0.0.0/0 exists" in line for line in report.unchanged)
    assert rules_of(ec2, net.sg_ssh_open) == open_groups


# --- attributes ----------------------------------------------------------------------------------

def test_vpc_dns_hostnames_go_back_to_false_and_dns_support_is_left_on(aws, net, tmp_path):
    ec2 = aws.client("ec2")
    attach_notebook_eni(ec2, net.private_subnets[0], [net.sg_notebook_ok], "nb")
    ec2.modify_vpc_attribute(VpcId=net.vpc_id, EnableDnsHostnames={"Value": False})
    ledger = tmp_path / "ledger.jsonl"
    act = action_id(enforce(aws, str(ledger)), "enable_vpc_dns")
    assert ec2.describe_vpc_attribute(VpcId=net.vpc_id, Attribute="enableDnsHostnames")["EnableDnsHostnames"]["Value"]

    aws.calls.calls.clear()
    report = restore_action(FileLedger(str(ledger)), aws.clients, act)
    assert report.result == RESTORED
    assert aws.calls.writes() == ["ec2:ModifyVpcAttribute"]
    assert report.calls[0]["params"] == {"VpcId": net.vpc_id, "EnableDnsHostnames": {"Value": False}}
    hostnames = ec2.describe_vpc_attribute(VpcId=net.vpc_id, Attribute="enableDnsHostnames")["EnableDnsHostnames"]
    support = ec2.describe_vpc_attribute(VpcId=net.vpc_id, Attribute="enableDnsSupport")["EnableDnsSupport"]
    assert hostnames["Value"] is False and support["Value"] is True
    assert "EnableDnsSupport is True" in report.unchanged

    aws.calls.calls.clear()
    assert restore_action(FileLedger(str(ledger)), aws.clients, act).result == ALREADY_RESTORED
    assert aws.calls.writes() == []


def test_subnet_maps_public_ips_on_launch_again(aws, net, tmp_path):
    ec2 = aws.client("ec2")
    subnet = net.private_subnets[0]
    attach_notebook_eni(ec2, subnet, [net.sg_notebook_ok], "nb")
    ec2.modify_subnet_attribute(SubnetId=subnet, MapPublicIpOnLaunch={"Value": True})
    ledger = tmp_path / "ledger.jsonl"
    act = action_id(enforce(aws, str(ledger)), "disable_public_ip_on_launch", subnet)
    assert ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["MapPublicIpOnLaunch"] is False

    aws.calls.calls.clear()
    assert restore_action(FileLedger(str(ledger)), aws.clients, act).result == RESTORED
    assert aws.calls.writes() == ["ec2:ModifySubnetAttribute"]
    assert ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["MapPublicIpOnLaunch"] is True


def test_interface_endpoint_private_dns_goes_back_off(aws, net, tmp_path):
    ec2 = aws.client("ec2")
    endpoint = next(e["VpcEndpointId"] for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]
                    if e["ServiceName"].endswith(".sts"))
    ec2.modify_vpc_endpoint(VpcEndpointId=endpoint, PrivateDnsEnabled=False)
    ledger = tmp_path / "ledger.jsonl"
    act = action_id(enforce(aws, str(ledger)), "enable_private_dns", endpoint)
    aws.calls.calls.clear()
    assert restore_action(FileLedger(str(ledger)), aws.clients, act).result == RESTORED
    assert aws.calls.writes() == ["ec2:ModifyVpcEndpoint"]
    assert ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint])["VpcEndpoints"][0]["PrivateDnsEnabled"] is False


def test_studio_domain_goes_back_to_public_internet_only_once_no_app_runs(aws, net, tmp_path, capsys):
    sm = aws.client("sagemaker")
    domain = sm.create_domain(DomainName="studio", AuthMode="IAM", VpcId=net.vpc_id,
                              SubnetIds=list(net.private_subnets), AppNetworkAccessType="PublicInternetOnly",
                              DefaultUserSettings={"ExecutionRole": f"arn:aws:iam::{aws.account}:role/sm",
                                                   "SecurityGroups": [net.sg_notebook_ok]},
                              Tags=[{"Key": k, "Value": v} for k, v in TAGS.items()])["DomainArn"].rsplit("/", 1)[1]
    ledger = tmp_path / "ledger.jsonl"
    act = action_id(enforce(aws, str(ledger)), "domain_vpc_only", domain)
    assert sm.describe_domain(DomainId=domain)["AppNetworkAccessType"] == "VpcOnly"

    # AWS refuses while an app runs: the restore fails with AWS's error (exit 3), and it is recorded
    add_studio_app(aws.account, aws.region, domain, "lab", status="InService")
    assert main(["restore", act, "--ledger-file", str(ledger)]) == EXIT_ERROR
    out = capsys.readouterr().out
    assert "result    failed: UpdateDomain: ResourceInUse: AppNetworkAccessType of domain" in out
    assert "  failed     sagemaker:UpdateDomain" in out and "note: apps lab run" in out
    assert sm.describe_domain(DomainId=domain)["AppNetworkAccessType"] == "VpcOnly"
    assert [r["result"] for r in lines(ledger) if r["sk"].startswith("restore#")] == [FAILED]

    add_studio_app(aws.account, aws.region, domain, "lab", status="Deleted")
    aws.calls.calls.clear()
    assert restore_action(FileLedger(str(ledger)), aws.clients, act).result == RESTORED
    assert aws.calls.writes() == ["sagemaker:UpdateDomain"]
    assert sm.describe_domain(DomainId=domain)["AppNetworkAccessType"] == "PublicInternetOnly"


# --- tags and notebooks --------------------------------------------------------------------------

def owner_action(aws, net, ledger_file):
    """An untagged group created by alice: the event's pipeline tags Owner=alice (TAG.1)."""
    ec2 = aws.client("ec2")
    group = ec2.create_security_group(GroupName="adhoc", Description="adhoc", VpcId=net.vpc_id)["GroupId"]
    context = EventContext("evt-owner", "api-call", "CreateSecurityGroup", f"arn:aws:iam::{aws.account}:user/alice")
    pipeline = Pipeline(load_policy(), Settings.from_env(), aws.clients, MemoryLedger(ledger_file), None)
    report = pipeline.run(Trigger(context, (ResourceRef(SECURITY_GROUP, group, aws.account, aws.region),)))
    [act] = {o.action_id for o in report.outcomes if o.decision.action == "tag_owner"}
    return group, act


def tags_of(ec2, group):
    described = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"][0]
    return {t["Key"]: t["Value"] for t in described.get("Tags", [])}


def test_the_owner_tag_netguard_added_is_removed(aws, net, tmp_path):
    ec2 = aws.client("ec2")
    ledger = tmp_path / "ledger.jsonl"
    group, act = owner_action(aws, net, str(ledger))
    assert tags_of(ec2, group) == {"Owner": f"arn:aws:iam::{aws.account}:user/alice"}
    aws.calls.calls.clear()
    assert restore_action(FileLedger(str(ledger)), aws.clients, act).result == RESTORED
    assert aws.calls.writes() == ["ec2:DeleteTags"]
    assert "Owner" not in tags_of(ec2, group)
    aws.calls.calls.clear()
    assert restore_action(FileLedger(str(ledger)), aws.clients, act).result == ALREADY_RESTORED
    assert aws.calls.writes() == []


def test_an_owner_tag_someone_set_after_netguard_is_left(aws, net, tmp_path):
    ec2 = aws.client("ec2")
    ledger = tmp_path / "ledger.jsonl"
    group, act = owner_action(aws, net, str(ledger))
    ec2.create_tags(Resources=[group], Tags=[{"Key": "Owner", "Value": "team-data@example.com"}])
    aws.calls.calls.clear()
    report = restore_action(FileLedger(str(ledger)), aws.clients, act)
    assert report.result == ALREADY_RESTORED and "changed since" in report.unchanged[0]
    assert aws.calls.writes() == []
    assert tags_of(ec2, group)["Owner"] == "team-data@example.com"


def test_quarantine_tag_is_removed_and_the_notebook_starts_only_with_start_from_stopped(aws, net, tmp_path):
    sm = aws.client("sagemaker")
    arn = create_notebook(sm, aws.account, "nb-open", net.private_subnets[0], [net.sg_notebook_ok])  # direct internet
    set_status(aws.account, aws.region, "nb-open", "InService")
    ledger = tmp_path / "ledger.jsonl"
    act = action_id(enforce(aws, str(ledger)), "quarantine_notebook")
    assert notebook_status(aws.account, aws.region, "nb-open") == "Stopping"

    aws.calls.calls.clear()
    report = restore_action(FileLedger(str(ledger)), aws.clients, act)
    assert report.result == RESTORED
    assert aws.calls.writes() == ["sagemaker:DeleteTags"]
    assert QUARANTINE_TAG not in {t["Key"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}
    assert any("not started" in n and "--start" in n for n in report.notes)

    # --start while it is still Stopping: nothing to start yet, and it says so
    aws.calls.calls.clear()
    report = restore_action(FileLedger(str(ledger)), aws.clients, act, start=True)
    assert aws.calls.writes() == [] and any("only from Stopped" in n for n in report.notes)

    set_status(aws.account, aws.region, "nb-open", "Stopped")
    aws.calls.calls.clear()
    assert restore_action(FileLedger(str(ledger)), aws.clients, act, start=True).result == RESTORED
    assert aws.calls.writes() == ["sagemaker:StartNotebookInstance"]
    assert notebook_status(aws.account, aws.region, "nb-open") == "Pending"

    aws.calls.calls.clear()
    assert restore_action(FileLedger(str(ledger)), aws.clients, act, start=True).result == ALREADY_RESTORED
    assert aws.calls.writes() == []


# --- what cannot be undone -----------------------------------------------------------------------

def test_a_stopped_job_is_refused_with_the_reason_and_exit_4(aws, net, tmp_path, capsys, cli_calls):
    aws.client("sagemaker").create_training_job(
        TrainingJobName="train-open", RoleArn=f"arn:aws:iam::{aws.account}:role/sagemaker",
        AlgorithmSpecification={"TrainingImage": "123.dkr.ecr.us-east-1.amazonaws.com/x:1",
                                "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": "s3://b/out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
        VpcConfig={"SecurityGroupIds": [net.sg_notebook_ok], "Subnets": list(net.private_subnets)},
        EnableNetworkIsolation=False, Tags=[{"Key": k, "Value": v} for k, v in TAGS.items()])
    ledger = tmp_path / "ledger.jsonl"
    act = action_id(enforce(aws, str(ledger)), "stop_job")
    assert job_status(aws.account, aws.region, "training", "train-open") == "Stopping"
    assert main(["restore", act, "--ledger-file", str(ledger), "--region", aws.region]) == EXIT_REFUSED
    out = capsys.readouterr().out
    assert "refused: SageMaker cannot restart a stopped job" in out
    assert cli_calls.calls and cli_calls.writes() == []
    assert [r["result"] for r in lines(ledger) if r["sk"].startswith("restore#")] == [REFUSED]


def flow_log_action(aws, net, ledger):
    ec2 = aws.client("ec2")
    attach_notebook_eni(ec2, net.private_subnets[0], [net.sg_notebook_ok], "nb")
    [demo] = ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [net.vpc_id]}])["FlowLogs"]
    ec2.delete_flow_logs(FlowLogIds=[demo["FlowLogId"]])
    act = action_id(enforce(aws, str(ledger)), "create_flow_log_all")
    [created] = ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [net.vpc_id]}])["FlowLogs"]
    return act, created["FlowLogId"]


def test_the_flow_log_netguard_created_is_deleted(aws, net, tmp_path):
    ec2 = aws.client("ec2")
    ledger = tmp_path / "ledger.jsonl"
    act, flow_log = flow_log_action(aws, net, ledger)
    aws.calls.calls.clear()
    report = restore_action(FileLedger(str(ledger)), aws.clients, act)
    assert report.result == RESTORED and report.calls[0]["params"] == {"FlowLogIds": [flow_log]}
    assert aws.calls.writes() == ["ec2:DeleteFlowLogs"]
    assert ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [net.vpc_id]}])["FlowLogs"] == []
    aws.calls.calls.clear()
    assert restore_action(FileLedger(str(ledger)), aws.clients, act).result == ALREADY_RESTORED
    assert aws.calls.writes() == []


def test_a_created_flow_log_without_netguards_tag_is_not_deleted(aws, net, tmp_path):
    ec2 = aws.client("ec2")
    ledger = tmp_path / "ledger.jsonl"
    act, flow_log = flow_log_action(aws, net, ledger)
    ec2.delete_tags(Resources=[flow_log], Tags=[{"Key": "netguard:created-by"}])
    aws.calls.calls.clear()
    report = restore_action(FileLedger(str(ledger)), aws.clients, act)
    assert report.result == REFUSED and "netguard:created-by" in report.detail
    assert aws.calls.writes() == []
    assert len(ec2.describe_flow_logs(FlowLogIds=[flow_log])["FlowLogs"]) == 1


def test_the_s3_gateway_endpoint_netguard_created_is_deleted(aws, net, tmp_path):
    ec2 = aws.client("ec2")
    attach_notebook_eni(ec2, net.private_subnets[0], [net.sg_notebook_ok], "nb")
    [s3] = [e["VpcEndpointId"] for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]
            if e["ServiceName"].endswith(".s3")]
    ec2.delete_vpc_endpoints(VpcEndpointIds=[s3])
    ledger = tmp_path / "ledger.jsonl"
    act = action_id(enforce(aws, str(ledger)), "create_s3_gateway_endpoint")
    [created] = [e for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]
                 if e["ServiceName"].endswith(".s3") and e["State"].lower() != "deleted"]
    aws.calls.calls.clear()
    assert restore_action(FileLedger(str(ledger)), aws.clients, act).result == RESTORED
    assert aws.calls.writes() == ["ec2:DeleteVpcEndpoints"]
    state = ec2.describe_vpc_endpoints(VpcEndpointIds=[created["VpcEndpointId"]])["VpcEndpoints"]
    assert not state or state[0]["State"].lower() == "deleted"


@pytest.mark.parametrize("result, detail, expected", [
    ("failed", "RevokeSecurityGroupIngress: UnauthorizedOperation: no", REFUSED),
    ("started", "", REFUSED),
    ("already-done", "rules already revoked: sgr-1", NOTHING_TO_RESTORE),
])
def test_an_action_that_changed_nothing_is_not_restored(aws, net, tmp_path, result, detail, expected):
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text(json.dumps({
        "pk": "action#act-x", "sk": "action", "action": "revoke_rules", "result": result, "detail": detail,
        "resource": f"{aws.account}#{aws.region}#{SECURITY_GROUP}#{net.sg_ssh_open}", "controls": ["SG.1"],
        "before": {"GroupId": net.sg_ssh_open, "Rules": [{"SecurityGroupRuleId": "sgr-1", "IsEgress": False,
                                                          "IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
                                                          "CidrIpv4": "0.0.0.0/0"}]}}) + "\n")
    aws.calls.calls.clear()
    report = restore_action(FileLedger(str(ledger)), aws.clients, "act-x")
    assert report.result == expected and aws.calls.writes() == []
    assert (result in report.detail) if expected == REFUSED else ("changed nothing" in report.detail)


# --- the command ---------------------------------------------------------------------------------

def test_unknown_action_id_or_no_ledger_is_a_usage_error(aws, tmp_path, capsys):
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text("")
    assert main(["restore", "act-nope", "--ledger-file", str(ledger)]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == "" and f"no action act-nope in the ledger file {ledger}" in captured.err
    assert main(["restore", "act-nope", "--ledger-file", str(tmp_path / "missing.jsonl")]) == EXIT_USAGE
    assert "no ledger file" in capsys.readouterr().err
    with pytest.raises(UnknownAction):
        restore_action(FileLedger(str(ledger)), aws.clients, "act-nope")
    assert main(["restore"]) == EXIT_USAGE


def test_an_action_in_another_account_needs_its_credentials(aws, net, tmp_path, capsys):
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text(json.dumps({"pk": "action#act-y", "sk": "action", "action": "revoke_rules",
                                  "resource": f"111111111111#{aws.region}#{SECURITY_GROUP}#sg-0123456789abcdef0",
                                  "result": "succeeded", "before": {"Rules": []}}) + "\n")
    assert main(["restore", "act-y", "--ledger-file", str(ledger)]) == EXIT_USAGE
    assert "acted in account 111111111111" in capsys.readouterr().err


def test_the_command_restores_then_says_already_restored(aws, net, tmp_path, capsys, open_groups, cli_calls):
    ledger = tmp_path / "ledger.jsonl"
    act = action_id(enforce(aws, str(ledger)), "revoke_rules")
    cli_calls.calls.clear()
    assert main(["restore", act, "--ledger-file", str(ledger), "--dry-run", "--format", "json"]) == EXIT_CLEAN
    assert cli_calls.writes() == []
    planned = json.loads(capsys.readouterr().out)
    assert planned["result"] == WOULD_RESTORE and planned["dry_run"] and not planned["recorded"]
    assert rules_of(aws.client("ec2"), net.sg_ssh_open) != open_groups

    assert "the restore needs --yes" in " ".join(planned["notes"])
    cli_calls.calls.clear()
    assert main(["restore", act, "--ledger-file", str(ledger), "--format", "json"]) == EXIT_REFUSED
    refused = json.loads(capsys.readouterr().out)
    assert "to the internet: pass --yes" in refused["detail"] and cli_calls.writes() == []
    assert refused["alerted"] == ["not alerted: no alert channel configured (NETGUARD_ALERT_TOPIC_ARN, "
                                  "NETGUARD_SLACK_WEBHOOK_PARAM)"]
    cli_calls.calls.clear()
    assert main(["restore", act, "--ledger-file", str(ledger), "--yes", "--format", "json"]) == EXIT_CLEAN
    assert cli_calls.writes() == ["ec2:AuthorizeSecurityGroupIngress"] * 2
    report = json.loads(capsys.readouterr().out)  # stdout is exactly the report
    assert report["result"] == RESTORED and report["action"] == "revoke_rules" and report["recorded"]
    assert report["resource"]["id"] == net.sg_ssh_open and report["controls"] == ["SG.1", "SG.2"]
    assert {c["result"] for c in report["calls"]} == {"done"}
    assert rules_of(aws.client("ec2"), net.sg_ssh_open) == open_groups

    cli_calls.calls.clear()
    assert main(["restore", act, "--ledger-file", str(ledger), "--yes"]) == EXIT_CLEAN
    assert cli_calls.writes() == []
    out = capsys.readouterr().out
    assert f"action    {act} revoke_rules (SG.1, SG.2): succeeded" in out
    assert "result    already restored: nothing written" in out
    assert "unchanged  ingress tcp 22 from 0.0.0.0/0 exists" in out
