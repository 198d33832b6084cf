"""`netguard check` on the secure architecture's template and plan gives the verdicts a scan of the deployed
equivalent (netguard_testkit's secure world) gives, control by control and resource by resource; a deviation made
in both (the template's fixture, the world through the API) moves both the same way.

The template has no jobs (CloudFormation has no job resources) and not the VPC's default security group, Studio's
home file system or the groups only jobs use (AWS creates or the template cannot manage them): those are compared
where both have them, which is every other resource of the world.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.aws import Clients
from chalicelib.iac.command import read_file
from chalicelib.iac.states import evaluate_file
from chalicelib.policy import load_policy
from chalicelib.scan import run_scan
from netguard_testkit.moto_fidelity import aws_like_notebooks
from netguard_testkit.moto_sagemaker import aws_like_sagemaker
from netguard_testkit.secure_world import SecureWorld, build_secure_world
from netguard_testkit.world import remove_default_vpc

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "iac"
REGION = "us-east-1"
SERVICES = {"SageMakerApi": "sagemaker.api", "SageMakerRuntime": "sagemaker.runtime", "Logs": "logs",
            "EcrApi": "ecr.api", "EcrDocker": "ecr.dkr", "Sts": "sts"}


def cloudformation_ids(w: SecureWorld) -> dict[str, str]:
    ids = {"Notebook": w.notebook_name, "Model": w.model_name, "EndpointConfig": w.endpoint_config_name,
           "Endpoint": w.endpoint_name, "StudioDomain": w.domain_id, "Vpc": w.vpc_id,
           "PrivateSubnetA": w.private_subnet_ids[0], "PrivateSubnetB": w.private_subnet_ids[1],
           "PublicSubnet": str(w.public_subnet_id), "NotebookSecurityGroup": w.sg_notebook,
           "EndpointSecurityGroup": w.sg_endpoint, "VpcEndpointSecurityGroup": w.sg_vpc_endpoint,
           "StudioSecurityGroup": w.sg_studio, "S3GatewayEndpoint": w.s3_gateway_endpoint_id}
    ids.update({f"{name}Endpoint": w.interface_endpoints[service] for name, service in SERVICES.items()})
    return ids


def terraform_ids(w: SecureWorld) -> dict[str, str]:
    ids = {"aws_sagemaker_notebook_instance.main": w.notebook_name, "aws_sagemaker_model.main": w.model_name,
           "aws_sagemaker_endpoint_configuration.main": w.endpoint_config_name,
           "aws_sagemaker_endpoint.main": w.endpoint_name, "aws_sagemaker_domain.studio": w.domain_id,
           "aws_vpc.main": w.vpc_id, 'aws_subnet.private["a"]': w.private_subnet_ids[0],
           'aws_subnet.private["b"]': w.private_subnet_ids[1], "aws_security_group.notebook": w.sg_notebook,
           "aws_security_group.endpoint": w.sg_endpoint, "aws_security_group.vpc_endpoints": w.sg_vpc_endpoint,
           "aws_security_group.studio": w.sg_studio, "aws_vpc_endpoint.s3": w.s3_gateway_endpoint_id}
    ids.update({f'aws_vpc_endpoint.interface["{s}"]': w.interface_endpoints[s] for s in SERVICES.values()})
    return ids


@pytest.fixture
def world() -> Iterator[tuple[Any, SecureWorld]]:
    with mock_aws(), aws_like_notebooks(), aws_like_sagemaker():
        session = boto3.session.Session(region_name=REGION)
        remove_default_vpc(session.client("ec2"))
        account = session.client("sts").get_caller_identity()["Account"]
        yield session, build_secure_world(session, account, REGION, with_public_subnet=True)


def scan(session: Any) -> dict[tuple[str, str], str]:
    result = run_scan(Clients(session), REGION)
    assert not result.errors, result.errors
    return {(r["control"], r["resource_id"]): r["status"] for r in result.rows}


def check(name: str, ids: dict[str, str]) -> dict[tuple[str, str], str]:
    parsed = read_file(str(FIXTURES / name), {}, REGION)
    found = evaluate_file(parsed, list(load_policy().controls), region=REGION)
    assert {decl.id for _, decl in found} == set(ids), "every evaluated resource of the file has its twin"
    return {(f.control.id, ids[decl.id]): f.status for f, decl in found}


def assert_same_verdicts(checked: dict[tuple[str, str], str], scanned: dict[tuple[str, str], str]) -> None:
    assert set(checked) <= set(scanned), "the scan evaluates every control the check does, on the same resources"
    differ = {key: (status, scanned[key]) for key, status in checked.items() if scanned[key] != status}
    assert differ == {}, "(check, scan) verdicts differ"
    assert len(checked) >= 80  # every control on every resource both have


@pytest.mark.parametrize(("name", "ids"), [("secure-architecture.yaml", cloudformation_ids),
                                           ("secure-architecture.tfplan.json", terraform_ids)])
def test_the_secure_architecture_checks_as_its_deployment_scans(world, name, ids):
    session, w = world
    checked = check(name, ids(w))
    assert_same_verdicts(checked, scan(session))
    assert "NON_COMPLIANT" not in checked.values()


def test_a_deviation_moves_check_and_scan_alike(world):
    """The flow log captures REJECT only: in the template's fixture, and in the world through the API."""
    session, w = world
    ec2 = session.client("ec2")
    ec2.delete_flow_logs(FlowLogIds=[w.flow_log_id])
    ec2.create_flow_logs(ResourceIds=[w.vpc_id], ResourceType="VPC", TrafficType="REJECT",
                         LogDestinationType="cloud-watch-logs", LogGroupName=w.flow_log_group,
                         DeliverLogsPermissionArn=w.flow_log_role_arn)
    checked = check("deviation-flow-log-reject-only.yaml", cloudformation_ids(w))
    assert_same_verdicts(checked, scan(session))
    assert {key for key, status in checked.items() if status == "NON_COMPLIANT"} == {("VPC.3", w.vpc_id)}
