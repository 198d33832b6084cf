"""The field guide's secure production architecture is compliant; one deviation at a time makes
exactly the expected controls fail on exactly the expected resources, and `scan --enforce` fixes
it where a remediation exists.

Every control of BASELINE.md: NB.1-4, JOB.1-4, MD.1-2, EP.1-3, DM.1-2, VPC.1-11, SG.1-5, TAG.1.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.aws import Clients
from chalicelib.scan import run_scan
from netguard_testkit.moto_fidelity import aws_like_notebooks, notebook_status, set_status
from netguard_testkit.moto_sagemaker import add_studio_app, aws_like_sagemaker, job_status
from netguard_testkit.secure_world import SecureWorld, build_secure_world
from netguard_testkit.world import remove_default_vpc, tcp

REGION = "us-east-1"


@dataclass
class World:
    session: Any
    w: SecureWorld

    def client(self, service: str) -> Any:
        return self.session.client(service, region_name=REGION)

    def scan(self, enforce: bool = False, tmp_path=None) -> list[dict[str, Any]]:
        ledger = str(tmp_path / "ledger.jsonl") if tmp_path else None
        result = run_scan(Clients(self.session), REGION, enforce=enforce, ledger_file=ledger)
        assert not result.errors, result.errors
        return result.rows


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws(), aws_like_notebooks(), aws_like_sagemaker():
        session = boto3.session.Session(region_name=REGION)
        remove_default_vpc(session.client("ec2"))
        account = session.client("sts").get_caller_identity()["Account"]
        yield World(session, build_secure_world(session, account, REGION, with_public_subnet=True))


def failing(rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(r["control"], r["resource_id"]) for r in rows if r["status"] == "NON_COMPLIANT"}


def test_the_secure_architecture_has_no_violation(world):
    rows = world.scan()
    assert failing(rows) == set()
    kinds = {r["resource_type"].rsplit("::", 1)[-1] for r in rows}
    assert kinds >= {"NotebookInstance", "TrainingJob", "ProcessingJob", "HyperParameterTuningJob", "TransformJob",
                     "Model", "EndpointConfig", "Endpoint", "Domain", "MountTarget", "VPC", "Subnet", "SecurityGroup"}
    evaluated = {r["control"] for r in rows if r["status"] == "COMPLIANT"}
    assert evaluated >= {"NB.1", "NB.2", "NB.3", "NB.4", "JOB.1", "JOB.2", "JOB.3", "JOB.4", "MD.1", "MD.2", "EP.1",
                         "EP.2", "EP.3", "EFS.1", "DM.1", "DM.2", "VPC.1", "VPC.2", "VPC.4", "VPC.5", "VPC.6",
                         "VPC.7", "VPC.8",
                         "VPC.10", "VPC.11", "SG.4",
                         "VPC.3", "VPC.9", "SG.1", "SG.2", "SG.3", "SG.5", "TAG.1"}


# --- one deviation per control -----------------------------------------------------------------

def _notebook(x: World, name: str, subnet: str | None, **kw: Any) -> str:
    params = {"NotebookInstanceName": name, "InstanceType": "ml.t3.medium", "RoleArn": x.w.sagemaker_role_arn,
              "DirectInternetAccess": "Disabled", "RootAccess": "Disabled", "Tags": x.w.tag_list, **kw}
    if subnet:
        params.update(SubnetId=subnet, SecurityGroupIds=[x.w.sg_notebook])
    x.client("sagemaker").create_notebook_instance(**params)
    set_status(x.w.account, REGION, name, "InService")
    return name


def _training(x: World, name: str, **changes: Any) -> str:
    params = {
        "TrainingJobName": name, "RoleArn": x.w.sagemaker_role_arn,
        "AlgorithmSpecification": {"TrainingImage": "123.dkr.ecr.us-east-1.amazonaws.com/x:1",
                                   "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": "s3://b/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 2, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "VpcConfig": {"SecurityGroupIds": [x.w.sg_training], "Subnets": list(x.w.private_subnet_ids)},
        "EnableNetworkIsolation": True, "EnableInterContainerTrafficEncryption": True, "Tags": x.w.tag_list,
    }
    for key, value in changes.items():
        if value is None:
            params.pop(key)
        else:
            params[key] = value
    x.client("sagemaker").create_training_job(**params)
    return name


def dev_nb1(x):
    return {("NB.1", _notebook(x, "nb-internet", x.w.private_subnet_ids[0], DirectInternetAccess="Enabled"))}


def dev_nb2(x):  # AWS only allows DirectInternetAccess=Disabled with a subnet: NB.1 comes with NB.2
    name = _notebook(x, "nb-novpc", None, DirectInternetAccess="Enabled")
    return {("NB.1", name), ("NB.2", name)}


def dev_nb3(x):
    return {("NB.3", _notebook(x, "nb-public", x.w.public_subnet_id))}


def dev_nb4(x):
    return {("NB.4", _notebook(x, "nb-root", x.w.private_subnet_ids[0], RootAccess="Enabled"))}


def dev_job1(x):
    return {("JOB.1", _training(x, "train-open", EnableNetworkIsolation=False))}


def dev_job2(x):  # without a VPC there are no zones to count: JOB.4 is not applicable
    return {("JOB.2", _training(x, "train-novpc", VpcConfig=None))}


def dev_job3(x):
    return {("JOB.3", _training(x, "train-clear", EnableInterContainerTrafficEncryption=False))}


def dev_job4(x):
    one_az = {"SecurityGroupIds": [x.w.sg_training], "Subnets": [x.w.private_subnet_ids[0]]}
    return {("JOB.4", _training(x, "train-one-az", VpcConfig=one_az))}


def dev_vpc1(x):
    x.client("ec2").modify_vpc_attribute(VpcId=x.w.vpc_id, EnableDnsSupport={"Value": False})
    return {("VPC.1", x.w.vpc_id)}


def dev_vpc2(x):
    x.client("ec2").modify_vpc_attribute(VpcId=x.w.vpc_id, EnableDnsHostnames={"Value": False})
    return {("VPC.2", x.w.vpc_id)}


def dev_vpc3(x):
    x.client("ec2").delete_flow_logs(FlowLogIds=[x.w.flow_log_id])
    return {("VPC.3", x.w.vpc_id)}


def dev_vpc9(x):  # a public-IP subnet is also a public subnet for everything in it
    subnet = x.w.private_subnet_ids[1]
    x.client("ec2").modify_subnet_attribute(SubnetId=subnet, MapPublicIpOnLaunch={"Value": True})
    return {("VPC.9", subnet), ("JOB.2", x.w.training_job_name), ("JOB.2", x.w.processing_job_name),
            ("JOB.2", x.w.tuning_job_name), ("JOB.2", x.w.transform_job_name), ("MD.2", x.w.model_name),
            ("DM.2", x.w.domain_id), ("EFS.1", x.w.home_efs_mount_target_ids[1])}  # Studio's home EFS in it


def dev_sg1(x):
    x.client("ec2").authorize_security_group_ingress(GroupId=x.w.sg_endpoint, IpPermissions=[tcp(22, "0.0.0.0/0")])
    return {("SG.1", x.w.sg_endpoint)}


def dev_sg2(x):
    x.client("ec2").authorize_security_group_ingress(GroupId=x.w.sg_notebook, IpPermissions=[tcp(8888, x.w.vpc_cidr)])
    return {("SG.2", x.w.sg_notebook)}


def dev_sg3(x):
    x.client("ec2").authorize_security_group_egress(
        GroupId=x.w.sg_training, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    return {("SG.3", x.w.sg_training)}


def dev_sg5(x):
    x.client("ec2").authorize_security_group_ingress(GroupId=x.w.default_security_group_id,
                                                     IpPermissions=[tcp(443, x.w.vpc_cidr)])
    return {("SG.5", x.w.default_security_group_id)}


def dev_tag1(x):
    subnet = x.w.private_subnet_ids[0]
    x.client("ec2").delete_tags(Resources=[subnet], Tags=[{"Key": "CostCenter"}])
    return {("TAG.1", subnet)}


def _model(x: World, name: str, **changes: Any) -> str:
    params = {"ModelName": name, "ExecutionRoleArn": x.w.sagemaker_role_arn,
              "PrimaryContainer": {"Image": "123.dkr.ecr.us-east-1.amazonaws.com/x:1"},
              "VpcConfig": {"Subnets": list(x.w.private_subnet_ids), "SecurityGroupIds": [x.w.sg_endpoint]},
              "EnableNetworkIsolation": True, "Tags": x.w.tag_list}
    params.update(changes)
    params = {k: v for k, v in params.items() if v is not None}
    x.client("sagemaker").create_model(**params)
    return name


def _endpoint_config(x: World, name: str, model: str, count: int, key: str | None = "world") -> str:
    key_id = {"KmsKeyId": x.w.endpoint_key_arn if key == "world" else key} if key else {}
    x.client("sagemaker").create_endpoint_config(EndpointConfigName=name, Tags=x.w.tag_list, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": model, "InstanceType": "ml.m5.large",
        "InitialInstanceCount": count, "InitialVariantWeight": 1.0}], **key_id)
    return name


def dev_md1(x):
    return {("MD.1", _model(x, "m-open", EnableNetworkIsolation=False))}


def dev_md2(x):
    return {("MD.2", _model(x, "m-novpc", VpcConfig=None))}


def dev_ep1(x):
    return {("EP.1", _endpoint_config(x, "c-single", x.w.model_name, 1))}


def dev_ep2(x):  # a model in one private subnet is compliant itself; the endpoint serving it is not
    one_az = {"Subnets": [x.w.private_subnet_ids[0]], "SecurityGroupIds": [x.w.sg_endpoint]}
    model = _model(x, "m-one-az", VpcConfig=one_az)
    config = _endpoint_config(x, "c-one-az", model, 2)
    x.client("sagemaker").create_endpoint(EndpointName="e-one-az", EndpointConfigName=config, Tags=x.w.tag_list)
    return {("EP.2", "e-one-az")}


def dev_ep3(x):  # the instances' volumes under the AWS managed key: by default, and when named
    return {("EP.3", _endpoint_config(x, "c-default-key", x.w.model_name, 2, key=None)),
            ("EP.3", _endpoint_config(x, "c-aws-key", x.w.model_name, 2, key="alias/aws/sagemaker"))}


def dev_dm1(x):
    x.client("sagemaker").update_domain(DomainId=x.w.domain_id, AppNetworkAccessType="PublicInternetOnly")
    return {("DM.1", x.w.domain_id)}


def dev_dm2(x):
    domain = x.client("sagemaker").create_domain(
        DomainName="studio-public", AuthMode="IAM", VpcId=x.w.vpc_id, SubnetIds=[x.w.public_subnet_id],
        AppNetworkAccessType="VpcOnly", Tags=x.w.tag_list,
        DefaultUserSettings={"ExecutionRole": x.w.sagemaker_role_arn, "SecurityGroups": [x.w.sg_studio]})
    return {("DM.2", domain["DomainArn"].rsplit("/", 1)[1])}


def dev_vpc4_s3(x):
    x.client("ec2").delete_vpc_endpoints(VpcEndpointIds=[x.w.s3_gateway_endpoint_id])
    return {("VPC.4", x.w.vpc_id)}


def dev_vpc4_interface(x):
    x.client("ec2").delete_vpc_endpoints(VpcEndpointIds=[x.w.interface_endpoints["sts"]])
    return {("VPC.4", x.w.vpc_id)}


def dev_vpc5(x):
    endpoint = x.w.interface_endpoints["logs"]
    x.client("ec2").modify_vpc_endpoint(VpcEndpointId=endpoint, RemoveSubnetIds=[x.w.private_subnet_ids[1]])
    return {("VPC.5", endpoint)}


def dev_vpc6(x):
    endpoint = x.w.interface_endpoints["sagemaker.api"]
    x.client("ec2").modify_vpc_endpoint(VpcEndpointId=endpoint, PrivateDnsEnabled=False)
    return {("VPC.6", endpoint)}


def dev_vpc7(x):
    endpoint = x.w.interface_endpoints["sts"]
    x.client("ec2").modify_vpc_endpoint(VpcEndpointId=endpoint, AddSecurityGroupIds=[x.w.sg_notebook],
                                        RemoveSecurityGroupIds=[x.w.sg_vpc_endpoint])
    return {("VPC.7", endpoint), ("SG.4", x.w.sg_notebook)}  # the notebook group now serves two functions


def dev_vpc8(x):
    endpoint = x.w.interface_endpoints["ecr.api"]
    full_access = '{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]}'
    x.client("ec2").modify_vpc_endpoint(VpcEndpointId=endpoint, PolicyDocument=full_access)
    return {("VPC.8", endpoint)}


def dev_vpc10(x):
    ec2 = x.client("ec2")
    subnet = x.w.private_subnet_ids[0]
    assoc = ec2.describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": [subnet]}])["NetworkAcls"][0]
    assoc_id = next(a["NetworkAclAssociationId"] for a in assoc["Associations"] if a["SubnetId"] == subnet)
    ec2.replace_network_acl_association(AssociationId=assoc_id, NetworkAclId=x.w.default_network_acl_id)
    return {("VPC.10", subnet)}


def dev_vpc11(x):
    dev_tags = [t if t["Key"] != "Environment" else {"Key": "Environment", "Value": "dev"} for t in x.w.tag_list]
    _notebook(x, "nb-dev", x.w.private_subnet_ids[0], Tags=dev_tags)
    return {("VPC.11", x.w.vpc_id)}


def dev_sg4(x):
    from netguard_testkit.secure_world import attach_sagemaker_eni

    attach_sagemaker_eni(x.client("ec2"), x.w.private_subnet_ids[0], [x.w.sg_training], "SageMaker notebook instance x")
    # a notebook now uses the training group: two functions, and notebook ingress rules it does not meet
    return {("SG.4", x.w.sg_training), ("SG.2", x.w.sg_training)}


# (deviation, check that --enforce fixed it, or None where the control is alert-only or cannot fix this)
def _nb_stopped(name):
    return lambda x: notebook_status(x.w.account, REGION, name) == "Stopping"


def _job_stopped(name):
    return lambda x: job_status(x.w.account, REGION, "training", name) == "Stopping"


DEVIATIONS: list[tuple[str, Callable, Callable | None]] = [
    ("NB.1", dev_nb1, _nb_stopped("nb-internet")),
    ("NB.2", dev_nb2, _nb_stopped("nb-novpc")),
    ("NB.3", dev_nb3, _nb_stopped("nb-public")),
    ("NB.4", dev_nb4, None),  # alert by default
    ("JOB.1", dev_job1, _job_stopped("train-open")),
    ("JOB.2", dev_job2, _job_stopped("train-novpc")),
    ("JOB.3", dev_job3, _job_stopped("train-clear")),
    ("JOB.4", dev_job4, None),  # alert-only: no remediation
    ("MD.1", dev_md1, None),  # alert-only: a model is immutable
    ("MD.2", dev_md2, None),
    ("EP.1", dev_ep1, None),
    ("EP.2", dev_ep2, None),
    ("EP.3", dev_ep3, None),  # alert-only: an endpoint configuration is immutable
    ("DM.1", dev_dm1, "fixed"),
    ("DM.2", dev_dm2, None),
    ("VPC.1", dev_vpc1, "fixed"),
    ("VPC.2", dev_vpc2, "fixed"),
    ("VPC.3", dev_vpc3, "fixed"),
    ("VPC.4 (S3 gateway)", dev_vpc4_s3, "fixed"),
    ("VPC.4 (interface)", dev_vpc4_interface, None),  # interface endpoints cost money: alert with guidance
    ("VPC.5", dev_vpc5, None),
    ("VPC.6", dev_vpc6, "fixed"),
    ("VPC.7", dev_vpc7, None),
    ("VPC.8", dev_vpc8, None),
    ("VPC.9", dev_vpc9, None),
    ("VPC.10", dev_vpc10, None),
    ("VPC.11", dev_vpc11, None),
    ("SG.4", dev_sg4, None),  # the subnet is fixed, the jobs in it were stopped: checked below
    ("SG.1", dev_sg1, "fixed"),
    ("SG.2", dev_sg2, "fixed"),
    ("SG.3", dev_sg3, None),  # alert-only
    ("SG.5", dev_sg5, "fixed"),
    ("TAG.1", dev_tag1, None),  # a scan names no principal to take the Owner from; the key is not Owner anyway
]


@pytest.mark.parametrize("control, deviate, fixed", DEVIATIONS, ids=[d[0] for d in DEVIATIONS])
def test_one_deviation_fails_exactly_the_expected_control_and_enforce_fixes_it(world, tmp_path, control, deviate,
                                                                               fixed):
    expected = deviate(world)
    assert failing(world.scan()) == expected
    after = world.scan(enforce=True, tmp_path=tmp_path)
    if fixed == "fixed":  # the resource itself was repaired: a fresh scan finds nothing
        assert failing(world.scan()) == set()
    elif callable(fixed):  # contained: the job or notebook was stopped (its settings are immutable)
        assert fixed(world)
        acted = {(r["control"], r["resource_id"]) for r in after if (r["decision"] or {}).get("result") == "succeeded"}
        assert acted == expected
    else:
        results = {(r["decision"] or {}).get("result") for r in after if r["status"] == "NON_COMPLIANT"
                   and r["control"] == control.split()[0]}
        assert "succeeded" not in results or control == "VPC.9"
    if control == "VPC.9":
        assert world.client("ec2").describe_subnets(SubnetIds=[world.w.private_subnet_ids[1]])["Subnets"][0][
            "MapPublicIpOnLaunch"] is False
        assert job_status(world.w.account, REGION, "training", world.w.training_job_name) == "Stopping"


def test_a_domain_with_running_apps_is_deferred_not_changed(world, tmp_path):
    """AWS refuses UpdateDomain(AppNetworkAccessType) while apps run: netguard defers and says why."""
    world.client("sagemaker").update_domain(DomainId=world.w.domain_id, AppNetworkAccessType="PublicInternetOnly")
    add_studio_app(world.w.account, REGION, world.w.domain_id, "datascience-app", status="InService")
    rows = world.scan(enforce=True, tmp_path=tmp_path)
    [dm1] = [r for r in rows if r["control"] == "DM.1" and r["status"] == "NON_COMPLIANT"]
    assert dm1["decision"]["kind"] == "deferred" and "running" in dm1["decision"]["reason"]
    domain = world.client("sagemaker").describe_domain(DomainId=world.w.domain_id)
    assert domain["AppNetworkAccessType"] == "PublicInternetOnly"


def test_scan_json_reports_every_control_of_the_baseline_on_a_mixed_world(world, capsys):
    """The secure world plus one violation of each family: every control id appears in the report."""
    import json
    import re
    from pathlib import Path

    from chalicelib.cli import main

    for deviate in (dev_nb2, dev_nb4, dev_job3, dev_md2, dev_ep1, dev_dm1, dev_vpc5, dev_sg2, dev_vpc11):
        deviate(world)
    assert main(["scan", "--region", REGION, "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    baseline = Path(__file__).resolve().parents[3] / "shared" / "BASELINE.md"
    if not baseline.exists():
        pytest.skip("the product spec ../shared/BASELINE.md is not beside this checkout")
    ids = set(re.findall(r"^\| ((?:NB|JOB|MD|EP|DM|VPC|SG|TAG)\.\d+) \|", baseline.read_text(), re.M))
    assert len(ids) == 31
    # every control of the baseline, and those netguard adds beyond it (EP.3, EFS.1, issue 12): all of the policy
    from chalicelib.policy import load_policy

    controls = {c.id for c in load_policy().controls}
    assert ids <= controls and controls - ids == {"EP.3", "EFS.1"}
    assert {f["control"] for f in report["findings"]} == controls
