"""The secure-world builder (netguard_testkit.secure_world) and the SageMaker fidelity patches it relies on
(netguard_testkit.moto_sagemaker): the built state really has every property of the field guide's secure
architecture, the Stop*Job operations behave as AWS's, and the whole thing also works over HTTP against
an in-process moto server. One world is shared by the class (moto's EC2 setup is the slow part)."""
from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from conftest import clean_aws_env
from netguard_testkit.moto_fidelity import aws_like_notebooks
from netguard_testkit.moto_sagemaker import add_studio_app, aws_like_sagemaker, job_status, set_job_status
from netguard_testkit.secure_world import CIDR, INTERFACE_SERVICES, TAGS, SecureWorld, build_secure_world

REGION = "us-east-1"
JOB_KINDS = ("training", "processing", "transform", "tuning")
LABELS = {"training": "training job", "processing": "processing job", "transform": "transform job",
          "tuning": "hyperparameter tuning job"}


@dataclass
class Env:
    session: Any
    world: SecureWorld
    clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = self.session.client(service, region_name=REGION)
        return self.clients[service]

    @property
    def ec2(self) -> Any:
        return self.client("ec2")

    @property
    def sm(self) -> Any:
        return self.client("sagemaker")


def has_tags(tags: list[dict[str, str]] | dict[str, str]) -> bool:
    found = tags if isinstance(tags, dict) else {t["Key"]: t["Value"] for t in tags}
    return all(found.get(k) == v for k, v in TAGS.items())


def rules_of(ec2: Any, group_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rules = ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [group_id]}])["SecurityGroupRules"]
    return [r for r in rules if not r["IsEgress"]], [r for r in rules if r["IsEgress"]]


def new_job(env: Env, kind: str, name: str) -> None:
    """A fresh job of `kind`, isolated like the world's (for the stop tests; the world's jobs stay InProgress)."""
    w, sm = env.world, env.sm
    vpc = {"Subnets": list(w.private_subnet_ids), "SecurityGroupIds": [w.sg_training]}
    resources = {"InstanceType": "ml.m5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 10}
    algorithm = {"TrainingImage": "img", "TrainingInputMode": "File"}
    stopping = {"MaxRuntimeInSeconds": 60}
    if kind == "training":
        sm.create_training_job(TrainingJobName=name, RoleArn=w.sagemaker_role_arn, AlgorithmSpecification=algorithm,
                               OutputDataConfig={"S3OutputPath": "s3://b/o"}, ResourceConfig=resources,
                               VpcConfig=vpc, EnableNetworkIsolation=True, StoppingCondition=stopping)
    elif kind == "processing":
        sm.create_processing_job(ProcessingJobName=name, RoleArn=w.sagemaker_role_arn,
                                 AppSpecification={"ImageUri": "img"},
                                 ProcessingResources={"ClusterConfig": resources},
                                 NetworkConfig={"EnableNetworkIsolation": True, "VpcConfig": vpc})
    elif kind == "transform":
        sm.create_transform_job(TransformJobName=name, ModelName=w.model_name,
                                TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                                                "S3Uri": "s3://b/i"}}},
                                TransformOutput={"S3OutputPath": "s3://b/o"},
                                TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1})
    else:
        sm.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name,
            HyperParameterTuningJobConfig={"Strategy": "Random", "ResourceLimits": {
                "MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 1}},
            TrainingJobDefinition={"AlgorithmSpecification": algorithm, "RoleArn": w.sagemaker_role_arn,
                                   "OutputDataConfig": {"S3OutputPath": "s3://b/o"}, "ResourceConfig": resources,
                                   "StoppingCondition": stopping, "VpcConfig": vpc, "EnableNetworkIsolation": True})


def describe_job(sm: Any, kind: str, name: str) -> str:
    if kind == "training":
        return sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
    if kind == "processing":
        return sm.describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"]
    if kind == "transform":
        return sm.describe_transform_job(TransformJobName=name)["TransformJobStatus"]
    return sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)["HyperParameterTuningJobStatus"]


