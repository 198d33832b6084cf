"""EFS mount targets of Studio's home file system: a resource type added through the registry alone
(chalicelib/resources/efs_mount_target.py, policies/studio-storage.toml).

* a scan lists the mount targets of Studio's file systems (and only those) and evaluates EFS.1;
* a CreateMountTarget event is read, evaluated, alerted; a mount target of another file system is read
  but EFS.1 does not apply to it, and its security groups are not taken for SageMaker's;
* the security group of a Studio mount target is Studio's: an NFS rule open to the internet on it is
  revoked (SG.1), as for any SageMaker workload's group.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.aws import Clients
from chalicelib.resources import BY_TYPE
from chalicelib.resources.efs_mount_target import MOUNT_TARGET, STUDIO_TAG
from chalicelib.scan import run_scan
from chalicelib.triggers import api_call_pattern, from_api_call
from conftest import alerts, invoke
from netguard_testkit import events
from netguard_testkit.moto_fidelity import aws_like_notebooks
from netguard_testkit.moto_sagemaker import aws_like_sagemaker
from netguard_testkit.secure_world import build_secure_world
from netguard_testkit.world import remove_default_vpc

REGION = "us-east-1"
ROOT = Path(__file__).resolve().parents[2]
DOMAIN_ARN = "arn:aws:sagemaker:us-east-1:123456789012:domain/d-abcdefghijkl"


def _file_system(efs: Any, token: str, studio: bool) -> str:
    tags = [{"Key": STUDIO_TAG, "Value": DOMAIN_ARN}] if studio else [{"Key": "Name", "Value": token}]
    return efs.create_file_system(CreationToken=token, Tags=tags)["FileSystemId"]


def test_a_scan_evaluates_the_mount_targets_of_studio_file_systems_only():
    with mock_aws(), aws_like_notebooks(), aws_like_sagemaker():
        session = boto3.session.Session(region_name=REGION)
        remove_default_vpc(session.client("ec2"))
        account = session.client("sts").get_caller_identity()["Account"]
        world = build_secure_world(session, account, REGION, with_public_subnet=True)
        efs = session.client("efs")
        # another team's file system, in the public subnet: not Studio's, not listed
        other = efs.create_mount_target(FileSystemId=_file_system(efs, "shared-data", studio=False),
                                        SubnetId=world.public_subnet_id)["MountTargetId"]
        # a second Studio file system, mounted in the public subnet
        exposed = efs.create_mount_target(FileSystemId=_file_system(efs, "studio-old", studio=True),
                                          SubnetId=world.public_subnet_id)["MountTargetId"]
        result = run_scan(Clients(session), REGION)
        assert not result.errors, result.errors
    rows = {r["resource_id"]: r for r in result.rows if r["control"] == "EFS.1"}
    assert set(rows) == {*world.home_efs_mount_target_ids, exposed}
    assert other not in rows
    assert {rows[m]["status"] for m in world.home_efs_mount_target_ids} == {"COMPLIANT"}
    assert rows[exposed]["status"] == "NON_COMPLIANT"
    assert rows[exposed]["evidence"]["SubnetId"] == world.public_subnet_id
    assert rows[exposed]["resource_type"] == MOUNT_TARGET
    assert rows[exposed]["arn"].startswith(f"arn:aws:elasticfilesystem:{REGION}:{account}:file-system/fs-")


def test_the_event_pattern_and_the_trigger_cover_create_mount_target(aws):
    pattern = api_call_pattern([MOUNT_TARGET])
    assert "aws.elasticfilesystem" in pattern["source"]
    assert "elasticfilesystem.amazonaws.com" in pattern["detail"]["eventSource"]
    assert set(pattern["detail"]["eventName"]) == set(BY_TYPE[MOUNT_TARGET].api_calls)
    answer = {"FileSystemId": "fs-0123456789abcdef0", "SubnetId": "subnet-0123456789abcdef0",
              "MountTargetId": "fsmt-0123456789abcdef0"}
    trigger = from_api_call(events.create_mount_target(answer, aws.account, REGION))
    assert [(r.resource_type, r.resource_id) for r in trigger.refs] == [(MOUNT_TARGET, "fsmt-0123456789abcdef0")]
    forged = events.create_mount_target({**answer, "MountTargetId": "fsmt-NOTHEX"}, aws.account, REGION)
    from chalicelib.errors import InvalidEvent

    with pytest.raises(InvalidEvent):
        from_api_call(forged)


def _open_nfs_group(ec2: Any, vpc_id: str, name: str) -> str:
    group = ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc_id)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 2049, "ToPort": 2049, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    return group


def _nfs_open(ec2: Any, group: str) -> bool:
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group]}])["SecurityGroupRules"]
    return any(r.get("CidrIpv4") == "0.0.0.0/0" and not r["IsEgress"] for r in rules)


def _mount_behind_open_nfs(stack, name: str, studio: bool) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """A mount target of a new file system in the public subnet, behind a group open to NFS from the
    internet, and its CreateMountTarget event handled: (the group, the mount target, the EFS.1/SG.1 alerts)."""
    aws, net = stack["aws"], stack["net"]
    efs = aws.client("efs")
    group = _open_nfs_group(aws.client("ec2"), net.vpc_id, f"{name}-nfs")
    answer = efs.create_mount_target(FileSystemId=_file_system(efs, name, studio=studio),
                                     SubnetId=net.public_subnet, SecurityGroups=[group])
    out = invoke(stack, "on_api_call", events.create_mount_target(answer, aws.account, REGION))
    assert out["errors"] == [], out
    sent = [a["message"] for a in alerts(stack) if a["message"].get("control", {}).get("id") in ("EFS.1", "SG.1")]
    return group, answer, sent


def test_a_studio_mount_target_in_a_public_subnet_is_alerted_and_its_open_group_closed(stack):
    group, answer, sent = _mount_behind_open_nfs(stack, "studio-home", studio=True)
    by_control = {a["control"]["id"]: a for a in sent}
    assert by_control["EFS.1"]["resource"]["id"] == answer["MountTargetId"]
    assert by_control["EFS.1"]["verdict"] == "NON_COMPLIANT" and by_control["EFS.1"]["action"] is None
    assert by_control["SG.1"]["resource"]["id"] == group
    assert by_control["SG.1"]["result"] == "succeeded"
    assert not _nfs_open(stack["aws"].client("ec2"), group)


def test_another_file_systems_mount_target_is_not_sagemakers(stack):
    group, _, sent = _mount_behind_open_nfs(stack, "shared", studio=False)
    assert sent == []
    assert _nfs_open(stack["aws"].client("ec2"), group)  # not netguard's to close: nothing of SageMaker uses it


def test_a_scan_lists_only_the_types_its_controls_cover(tmp_path):
    """A policy directory without the storage and job controls: the scan makes no EFS call and lists no job (a
    member account whose role predates the EFS reads scans without an AccessDenied), and still reads the rest."""
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies)
    (policies / "studio-storage.toml").unlink()
    (policies / "jobs.toml").unlink()
    tags = (policies / "tags.toml").read_text(encoding="utf-8")
    (policies / "tags.toml").write_text(tags.replace('"AWS::SageMaker::TrainingJob", "AWS::SageMaker::ProcessingJob", '
                                                     '"AWS::SageMaker::HyperParameterTuningJob", '
                                                     '"AWS::SageMaker::TransformJob", ', ""), encoding="utf-8")
    with mock_aws(), aws_like_notebooks(), aws_like_sagemaker():
        session = boto3.session.Session(region_name=REGION)
        remove_default_vpc(session.client("ec2"))
        account = session.client("sts").get_caller_identity()["Account"]
        build_secure_world(session, account, REGION)
        scanning = boto3.session.Session(region_name=REGION)
        calls: list[str] = []
        scanning.events.register("before-call.*.*", lambda model=None, **_: calls.append(
            f"{model.service_model.service_name}:{model.name}"))
        result = run_scan(Clients(scanning), REGION, policy_dir=str(policies))
    assert not result.errors, result.errors
    assert not [c for c in calls if c.startswith("efs:") or c.endswith("Jobs")], calls
    assert "sagemaker:ListNotebookInstances" in calls  # the check can fail: the covered types are listed
    covered = {r["resource_type"] for r in result.rows}
    assert "AWS::SageMaker::NotebookInstance" in covered and "AWS::EFS::MountTarget" not in covered
    assert not any(t.endswith("Job") for t in covered)
