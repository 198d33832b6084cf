"""What real AWS requires that moto does not check: preconditions AWS puts on a remediation (decided
"not actionable" with the reason, not attempted and failed), and the shapes real resources come in
(heterogeneous training clusters, tuning resource configs, endpoint configs with their own VPC and
shadow variants)."""
from __future__ import annotations

from chalicelib.collect import Collector, job_view
from chalicelib.decide import decide
from chalicelib.evaluate import evaluate
from chalicelib.model import (
    DOMAIN,
    ENDPOINT,
    NON_COMPLIANT,
    NOT_ACTIONABLE,
    REMEDIATE,
    TRAINING_JOB,
    TUNING_JOB,
    VPC_ENDPOINT,
    ResourceRef,
)
from chalicelib.policy import load_policy
from chalicelib.settings import Settings
from netguard_testkit.world import TAGS

POLICY = load_policy()
TODAY = __import__("datetime").date(2026, 12, 3)


def decisions(aws, rtype: str, rid: str, control: str):
    collected = Collector(aws.clients).collect([ResourceRef(rtype, rid, aws.account, aws.region)])
    assert not collected.errors, collected.errors
    findings = [f for f in evaluate(POLICY.controls, collected.resources)
                if f.control.id == control and f.resource.ref.resource_id == rid]
    return [decide(f, POLICY, Settings(), TODAY) for f in findings if f.status == NON_COMPLIANT]


def interface_endpoint(aws, net, service: str, private_dns: bool) -> str:
    ec2 = aws.client("ec2")
    endpoint = ec2.create_vpc_endpoint(VpcEndpointType="Interface", VpcId=net.vpc_id,
                                       ServiceName=f"com.amazonaws.{aws.region}.{service}",
                                       SubnetIds=list(net.private_subnets), PrivateDnsEnabled=private_dns,
                                       TagSpecifications=[{"ResourceType": "vpc-endpoint", "Tags": [
                                           {"Key": k, "Value": v} for k, v in TAGS.items()]}])["VpcEndpoint"]
    return endpoint["VpcEndpointId"]


def test_private_dns_is_not_enabled_over_a_private_hosted_zone_serving_the_name(aws, net):
    """AWS refuses private DNS when a private hosted zone associated with the VPC serves the name:
    VPC.6 says so instead of failing."""
    aws.client("route53").create_hosted_zone(Name="sagemaker.us-east-1.amazonaws.com", CallerReference="phz",
                                             VPC={"VPCRegion": aws.region, "VPCId": net.vpc_id},
                                             HostedZoneConfig={"PrivateZone": True, "Comment": "on-prem DNS"})
    endpoint = interface_endpoint(aws, net, "sagemaker.featurestore-runtime", private_dns=False)
    [decision] = decisions(aws, VPC_ENDPOINT, endpoint, "VPC.6")
    assert decision.kind == NOT_ACTIONABLE and "private hosted zone" in decision.reason
    assert "featurestore-runtime.sagemaker.us-east-1.amazonaws.com" in decision.reason
    other = interface_endpoint(aws, net, "kms", private_dns=False)  # a name the zone does not serve
    assert [d.kind for d in decisions(aws, VPC_ENDPOINT, other, "VPC.6")] == [REMEDIATE]


def test_private_dns_is_not_enabled_when_another_endpoint_of_the_service_has_it(aws, net):
    existing = next(e for e in aws.client("ec2").describe_vpc_endpoints()["VpcEndpoints"]
                    if e["ServiceName"].endswith(".sts") and e["PrivateDnsEnabled"])
    second = interface_endpoint(aws, net, "sts", private_dns=False)
    [decision] = decisions(aws, VPC_ENDPOINT, second, "VPC.6")
    assert decision.kind == NOT_ACTIONABLE and existing["VpcEndpointId"] in decision.reason


def test_a_domain_without_security_groups_is_not_switched_to_vpc_only(aws, net):
    """VpcOnly needs security groups in the domain's default user settings: DM.1 says so."""
    sm = aws.client("sagemaker")
    role = f"arn:aws:iam::{aws.account}:role/sm"

    def domain(name: str, settings: dict) -> str:
        return sm.create_domain(DomainName=name, AuthMode="IAM", VpcId=net.vpc_id, SubnetIds=list(net.private_subnets),
                                AppNetworkAccessType="PublicInternetOnly", DefaultUserSettings=settings,
                                Tags=[{"Key": k, "Value": v} for k, v in TAGS.items()])["DomainArn"].rsplit("/", 1)[1]

    bare = domain("bare", {"ExecutionRole": role})
    [decision] = decisions(aws, DOMAIN, bare, "DM.1")
    assert decision.kind == NOT_ACTIONABLE and "DefaultUserSettings.SecurityGroups" in decision.reason
    ready = domain("ready", {"ExecutionRole": role, "SecurityGroups": [net.sg_notebook_ok]})
    assert [d.kind for d in decisions(aws, DOMAIN, ready, "DM.1")] == [REMEDIATE]