def stop_job(sm: Any, kind: str, name: str) -> None:
    if kind == "training":
        sm.stop_training_job(TrainingJobName=name)
    elif kind == "processing":
        sm.stop_processing_job(ProcessingJobName=name)
    elif kind == "transform":
        sm.stop_transform_job(TransformJobName=name)
    else:
        sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)


@pytest.fixture(scope="class")
def env() -> Iterator[Env]:
    """One in-process world per class: mock_aws + aws_like_notebooks + aws_like_sagemaker. Class scope (not
    module) so that the moto mock is gone before the HTTP test starts its own server."""
    with pytest.MonkeyPatch.context() as mp:
        clean_aws_env(mp)
        with mock_aws(), aws_like_notebooks(), aws_like_sagemaker():
            session = boto3.session.Session(region_name=REGION)
            account = session.client("sts").get_caller_identity()["Account"]
            yield Env(session, build_secure_world(session, account, REGION))


class TestSecureWorldInProcess:
    # --- network ------------------------------------------------------------------------------------

    def test_vpc_has_dns_support_and_hostnames(self, env: Env) -> None:
        ec2, vpc = env.ec2, env.world.vpc_id
        assert ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["CidrBlock"] == CIDR
        assert ec2.describe_vpc_attribute(VpcId=vpc, Attribute="enableDnsSupport")["EnableDnsSupport"]["Value"]
        assert ec2.describe_vpc_attribute(VpcId=vpc, Attribute="enableDnsHostnames")["EnableDnsHostnames"]["Value"]

    def test_private_subnets_in_two_azs_without_public_ips_or_internet_routes(self, env: Env) -> None:
        ec2, w = env.ec2, env.world
        subnets = ec2.describe_subnets(SubnetIds=list(w.private_subnet_ids))["Subnets"]
        assert {s["AvailabilityZone"] for s in subnets} == set(w.availability_zones)
        assert len(set(w.availability_zones)) == 2
        assert not any(s["MapPublicIpOnLaunch"] for s in subnets)
        tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [w.vpc_id]}])["RouteTables"]
        private = [t for t in tables if {a.get("SubnetId") for a in t["Associations"]} & set(w.private_subnet_ids)]
        assert [t["RouteTableId"] for t in private] == [w.private_route_table_id]
        for table in tables:  # the private table and the main one: nothing to an internet gateway
            for route in table["Routes"]:
                assert not route.get("GatewayId", "").startswith("igw-"), route
                assert route.get("DestinationCidrBlock") != "0.0.0.0/0", route
        assert ec2.describe_internet_gateways(
            Filters=[{"Name": "attachment.vpc-id", "Values": [w.vpc_id]}])["InternetGateways"] == []
        assert w.public_subnet_id is None and w.internet_gateway_id is None

    def test_private_subnets_have_a_network_acl_that_is_not_allow_all(self, env: Env) -> None:
        ec2, w = env.ec2, env.world
        acl = ec2.describe_network_acls(NetworkAclIds=[w.network_acl_id])["NetworkAcls"][0]
        assert {a["SubnetId"] for a in acl["Associations"]} == set(w.private_subnet_ids)
        allows = [e for e in acl["Entries"] if e["RuleAction"] == "allow"]
        assert {e["Egress"] for e in allows} == {True, False}
        for entry in allows:  # every allow is either within the VPC or one TCP port range
            assert entry["CidrBlock"] == CIDR or (entry["Protocol"] == "6" and "PortRange" in entry), entry

    def test_default_security_group_has_no_rules(self, env: Env) -> None:
        ec2, w = env.ec2, env.world
        group = ec2.describe_security_groups(GroupIds=[w.default_security_group_id])["SecurityGroups"][0]
        assert group["GroupName"] == "default" and group["VpcId"] == w.vpc_id
        assert group["IpPermissions"] == [] and group["IpPermissionsEgress"] == []
        assert rules_of(ec2, w.default_security_group_id) == ([], [])

    def test_one_security_group_per_function_with_least_privilege_rules(self, env: Env) -> None:
        ec2, w = env.ec2, env.world
        groups = w.workload_security_groups
        assert len(set(groups.values())) == 5 and w.default_security_group_id not in groups.values()
        https_from_vpc = ("tcp", 443, 443, CIDR)
        for kind in ("notebook", "endpoint", "vpc_endpoint", "studio"):
            ingress, _ = rules_of(ec2, groups[kind])
            assert [(r["IpProtocol"], r["FromPort"], r["ToPort"], r.get("CidrIpv4")) for r in ingress] == \
                [https_from_vpc], kind
        ingress, egress = rules_of(ec2, w.sg_training)
        assert [(r["IpProtocol"], r["ReferencedGroupInfo"]["GroupId"]) for r in ingress] == [("-1", w.sg_training)]
        assert ("-1", w.sg_training) in [(r["IpProtocol"], r.get("ReferencedGroupInfo", {}).get("GroupId"))
                                         for r in egress]
        for kind, group_id in groups.items():
            _, egress = rules_of(ec2, group_id)
            for rule in egress:  # egress never to the internet, and all-protocol egress only to the group itself
                assert rule.get("CidrIpv4") not in ("0.0.0.0/0",) and "CidrIpv6" not in rule, (kind, rule)
                if rule["IpProtocol"] == "-1":
                    assert rule["ReferencedGroupInfo"]["GroupId"] == group_id, (kind, rule)
        assert rules_of(ec2, w.sg_vpc_endpoint)[1] == []
        _, notebook_egress = rules_of(ec2, w.sg_notebook)
        assert ("tcp", 443, CIDR) in [(r["IpProtocol"], r["FromPort"], r.get("CidrIpv4")) for r in notebook_egress]

    def test_each_security_group_is_used_by_one_kind_of_resource(self, env: Env) -> None:
        ec2, w = env.ec2, env.world
        enis = ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [w.vpc_id]}])["NetworkInterfaces"]
        users: dict[str, set[str]] = {}
        for eni in enis:
            text = eni["Description"].lower()
            kind = ("vpc_endpoint" if eni["InterfaceType"] == "vpc_endpoint" else
                    "notebook" if "notebook" in text else
                    "endpoint" if "sagemaker endpoint" in text else
                    "training" if "training job" in text or "processing job" in text else "other")
            for group in eni["Groups"]:
                users.setdefault(group["GroupId"], set()).add(kind)
        assert w.default_security_group_id not in users
        # the home EFS group: only its mount targets' interfaces (EFS's, not SageMaker's)
        efs_enis = {t["NetworkInterfaceId"] for m in w.home_efs_mount_target_ids
                    for t in env.client("efs").describe_mount_targets(MountTargetId=m)["MountTargets"]}
        in_efs_group = {e["NetworkInterfaceId"] for e in enis if w.sg_home_efs in [g["GroupId"] for g in e["Groups"]]}
        assert in_efs_group == efs_enis
        assert users == {w.sg_notebook: {"notebook"}, w.sg_training: {"training"}, w.sg_endpoint: {"endpoint"},
                         w.sg_vpc_endpoint: {"vpc_endpoint"}, w.sg_home_efs: {"other"}}
        model = env.sm.describe_model(ModelName=w.model_name)
        assert model["VpcConfig"]["SecurityGroupIds"] == [w.sg_endpoint]
        domain = env.sm.describe_domain(DomainId=w.domain_id)
        assert domain["DefaultUserSettings"]["SecurityGroups"] == [w.sg_studio]

    def test_s3_gateway_endpoint_on_the_private_route_table_with_a_deliberate_policy(self, env: Env) -> None:
        ec2, w = env.ec2, env.world
        endpoint = ec2.describe_vpc_endpoints(VpcEndpointIds=[w.s3_gateway_endpoint_id])["VpcEndpoints"][0]
        assert endpoint["VpcEndpointType"] == "Gateway"
        assert endpoint["ServiceName"] == f"com.amazonaws.{REGION}.s3"
        assert endpoint["RouteTableIds"] == [w.private_route_table_id]
        assert_deliberate_policy(endpoint["PolicyDocument"])
        routes = ec2.describe_route_tables(RouteTableIds=[w.private_route_table_id])["RouteTables"][0]["Routes"]
        assert {r.get("GatewayId") for r in routes} == {"local", w.s3_gateway_endpoint_id}

    def test_six_interface_endpoints_in_both_subnets_with_private_dns_own_group_and_policy(self, env: Env) -> None:
        ec2, w = env.ec2, env.world
        endpoints = ec2.describe_vpc_endpoints(VpcEndpointIds=list(w.interface_endpoint_ids))["VpcEndpoints"]
        assert sorted(e["ServiceName"] for e in endpoints) == sorted(
            f"com.amazonaws.{REGION}.{s}" for s in INTERFACE_SERVICES)
        for endpoint in endpoints:
            assert endpoint["VpcEndpointType"] == "Interface"
            assert sorted(endpoint["SubnetIds"]) == sorted(w.private_subnet_ids)
            assert endpoint["PrivateDnsEnabled"] is True
            assert [g["GroupId"] for g in endpoint["Groups"]] == [w.sg_vpc_endpoint]
            assert_deliberate_policy(endpoint["PolicyDocument"])
            assert len(endpoint["NetworkInterfaceIds"]) == 2

    def test_interface_endpoint_network_interfaces_look_like_aws(self, env: Env) -> None:
        ec2, w = env.ec2, env.world
        enis = ec2.describe_network_interfaces(NetworkInterfaceIds=list(w.vpc_endpoint_eni_ids))["NetworkInterfaces"]
        assert len(enis) == 2 * len(INTERFACE_SERVICES)
        subnets = {s["SubnetId"]: s["CidrBlock"] for s in ec2.describe_subnets(
            SubnetIds=list(w.private_subnet_ids))["Subnets"]}
        for eni in enis:
            assert eni["InterfaceType"] == "vpc_endpoint" and eni["RequesterManaged"] is True
            assert eni["Description"].startswith("VPC Endpoint Interface vpce-")
            assert [g["GroupId"] for g in eni["Groups"]] == [w.sg_vpc_endpoint]
            assert ipaddress.ip_address(eni["PrivateIpAddress"]) in ipaddress.ip_network(subnets[eni["SubnetId"]])
        by_type = ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [w.vpc_id]},
                                                           {"Name": "interface-type", "Values": ["vpc_endpoint"]}])
        assert sorted(e["NetworkInterfaceId"] for e in by_type["NetworkInterfaces"]) == sorted(w.vpc_endpoint_eni_ids)

    def test_flow_log_records_all_traffic_to_cloudwatch_logs(self, env: Env) -> None:
        w = env.world
        flow = env.ec2.describe_flow_logs(FlowLogIds=[w.flow_log_id])["FlowLogs"][0]
        assert (flow["ResourceId"], flow["TrafficType"], flow["FlowLogStatus"]) == (w.vpc_id, "ALL", "ACTIVE")
        assert flow["LogDestinationType"] == "cloud-watch-logs" and flow["LogGroupName"] == w.flow_log_group
        assert flow["DeliverLogsPermissionArn"] == w.flow_log_role_arn and flow["DeliverLogsStatus"] == "SUCCESS"
        groups = env.client("logs").describe_log_groups(logGroupNamePrefix=w.flow_log_group)["logGroups"]
        assert [g["logGroupName"] for g in groups] == [w.flow_log_group]
        role = env.client("iam").get_role(RoleName=w.flow_log_role_arn.rsplit("/", 1)[1])["Role"]
        trust = role["AssumeRolePolicyDocument"]
        trust = json.loads(trust) if isinstance(trust, str) else trust
        assert trust["Statement"][0]["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}

    # --- SageMaker ------------------------------------------------------------------------------------

    def test_notebook_is_private_without_internet_or_root(self, env: Env) -> None:
        w = env.world
        nb = env.sm.describe_notebook_instance(NotebookInstanceName=w.notebook_name)
        assert nb["DirectInternetAccess"] == "Disabled" and nb["RootAccess"] == "Disabled"
        assert nb["SubnetId"] == w.private_subnet_ids[0] and nb["SecurityGroups"] == [w.sg_notebook]
        assert nb["NotebookInstanceStatus"] == "InService"
        eni = env.ec2.describe_network_interfaces(NetworkInterfaceIds=[w.notebook_eni_id])["NetworkInterfaces"][0]
        assert "sagemaker notebook" in eni["Description"].lower() and eni["SubnetId"] == w.private_subnet_ids[0]

    def test_training_job_is_isolated_encrypted_multi_az_and_in_progress(self, env: Env) -> None:
        w = env.world
        job = env.sm.describe_training_job(TrainingJobName=w.training_job_name)
        assert job["TrainingJobStatus"] == "InProgress" and job["SecondaryStatus"] == "Starting"
        assert "TrainingEndTime" not in job
        assert job["EnableNetworkIsolation"] is True and job["EnableInterContainerTrafficEncryption"] is True
        assert job["ResourceConfig"]["InstanceCount"] == 2
        assert sorted(job["VpcConfig"]["Subnets"]) == sorted(w.private_subnet_ids)
        assert job["VpcConfig"]["SecurityGroupIds"] == [w.sg_training]

    def test_processing_job_is_isolated_encrypted_and_in_progress(self, env: Env) -> None:
        w = env.world
        job = env.sm.describe_processing_job(ProcessingJobName=w.processing_job_name)
        assert job["ProcessingJobStatus"] == "InProgress" and "ProcessingEndTime" not in job
        network = job["NetworkConfig"]
        assert network["EnableNetworkIsolation"] is True and network["EnableInterContainerTrafficEncryption"] is True
        assert sorted(network["VpcConfig"]["Subnets"]) == sorted(w.private_subnet_ids)
        assert network["VpcConfig"]["SecurityGroupIds"] == [w.sg_training]
        assert job["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 2

    def test_tuning_job_definition_is_isolated_and_in_progress(self, env: Env) -> None:
        w = env.world
        job = env.sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=w.tuning_job_name)
        assert job["HyperParameterTuningJobStatus"] == "InProgress" and "BestTrainingJob" not in job
        definition = job["TrainingJobDefinition"]
        assert definition["EnableNetworkIsolation"] is True
        assert definition["EnableInterContainerTrafficEncryption"] is True
        assert sorted(definition["VpcConfig"]["Subnets"]) == sorted(w.private_subnet_ids)

    def test_model_is_isolated_in_both_private_subnets(self, env: Env) -> None:
        w = env.world
        model = env.sm.describe_model(ModelName=w.model_name)
        assert model["EnableNetworkIsolation"] is True
        assert sorted(model["VpcConfig"]["Subnets"]) == sorted(w.private_subnet_ids)
        assert model["VpcConfig"]["SecurityGroupIds"] == [w.sg_endpoint]

    def test_endpoint_runs_two_instances_per_variant_with_interfaces_in_both_subnets(self, env: Env) -> None:
        w, sm = env.world, env.sm
        config = sm.describe_endpoint_config(EndpointConfigName=w.endpoint_config_name)
        assert config["ProductionVariants"] and all(
            v["InitialInstanceCount"] >= 2 and v["ModelName"] == w.model_name for v in config["ProductionVariants"])
        endpoint = sm.describe_endpoint(EndpointName=w.endpoint_name)
        assert endpoint["EndpointConfigName"] == w.endpoint_config_name and endpoint["EndpointStatus"] == "InService"
        enis = env.ec2.describe_network_interfaces(NetworkInterfaceIds=list(w.endpoint_eni_ids))["NetworkInterfaces"]
        assert sorted(e["SubnetId"] for e in enis) == sorted(w.private_subnet_ids)
        assert all([g["GroupId"] for g in e["Groups"]] == [w.sg_endpoint] for e in enis)

    def test_job_network_interfaces_span_both_subnets(self, env: Env) -> None:
        w = env.world
        for ids, text in ((w.training_eni_ids, "training job"), (w.processing_eni_ids, "processing job")):
            enis = env.ec2.describe_network_interfaces(NetworkInterfaceIds=list(ids))["NetworkInterfaces"]
            assert sorted(e["SubnetId"] for e in enis) == sorted(w.private_subnet_ids)
            assert all(text in e["Description"] and [g["GroupId"] for g in e["Groups"]] == [w.sg_training]
                       for e in enis)

    def test_transform_job_uses_the_isolated_model_and_is_in_progress(self, env: Env) -> None:
        job = env.sm.describe_transform_job(TransformJobName=env.world.transform_job_name)
        assert job["TransformJobStatus"] == "InProgress" and job["ModelName"] == env.world.model_name

    def test_studio_domain_is_vpc_only_in_the_private_subnets(self, env: Env) -> None:
        w = env.world
        domain = env.sm.describe_domain(DomainId=w.domain_id)
        assert domain["AppNetworkAccessType"] == "VpcOnly" and domain["VpcId"] == w.vpc_id
        assert sorted(domain["SubnetIds"]) == sorted(w.private_subnet_ids)
        assert "SecurityGroupIdForDomainBoundary" not in domain  # moto's made-up group is gone

    def test_every_resource_carries_the_five_tags(self, env: Env) -> None:
        ec2, sm, w = env.ec2, env.sm, env.world
        ec2_ids = [w.vpc_id, *w.private_subnet_ids, w.private_route_table_id, w.main_route_table_id,
                   w.network_acl_id, w.default_network_acl_id, w.default_security_group_id,
                   *w.workload_security_groups.values(), *w.vpc_endpoint_ids, w.flow_log_id]
        tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": ec2_ids}])["Tags"]
        by_id: dict[str, dict[str, str]] = {}
        for tag in tags:
            by_id.setdefault(tag["ResourceId"], {})[tag["Key"]] = tag["Value"]
        assert {i for i in ec2_ids if not has_tags(by_id.get(i, {}))} == set()
        arns = [w.notebook_arn, w.training_job_arn, w.processing_job_arn, w.tuning_job_arn, w.model_arn,
                w.endpoint_config_arn, w.endpoint_arn, w.transform_job_arn, w.domain_arn]
        assert [a for a in arns if not has_tags(sm.list_tags(ResourceArn=a)["Tags"])] == []
        assert has_tags(env.client("logs").list_tags_log_group(logGroupName=w.flow_log_group)["tags"])
        iam = env.client("iam")
        for arn in (w.flow_log_role_arn, w.sagemaker_role_arn):
            assert has_tags(iam.list_role_tags(RoleName=arn.rsplit("/", 1)[1])["Tags"]), arn

    # --- Stop*Job as AWS --------------------------------------------------------------------------------

    @pytest.mark.parametrize("kind", JOB_KINDS)
    def test_stop_moves_an_in_progress_job_to_stopping(self, env: Env, kind: str) -> None:
        name = f"stop-me-{kind}"
        new_job(env, kind, name)
        assert describe_job(env.sm, kind, name) == "InProgress"
        stop_job(env.sm, kind, name)
        assert describe_job(env.sm, kind, name) == "Stopping"
        with pytest.raises(ClientError) as again:  # only InProgress can be stopped
            stop_job(env.sm, kind, name)
        assert again.value.response["Error"]["Code"] == "ValidationException"
        set_job_status(env.world.account, REGION, kind, name, "Stopped")  # SageMaker finishes the stop
        assert describe_job(env.sm, kind, name) == "Stopped"

    @pytest.mark.parametrize("kind", JOB_KINDS)
    def test_stopping_a_finished_job_is_a_validation_exception_like_aws(self, env: Env, kind: str) -> None:
        name = f"done-{kind}"
        new_job(env, kind, name)
        set_job_status(env.world.account, REGION, kind, name, "Completed")
        with pytest.raises(ClientError) as err:
            stop_job(env.sm, kind, name)
        assert err.value.response["Error"] == {
            "Code": "ValidationException",
            "Message": f"The request was rejected because the {LABELS[kind]} is in status Completed."}
        assert job_status(env.world.account, REGION, kind, name) == "Completed"

    @pytest.mark.parametrize("kind", JOB_KINDS)
    def test_stopping_an_unknown_job_is_resource_not_found(self, env: Env, kind: str) -> None:
        with pytest.raises(ClientError) as err:
            stop_job(env.sm, kind, "no-such-job")
        assert err.value.response["Error"]["Code"] == "ResourceNotFound"

    def test_finished_training_job_has_end_time_and_unknown_job_answers_as_aws(self, env: Env) -> None:
        new_job(env, "training", "finishes")
        set_job_status(env.world.account, REGION, "training", "finishes", "Completed")
        job = env.sm.describe_training_job(TrainingJobName="finishes")
        assert job["SecondaryStatus"] == "Completed" and "TrainingEndTime" in job
        with pytest.raises(ClientError) as err:
            env.sm.describe_training_job(TrainingJobName="never-created")
        assert err.value.response["Error"] == {"Code": "ValidationException",
                                               "Message": "Requested resource not found."}
        with pytest.raises(ValueError):
            set_job_status(env.world.account, REGION, "training", "finishes", "Done")

    # --- Studio domain and VPC endpoint patches -----------------------------------------------------------

    def test_update_domain_network_waits_for_running_apps(self, env: Env) -> None:
        w, sm = env.world, env.sm
        arn = sm.create_domain(DomainName="scratch", AuthMode="IAM", VpcId=w.vpc_id,
                               SubnetIds=list(w.private_subnet_ids), AppNetworkAccessType="PublicInternetOnly",
                               DefaultUserSettings={"ExecutionRole": w.sagemaker_role_arn})["DomainArn"]
        domain_id = arn.rsplit("/", 1)[1]
        add_studio_app(w.account, REGION, domain_id, "default", status="InService")
        assert [a["AppName"] for a in sm.list_apps(DomainIdEquals=domain_id)["Apps"]] == ["default"]
        with pytest.raises(ClientError) as err:
            sm.update_domain(DomainId=domain_id, AppNetworkAccessType="VpcOnly")
        assert err.value.response["Error"]["Code"] == "ResourceInUse"
        add_studio_app(w.account, REGION, domain_id, "default", status="Deleted")
        sm.update_domain(DomainId=domain_id, AppNetworkAccessType="VpcOnly")
        assert sm.describe_domain(DomainId=domain_id)["AppNetworkAccessType"] == "VpcOnly"
        assert sm.list_apps(DomainIdEquals=w.domain_id)["Apps"] == []

    def test_vpc_endpoint_interfaces_follow_modifications(self, env: Env) -> None:
        ec2, w = env.ec2, env.world
        vpc = ec2.create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
        a, b = (ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.99.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2))
        default = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                                        {"Name": "group-name", "Values": ["default"]}])
        default_id = default["SecurityGroups"][0]["GroupId"]
        own = ec2.create_security_group(GroupName="vpce", Description="vpce", VpcId=vpc)["GroupId"]
        # Without SecurityGroupIds AWS uses the VPC default group (and a full-access policy).
        endpoint = ec2.create_vpc_endpoint(VpcId=vpc, VpcEndpointType="Interface", SubnetIds=[a],
                                           ServiceName=f"com.amazonaws.{REGION}.sts")["VpcEndpoint"]
        assert [g["GroupId"] for g in endpoint["Groups"]] == [default_id]
        assert json.loads(endpoint["PolicyDocument"])["Statement"][0]["Action"] == "*"
        vpce = endpoint["VpcEndpointId"]
        ec2.modify_vpc_endpoint(VpcEndpointId=vpce, AddSecurityGroupIds=[own], RemoveSecurityGroupIds=[default_id],
                                AddSubnetIds=[b], PrivateDnsEnabled=False)
        endpoint = ec2.describe_vpc_endpoints(VpcEndpointIds=[vpce])["VpcEndpoints"][0]
        assert endpoint["PrivateDnsEnabled"] is False and [g["GroupId"] for g in endpoint["Groups"]] == [own]
        enis = ec2.describe_network_interfaces(NetworkInterfaceIds=endpoint["NetworkInterfaceIds"])["NetworkInterfaces"]
        assert sorted(e["SubnetId"] for e in enis) == sorted([a, b])
        assert all([g["GroupId"] for g in e["Groups"]] == [own] and e["InterfaceType"] == "vpc_endpoint" for e in enis)
        ec2.modify_vpc_endpoint(VpcEndpointId=vpce, RemoveSubnetIds=[a], PrivateDnsEnabled=True)
        endpoint = ec2.describe_vpc_endpoints(VpcEndpointIds=[vpce])["VpcEndpoints"][0]
        assert endpoint["PrivateDnsEnabled"] is True and len(endpoint["NetworkInterfaceIds"]) == 1
        gateway = ec2.describe_vpc_endpoints(VpcEndpointIds=[w.s3_gateway_endpoint_id])["VpcEndpoints"][0]
        assert gateway["PrivateDnsEnabled"] is False