def test_a_heterogeneous_training_cluster_counts_all_its_instance_groups():
    """A training job on instance groups has no InstanceCount of its own: two groups of one instance
    each are two instances talking to each other, so JOB.3 applies."""
    job = {"TrainingJobName": "hetero", "TrainingJobStatus": "InProgress", "EnableNetworkIsolation": True,
           "EnableInterContainerTrafficEncryption": False,
           "ResourceConfig": {"VolumeSizeInGB": 30, "InstanceGroups": [
               {"InstanceType": "ml.p4d.24xlarge", "InstanceCount": 1, "InstanceGroupName": "gpu"},
               {"InstanceType": "ml.c5.18xlarge", "InstanceCount": 1, "InstanceGroupName": "cpu"}]}}
    view = job_view(TRAINING_JOB, job)
    assert view["InstanceCount"] == 2
    assert verdicts(view)["JOB.3"] == NON_COMPLIANT


def test_a_tuning_jobs_resource_config_gives_its_instance_count():
    definition = {"EnableNetworkIsolation": True, "EnableInterContainerTrafficEncryption": False,
                  "HyperParameterTuningResourceConfig": {"InstanceConfigs": [
                      {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
                      {"InstanceType": "ml.m5.4xlarge", "InstanceCount": 3, "VolumeSizeInGB": 30}]}}
    job = {"HyperParameterTuningJobName": "tune", "HyperParameterTuningJobStatus": "InProgress",
           "TrainingJobDefinitions": [definition]}
    view = job_view(TUNING_JOB, job)
    assert view["InstanceCount"] == 3
    assert verdicts(view)["JOB.3"] == NON_COMPLIANT


def verdicts(view) -> dict[str, str]:
    """Each job control's status on a job's state."""
    from chalicelib.evaluate import evaluate_state

    return {c.id: evaluate_state(c, view)[0] for c in POLICY.for_type(TRAINING_JOB)}


def test_an_endpoint_is_read_with_its_configs_own_vpc_and_its_shadow_variants(aws, net):
    """moto keeps neither an endpoint config's VpcConfig nor its shadow variants: AWS's answers, stubbed."""
    from botocore.stub import ANY, Stubber

    sm = aws.clients.client("sagemaker", aws.region, aws.account)
    arn = f"arn:aws:sagemaker:{aws.region}:{aws.account}"
    variant = {"VariantName": "AllTraffic", "ModelName": "live", "InitialInstanceCount": 2,
               "InstanceType": "ml.m5.large"}
    with Stubber(sm) as stub:
        stub.add_response("describe_endpoint", {
            "EndpointName": "ep", "EndpointArn": f"{arn}:endpoint/ep", "EndpointConfigName": "cfg",
            "EndpointStatus": "InService", "CreationTime": "2026-12-01T00:00:00Z",
            "LastModifiedTime": "2026-12-01T00:00:00Z"}, {"EndpointName": "ep"})
        stub.add_response("describe_endpoint_config", {
            "EndpointConfigName": "cfg", "EndpointConfigArn": f"{arn}:endpoint-config/cfg",
            "CreationTime": "2026-12-01T00:00:00Z", "ProductionVariants": [variant],
            "ShadowProductionVariants": [{**variant, "VariantName": "Shadow", "ModelName": "shadow"}],
            "VpcConfig": {"SecurityGroupIds": [net.sg_notebook_ok], "Subnets": [net.private_subnets[1]]}},
            {"EndpointConfigName": "cfg"})
        for model, subnet in (("live", net.private_subnets[0]), ("shadow", net.public_subnet)):
            stub.add_response("describe_model", {
                "ModelName": model, "ModelArn": f"{arn}:model/{model}", "CreationTime": "2026-12-01T00:00:00Z",
                "ExecutionRoleArn": f"arn:aws:iam::{aws.account}:role/sm",
                "VpcConfig": {"SecurityGroupIds": [net.sg_notebook_ok], "Subnets": [subnet]}}, {"ModelName": model})
        stub.add_response("list_tags", {"Tags": [{"Key": k, "Value": v} for k, v in TAGS.items()]},
                          {"ResourceArn": ANY})
        collected = Collector(aws.clients, {ENDPOINT}).collect([ResourceRef(ENDPOINT, "ep", aws.account, aws.region)],
                                                               follow=False)
    [endpoint] = collected.resources
    assert endpoint.state["Models"] == ["live", "shadow"]
    assert endpoint.state["VpcConfig"]["Subnets"] == sorted([net.private_subnets[0], net.private_subnets[1],
                                                             net.public_subnet])
    assert [v["VariantName"] for v in endpoint.state["ShadowProductionVariants"]] == ["Shadow"]