def assert_deliberate_policy(document: str) -> None:
    """Not the full-access default, and a Deny when aws:SecureTransport is false."""
    policy = json.loads(document)
    statements = policy["Statement"]
    assert not any(s["Effect"] == "Allow" and s.get("Action") == "*" and s.get("Resource") == "*"
                   and "Condition" not in s for s in statements)
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for s in statements)


def test_patches_are_undone_on_exit() -> None:
    from moto.ec2.models.vpcs import VPCBackend
    from moto.sagemaker.models import FakeTrainingJob, SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse

    before = (FakeTrainingJob.__init__, VPCBackend.create_vpc_endpoint, SageMakerResponse.create_model)
    with aws_like_sagemaker():
        assert hasattr(SageMakerResponse, "stop_training_job") and FakeTrainingJob.__init__ is not before[0]
    assert (FakeTrainingJob.__init__, VPCBackend.create_vpc_endpoint, SageMakerResponse.create_model) == before
    assert not hasattr(SageMakerModelBackend, "stop_training_job")
    assert not hasattr(SageMakerResponse, "stop_transform_job")
    assert not hasattr(SageMakerResponse, "update_domain")


def test_builder_works_over_http_against_a_moto_server() -> None:
    """The same builder through boto3 clients with endpoint_url; the backend-level patches hold in the
    server thread too."""
    import requests
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        requests.post(f"{url}/moto-api/reset", timeout=10)
        with aws_like_notebooks(), aws_like_sagemaker():
            session = boto3.session.Session(region_name=REGION)
            clients = {s: session.client(s, endpoint_url=url)
                       for s in ("ec2", "sagemaker", "logs", "iam", "sts", "kms", "efs")}
            account = clients["sts"].get_caller_identity()["Account"]
            world = build_secure_world(clients, account, REGION, prefix="over-http")
            sm, ec2 = clients["sagemaker"], clients["ec2"]
            assert sm.describe_notebook_instance(
                NotebookInstanceName=world.notebook_name)["NotebookInstanceStatus"] == "InService"
            assert sm.describe_model(ModelName=world.model_name)["EnableNetworkIsolation"] is True
            processing = sm.describe_processing_job(ProcessingJobName=world.processing_job_name)
            assert processing["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 2
            enis = ec2.describe_network_interfaces(NetworkInterfaceIds=list(world.vpc_endpoint_eni_ids))
            assert {e["InterfaceType"] for e in enis["NetworkInterfaces"]} == {"vpc_endpoint"}
            training = world.training_job_name
            assert sm.describe_training_job(TrainingJobName=training)["TrainingJobStatus"] == "InProgress"
            sm.stop_training_job(TrainingJobName=training)
            assert sm.describe_training_job(TrainingJobName=training)["TrainingJobStatus"] == "Stopping"
            with pytest.raises(ClientError) as err:
                sm.stop_training_job(TrainingJobName=training)
            assert err.value.response["Error"]["Code"] == "ValidationException"
            sm.stop_transform_job(TransformJobName=world.transform_job_name)
            assert job_status(account, REGION, "transform", world.transform_job_name) == "Stopping"
    finally:
        try:
            requests.post(f"{url}/moto-api/reset", timeout=10)
        finally:
            server.stop()
