"""Make moto 5.2.5 behave like AWS for SageMaker jobs, models and domains (and the VPC endpoints they use).

Companion of `netguard_testkit.moto_fidelity` (which does the same for notebook instances). Use both:

    with mock_aws(), aws_like_notebooks(), aws_like_sagemaker():
        ...

Every patch is applied with `unittest.mock.patch.object` on a moto class (backend models or the
response handlers), so it is undone when the context manager exits, and it is active for an in-process
`mock_aws()` and for a `moto.server.ThreadedMotoServer` started in the same process alike (both
dispatch to the same classes). A moto server in another process is not patched.

What moto 5.2.5 does differently from AWS, measured against moto's `sagemaker/models.py` and
`responses.py`, and what `aws_like_sagemaker()` does about it:

Jobs
  * Training, processing, transform and hyperparameter tuning jobs are created `Completed` (with end
    times already set). AWS creates them `InProgress` and finishes them minutes to days later.
    -> new jobs start `InProgress` (training: SecondaryStatus `Starting`), no end time;
       `set_job_status()` plays SageMaker's part afterwards.
  * `StopTrainingJob`, `StopTransformJob` and `StopHyperParameterTuningJob` are not implemented
    (moto raises NotImplementedError -> HTTP 500). `StopProcessingJob` exists but moves a job of any
    status straight to `Stopped`. AWS accepts a stop only while the job is `InProgress`, moves it to
    `Stopping` (SageMaker later sets `Stopped`), and otherwise answers ValidationException
    "The request was rejected because the training job is in status Completed." (text verified for
    training jobs; the other kinds are given the same shape).
    -> all four stop operations implemented that way; an unknown name answers ResourceNotFound (the
       error the API reference lists for these operations).
  * `CreateProcessingJob` drops `ProcessingResources` and `Environment` (DescribeProcessingJob never
    returns them, so the instance count of a processing job is unknown). -> kept and returned.
  * `DescribeTrainingJob` of an unknown job answers ValidationException "Could not find training job
    '<arn>'."; AWS answers ValidationException "Requested resource not found." -> AWS's text.
  * Kept correctly by moto (no patch): training `VpcConfig`, `EnableNetworkIsolation`,
    `EnableInterContainerTrafficEncryption`; processing `NetworkConfig` (all three fields); tuning
    `TrainingJobDefinition(s)` as given (VpcConfig and both flags included); tags of every kind.

Models
  * `CreateModel` ignores `EnableNetworkIsolation` (DescribeModel always says false) and
    `InferenceExecutionConfig`. -> both kept and returned. `VpcConfig` is kept by moto.

Studio domains
  * `UpdateDomain` and `ListApps` are not implemented, and moto has no apps at all. -> `UpdateDomain`
    implemented for the settings netguard touches (AppNetworkAccessType, SubnetIds,
    DefaultUserSettings, DefaultSpaceSettings, AppSecurityGroupManagement); like AWS it refuses to change
    AppNetworkAccessType or remove subnets while an app of the domain is InService, Pending or
    Deleting (ResourceInUse; the message text is ours). `ListApps` lists apps registered with
    `add_studio_app()` (moto's CreateApp does not exist).
  * `DescribeDomain` always returns `SecurityGroupIdForDomainBoundary` = "sg-<domain name>", a group
    that does not exist; AWS sets it only for RStudio domains. -> omitted unless RStudio settings are
    present. Empty `FailureReason` is omitted as AWS does.
  * A domain created without `Tags` keeps None as its tags, and `ListTags` on it fails inside moto
    (HTTP 500; in process a TypeError). AWS answers an empty list. -> an empty list (also for transform
    and tuning jobs, which moto keeps the same way).
  * Not patched: moto domain ids are `d-<name>` (AWS: `d-` + 12 random characters); no EFS, no
    inbound/outbound NFS security groups, no network interfaces are created for a VpcOnly domain.

VPC endpoints (EC2; SageMaker in a private VPC depends on them, so they are patched here too)
  * Interface endpoints: moto creates one network interface per subnet, but with the VPC default
    security group instead of the endpoint's groups, an empty description, InterfaceType `interface`,
    RequesterManaged false and a private IP outside the subnet. AWS: the endpoint's groups,
    "VPC Endpoint Interface vpce-...", InterfaceType `vpc_endpoint`, RequesterManaged true, an IP of
    the subnet. -> fixed at creation, and kept in step by ModifyVpcEndpoint (groups added/removed,
    interfaces added/removed with subnets).
  * An interface endpoint created without SecurityGroupIds shows no groups; AWS uses the VPC default
    security group. -> the default group.
  * A gateway endpoint reports PrivateDnsEnabled true; AWS reports false. -> false.
  * `ModifyVpcEndpoint` ignores `PrivateDnsEnabled`. -> applied. (Neither moto nor this patch checks
    that the VPC has DNS support and hostnames enabled, which AWS requires.)
  * DescribeNetworkInterfaces ignores the filters `interface-type` and `requester-managed` (matches
    nothing). -> supported.

Resource Groups Tagging API (netguard reads SageMaker tags with it in sweeps)
  * `GetResources` without `TagsPerPage` stops a page at 100 tags (20 notebooks of 5 tags), as if
    `TagsPerPage=100` had been given. AWS limits a page by tags only when `TagsPerPage` is given and
    recommends `ResourcesPerPage` (at most 100 resources) instead. -> no tag limit unless asked.

DynamoDB (netguard's ledger; `netguard_testkit.moto_dynamodb`, entered by `aws_like_sagemaker()` too)
  * TransactWriteItems is neither isolated nor all-or-nothing under concurrent requests, and copies
    every table it touches. -> serialized writes, conditions checked before anything is written.

Not patched (documented): endpoints are `InService` at once (AWS: `Creating` first; move them with
`set_job_status(..., "endpoint", ...)`); UpdateEndpointWeightsAndCapacities does not require InService.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock

from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow
from moto.ec2.models.elastic_network_interfaces import NetworkInterface
from moto.ec2.models.vpcs import VPCBackend
from moto.ec2.responses.vpcs import VPCs
from moto.ec2.utils import generate_dns_from_ip, random_private_ip
from moto.sagemaker.exceptions import ResourceInUseException, ResourceNotFound, ValidationError
from moto.sagemaker.models import (
    Domain,
    FakeProcessingJob,
    FakeTrainingJob,
    FakeTransformJob,
    HyperParameterTuningJob,
    SageMakerModelBackend,
    arn_formatter,
    sagemaker_backends,
)
from moto.sagemaker.responses import SageMakerResponse

from .moto_dynamodb import aws_like_dynamodb

__all__ = ["JOB_KINDS", "add_studio_app", "aws_like_sagemaker", "aws_like_vpc_endpoints", "job_status",
           "set_job_created", "set_job_status"]


@dataclass(frozen=True)
class _Kind:
    store: str            # attribute of the moto SageMaker backend holding the objects by name
    status: str           # attribute holding the status
    label: str            # as AWS names the resource in its messages
    arn_type: str         # resource type in the ARN
    end_time: str | None  # attribute set when the job reaches a terminal status
    status_shape: str     # botocore shape listing the valid statuses
    stop_param: str | None = None


JOB_KINDS: dict[str, _Kind] = {
    "training": _Kind("training_jobs", "training_job_status", "training job", "training-job",
                      "training_end_time", "TrainingJobStatus", "TrainingJobName"),
    "processing": _Kind("processing_jobs", "processing_job_status", "processing job", "processing-job",
                        "processing_end_time", "ProcessingJobStatus", "ProcessingJobName"),
    "transform": _Kind("transform_jobs", "transform_job_status", "transform job", "transform-job",
                       "transform_end_time", "TransformJobStatus", "TransformJobName"),
    "tuning": _Kind("hyper_parameter_tuning_jobs", "hyper_parameter_tuning_job_status",
                    "hyperparameter tuning job", "hyper-parameter-tuning-job", "hyper_parameter_tuning_end_time",
                    "HyperParameterTuningJobStatus", "HyperParameterTuningJobName"),
    # Not a job, but SageMaker moves endpoints on too (moto: InService at once).
    "endpoint": _Kind("endpoints", "endpoint_status", "endpoint", "endpoint", None, "EndpointStatus"),
}
_TERMINAL = {"Completed", "Failed", "Stopped"}
_TRAINING_SECONDARY = {"InProgress": "Training", "Completed": "Completed", "Failed": "Failed",
                       "Stopping": "Stopping", "Stopped": "Stopped"}
_APP_BUSY = ("InService", "Pending", "Deleting")


# --- jobs start InProgress -------------------------------------------------------------------------
# moto: every job's __init__ ends with status Completed and end time set. AWS: InProgress, no end time.

_training_init = FakeTrainingJob.__init__
_processing_init = FakeProcessingJob.__init__
_transform_init = FakeTransformJob.__init__
_tuning_init = HyperParameterTuningJob.__init__
_domain_init_original = Domain.__init__


def _training_job_init(self: Any, *args: Any, **kwargs: Any) -> None:
    _training_init(self, *args, **kwargs)
    self.training_job_status = "InProgress"
    self.secondary_status = "Starting"
    self.training_start_time = None
    self.training_end_time = None
    self.final_metric_data_list = None
    self.secondary_status_transitions = [{"Status": "Starting", "StartTime": self.creation_time,
                                          "StatusMessage": "Launching requested ML instances"}]


def _domain_init(self: Any, *args: Any, **kwargs: Any) -> None:
    _domain_init_original(self, *args, **kwargs)
    self.tags = self.tags or []


def _processing_job_init(self: Any, *args: Any, **kwargs: Any) -> None:
    _processing_init(self, *args, **kwargs)
    self.processing_job_status = "InProgress"
    self.processing_end_time = None


def _transform_job_init(self: Any, *args: Any, **kwargs: Any) -> None:
    _transform_init(self, *args, **kwargs)
    self.transform_job_status = "InProgress"
    self.tags = self.tags or []
    self.transform_end_time = None
    # moto returns these as "" where AWS leaves them out.
    self.failure_reason = None
    self.labeling_job_arn = None
    self.auto_ml_job_arn = None


def _tuning_job_init(self: Any, *args: Any, **kwargs: Any) -> None:
    _tuning_init(self, *args, **kwargs)
    self.hyper_parameter_tuning_job_status = "InProgress"
    self.tags = self.tags or []
    self.hyper_parameter_tuning_end_time = None
    self.training_job_status_counters = {"Completed": 0, "InProgress": 1, "RetryableError": 0,
                                         "NonRetryableError": 0, "Stopped": 0}
    self.objective_status_counters = {"Succeeded": 0, "Pending": 1, "Failed": 0}
    # moto invents a finished best job; AWS has none while the first training job runs.
    self.best_training_job = None
    self.OverallBestTrainingJob = None
    self.tuning_job_completion_details = None
    self.failure_reason = None


# --- Stop*Job ---------------------------------------------------------------------------------------
# moto: StopTrainingJob/StopTransformJob/StopHyperParameterTuningJob not implemented; StopProcessingJob
# sets Stopped from any status. AWS: InProgress -> Stopping, anything else -> ValidationException.

def _stop_job(kind: str) -> Any:
    spec = JOB_KINDS[kind]

    def stop(self: SageMakerModelBackend, name: str) -> None:
        job = getattr(self, spec.store).get(name)
        if job is None:
            arn = arn_formatter(spec.arn_type, name, self.account_id, self.region_name)
            raise ResourceNotFound(message=f"Could not find {spec.label} '{arn}'.")
        status = getattr(job, spec.status)
        if status != "InProgress":
            raise ValidationError(message=f"The request was rejected because the {spec.label} is in status {status}.")
        setattr(job, spec.status, "Stopping")
        job.last_modified_time = utcnow()
        if kind == "training":
            _training_transition(job, "Stopping", "Stopping the training job")

    stop.__name__ = f"stop_{spec.store[:-1]}"
    return stop


def _stop_response(kind: str) -> Any:
    spec = JOB_KINDS[kind]
    backend_method = f"stop_{spec.store[:-1]}"

    def handler(self: SageMakerResponse) -> EmptyResult:
        getattr(self.sagemaker_backend, backend_method)(self._get_param(spec.stop_param))
        return EmptyResult()

    handler.__name__ = backend_method
    return handler


def _training_transition(job: Any, secondary: str, message: str) -> None:
    now = utcnow()
    transitions = list(job.secondary_status_transitions or [])
    if transitions and "EndTime" not in transitions[-1]:
        transitions[-1] = {**transitions[-1], "EndTime": now}
    transitions.append({"Status": secondary, "StartTime": now, "StatusMessage": message})
    job.secondary_status_transitions = transitions
    job.secondary_status = secondary


# --- fields moto drops --------------------------------------------------------------------------------

_describe_training_job = SageMakerModelBackend.describe_training_job
_create_model_response = SageMakerResponse.create_model
_create_processing_job_response = SageMakerResponse.create_processing_job


def _describe_training_job_aws_error(self: SageMakerModelBackend, training_job_name: str) -> dict[str, Any]:
    # moto: "Could not find training job '<arn>'."; AWS: "Requested resource not found."
    if training_job_name not in self.training_jobs:
        raise ValidationError(message="Requested resource not found.")
    return _describe_training_job(self, training_job_name)


def _create_model(self: SageMakerResponse) -> Any:
    # moto: CreateModel ignores EnableNetworkIsolation and InferenceExecutionConfig.
    result = _create_model_response(self)
    model = self.sagemaker_backend._models[self._get_param("ModelName")]
    model.enable_network_isolation = bool(self._get_param("EnableNetworkIsolation", False))
    execution_config = self._get_param("InferenceExecutionConfig")
    if execution_config:
        model.inference_execution_config = execution_config
    return result


def _create_processing_job(self: SageMakerResponse) -> Any:
    # moto: CreateProcessingJob drops ProcessingResources and Environment.
    result = _create_processing_job_response(self)
    job = self.sagemaker_backend.processing_jobs[self._get_param("ProcessingJobName")]
    job.processing_resources = self._get_param("ProcessingResources")
    job.environment = self._get_param("Environment")
    return result


# --- Studio domains -------------------------------------------------------------------------------------

_domain_describe = Domain.describe


def _describe_domain(self: Domain) -> dict[str, Any]:
    # moto: always a made-up SecurityGroupIdForDomainBoundary and FailureReason "". AWS: RStudio only / absent.
    out = _domain_describe(self)
    if not (self.domain_settings or {}).get("RStudioServerProDomainSettings"):
        out.pop("SecurityGroupIdForDomainBoundary", None)
    if not out.get("FailureReason"):
        out.pop("FailureReason", None)
    return {k: v for k, v in out.items() if v is not None}


def _apps(backend: SageMakerModelBackend) -> list[dict[str, Any]]:
    apps = backend.__dict__.get("netguard_studio_apps")
    if apps is None:
        apps = backend.__dict__["netguard_studio_apps"] = []
    return apps


def _update_domain(self: SageMakerModelBackend, domain_id: str, **changes: Any) -> str:
    # moto: UpdateDomain not implemented.
    domain = self.domains.get(domain_id)
    if domain is None:
        arn = arn_formatter("domain", domain_id, self.account_id, self.region_name)
        raise ResourceNotFound(message=f"Domain '{arn}' does not exist.")
    busy = [a["AppName"] for a in _apps(self) if a["DomainId"] == domain_id and a["Status"] in _APP_BUSY]
    network_type = changes.get("app_network_access_type")
    subnets = changes.get("subnet_ids")
    changing_network = network_type is not None and network_type != domain.app_network_access_type
    removing_subnets = subnets is not None and bool(set(domain.subnet_ids or []) - set(subnets))
    if busy and (changing_network or removing_subnets):
        field = "AppNetworkAccessType" if changing_network else "SubnetIds"
        raise ResourceInUseException(
            message=f"{field} of domain {domain_id} can only be updated when no apps are InService, Pending or "
                    f"Deleting; apps {sorted(busy)} are not.")
    for attribute, value in changes.items():
        if value is not None:
            setattr(domain, attribute, value)
    domain.last_modified_time = utcnow()
    return domain.arn


def _update_domain_response(self: SageMakerResponse) -> ActionResult:
    arn = self.sagemaker_backend.update_domain(
        self._get_param("DomainId"),
        app_network_access_type=self._get_param("AppNetworkAccessType"),
        subnet_ids=self._get_param("SubnetIds"),
        default_user_settings=self._get_param("DefaultUserSettings"),
        default_space_settings=self._get_param("DefaultSpaceSettings"),
        app_security_group_management=self._get_param("AppSecurityGroupManagement"),
    )
    return ActionResult({"DomainArn": arn})


def _list_apps(self: SageMakerModelBackend, domain_id: str | None = None, user_profile_name: str | None = None,
               space_name: str | None = None) -> list[dict[str, Any]]:
    # moto: ListApps not implemented (and apps do not exist in moto).
    return [dict(a) for a in _apps(self)
            if (domain_id is None or a["DomainId"] == domain_id)
            and (user_profile_name is None or a.get("UserProfileName") == user_profile_name)
            and (space_name is None or a.get("SpaceName") == space_name)]


def _list_apps_response(self: SageMakerResponse) -> ActionResult:
    apps = self.sagemaker_backend.list_apps(self._get_param("DomainIdEquals"),
                                            self._get_param("UserProfileNameEquals"),
                                            self._get_param("SpaceNameEquals"))
    return ActionResult({"Apps": apps})


# --- VPC endpoints' network interfaces -------------------------------------------------------------------

_create_vpc_endpoint = VPCBackend.create_vpc_endpoint
_modify_vpc_endpoint = VPCBackend.modify_vpc_endpoint
_modify_vpc_endpoint_response = VPCs.modify_vpc_endpoint
_eni_filter_value = NetworkInterface.get_filter_value


def _endpoint_enis_like_aws(backend: Any, endpoint: Any) -> None:
    """Make the endpoint's interfaces look as AWS makes them (groups, description, type, IP in subnet)."""
    groups = [backend.get_security_group_from_id(g) for g in endpoint.security_group_ids]
    for eni_id in endpoint.network_interface_ids:
        eni = backend.enis.get(eni_id)
        if eni is None:
            continue
        eni._group_set = [g for g in groups if g is not None]
        eni.description = f"VPC Endpoint Interface {endpoint.id}"
        eni.interface_type = "vpc_endpoint"
        eni.requester_managed = True
        if not _in_subnet(eni.private_ip_address, eni.subnet.cidr_block):
            ip = random_private_ip(eni.subnet.cidr_block)
            eni.private_ip_address = ip
            eni.private_ip_addresses = [{"Primary": True, "PrivateIpAddress": ip}]
            if getattr(eni, "private_dns_name", None):
                eni.private_dns_name = generate_dns_from_ip(ip)
                eni.private_ip_addresses[0]["PrivateDnsName"] = eni.private_dns_name


def _in_subnet(ip: str | None, cidr: str) -> bool:
    import ipaddress  # noqa: PLC0415

    try:
        return ip is not None and ipaddress.ip_address(ip) in ipaddress.ip_network(cidr)
    except ValueError:
        return False


def _create_vpc_endpoint_like_aws(self: Any, *args: Any, **kwargs: Any) -> Any:
    endpoint = _create_vpc_endpoint(self, *args, **kwargs)
    if (endpoint.vpc_endpoint_type or "").lower() == "interface":
        if not endpoint.security_group_ids:  # moto: no groups. AWS: the VPC default security group.
            default = self.get_default_security_group(endpoint.vpc_id)
            endpoint.security_group_ids = [default.id] if default else []
        _endpoint_enis_like_aws(self, endpoint)
    else:
        endpoint.private_dns_enabled = False  # moto: true for gateway endpoints. AWS: false.
    return endpoint


def _modify_vpc_endpoint_like_aws(self: Any, vpc_id: str, policy_doc: str, add_subnets: list[str] | None,
                                  remove_subnets: list[str] | None, *args: Any, **kwargs: Any) -> None:
    # moto: subnets/groups change on the endpoint only. AWS: its interfaces follow.
    _modify_vpc_endpoint(self, vpc_id, policy_doc, add_subnets, remove_subnets, *args, **kwargs)
    endpoint = self.describe_vpc_endpoints(vpc_end_point_ids=[vpc_id])[0]
    if (endpoint.vpc_endpoint_type or "").lower() != "interface":
        return
    by_subnet = {self.enis[e].subnet.id: e for e in endpoint.network_interface_ids if e in self.enis}
    for subnet_id in remove_subnets or []:
        eni_id = by_subnet.pop(subnet_id, None)
        if eni_id:
            self.enis.pop(eni_id, None)
    for subnet_id in add_subnets or []:
        if subnet_id not in by_subnet:
            subnet = self.get_subnet(subnet_id)
            by_subnet[subnet_id] = self.create_network_interface(subnet_id, random_private_ip(subnet.cidr_block)).id
    endpoint.network_interface_ids = list(by_subnet.values())
    _endpoint_enis_like_aws(self, endpoint)


def _modify_vpc_endpoint_response_like_aws(self: Any) -> Any:
    # moto: ModifyVpcEndpoint ignores PrivateDnsEnabled.
    result = _modify_vpc_endpoint_response(self)
    private_dns = self._get_param("PrivateDnsEnabled")
    if private_dns is not None:
        endpoint = self.ec2_backend.describe_vpc_endpoints(vpc_end_point_ids=[self._get_param("VpcEndpointId")])[0]
        endpoint.private_dns_enabled = str(private_dns).lower() == "true"
    return result


def _eni_filter_value_like_aws(self: Any, filter_name: str, method_name: str | None = None) -> Any:
    # moto: the filters interface-type and requester-managed match nothing.
    if filter_name == "interface-type":
        return self.interface_type
    if filter_name == "requester-managed":
        return str(bool(self.requester_managed)).lower()
    return _eni_filter_value(self, filter_name, method_name)


# --- the context managers -------------------------------------------------------------------------------

@contextlib.contextmanager
def aws_like_vpc_endpoints() -> Iterator[None]:
    """Only the VPC endpoint patches (see the module docstring). `aws_like_sagemaker()` includes them."""
    with mock.patch.object(VPCBackend, "create_vpc_endpoint", _create_vpc_endpoint_like_aws), \
         mock.patch.object(VPCBackend, "modify_vpc_endpoint", _modify_vpc_endpoint_like_aws), \
         mock.patch.object(VPCs, "modify_vpc_endpoint", _modify_vpc_endpoint_response_like_aws), \
         mock.patch.object(NetworkInterface, "get_filter_value", _eni_filter_value_like_aws):
        yield


@contextlib.contextmanager
def aws_like_sagemaker(vpc_endpoints: bool = True) -> Iterator[None]:
    """SageMaker jobs, models and domains as AWS has them (module docstring), and with `vpc_endpoints`
    the VPC endpoint interfaces too. Undone on exit."""
    patches: list[tuple[Any, str, Any]] = [
        (FakeTrainingJob, "__init__", _training_job_init),
        (FakeProcessingJob, "__init__", _processing_job_init),
        (FakeTransformJob, "__init__", _transform_job_init),
        (HyperParameterTuningJob, "__init__", _tuning_job_init),
        (SageMakerModelBackend, "describe_training_job", _describe_training_job_aws_error),
        (SageMakerResponse, "create_model", _create_model),
        (SageMakerResponse, "create_processing_job", _create_processing_job),
        (Domain, "__init__", _domain_init),
        (Domain, "describe", _describe_domain),
        (SageMakerModelBackend, "update_domain", _update_domain),
        (SageMakerResponse, "update_domain", _update_domain_response),
        (SageMakerModelBackend, "list_apps", _list_apps),
        (SageMakerResponse, "list_apps", _list_apps_response),
    ]
    for kind in ("training", "processing", "transform", "tuning"):
        name = f"stop_{JOB_KINDS[kind].store[:-1]}"
        patches += [(SageMakerModelBackend, name, _stop_job(kind)), (SageMakerResponse, name, _stop_response(kind))]
    from moto.resourcegroupstaggingapi.responses import ResourceGroupsTaggingAPIResponse  # noqa: PLC0415

    patches.append((ResourceGroupsTaggingAPIResponse, "get_resources",
                    _tags_per_page_only_when_asked(ResourceGroupsTaggingAPIResponse.get_resources)))
    with contextlib.ExitStack() as stack:
        for target, attribute, replacement in patches:
            stack.enter_context(mock.patch.object(target, attribute, replacement,
                                                  create=not hasattr(target, attribute)))
        if vpc_endpoints:
            stack.enter_context(aws_like_vpc_endpoints())
        # every world netguard runs in keeps its ledger in DynamoDB: transactions as AWS runs them
        stack.enter_context(aws_like_dynamodb())
        yield


# --- the tagging API -----------------------------------------------------------------------------------

def _tags_per_page_only_when_asked(original: Any) -> Any:
    def get_resources(self: Any) -> Any:
        if self._get_param("TagsPerPage") is not None:
            return original(self)
        backend = self.backend
        limited = backend.get_resources

        def unlimited(**kwargs: Any) -> Any:
            return limited(**{**kwargs, "tags_per_page": 2**31})

        with mock.patch.object(backend, "get_resources", unlimited):
            return original(self)

    return get_resources


# --- playing SageMaker's part ---------------------------------------------------------------------------

@functools.cache
def _valid_statuses(shape: str) -> frozenset[str]:
    import botocore.session  # noqa: PLC0415

    model = botocore.session.get_session().get_service_model("sagemaker")
    return frozenset(model.shape_for(shape).enum)


def _job(account: str, region: str, kind: str, name: str) -> tuple[_Kind, Any]:
    if kind not in JOB_KINDS:
        raise ValueError(f"kind must be one of {sorted(JOB_KINDS)}, not {kind!r}")
    spec = JOB_KINDS[kind]
    return spec, getattr(sagemaker_backends[account][region], spec.store)[name]


def set_job_status(account: str, region: str, kind: str, name: str, status: str) -> None:
    """Move a job (kind: training, processing, transform, tuning) or an endpoint to `status` as SageMaker
    would, e.g. InProgress -> Completed, Stopping -> Stopped, endpoint Creating -> InService.
    Works on the in-process backends, so for `mock_aws()` and an in-process ThreadedMotoServer."""
    spec, job = _job(account, region, kind, name)
    if status not in _valid_statuses(spec.status_shape):
        raise ValueError(f"{status!r} is not a {spec.status_shape}: {sorted(_valid_statuses(spec.status_shape))}")
    setattr(job, spec.status, status)
    job.last_modified_time = utcnow()
    if spec.end_time:
        setattr(job, spec.end_time, utcnow() if status in _TERMINAL else None)
    if kind == "training":
        if status == "InProgress" and job.training_start_time is None:
            job.training_start_time = utcnow()
        _training_transition(job, _TRAINING_SECONDARY[status], f"Set to {status} by netguard_testkit")


def set_job_created(account: str, region: str, kind: str, name: str, when: dt.datetime) -> None:
    """Say a job was created at `when` (UTC), as if it had been created then: what List*Jobs'
    CreationTimeAfter and Describe*Job's CreationTime see (moto keeps naive UTC times)."""
    _, job = _job(account, region, kind, name)
    job.creation_time = when.astimezone(dt.UTC).replace(tzinfo=None) if when.tzinfo else when


def job_status(account: str, region: str, kind: str, name: str) -> str:
    spec, job = _job(account, region, kind, name)
    return str(getattr(job, spec.status))


def add_studio_app(account: str, region: str, domain_id: str, app_name: str, status: str = "InService",
                   app_type: str = "JupyterLab", user_profile_name: str | None = "data-scientist",
                   space_name: str | None = None) -> None:
    """Register (or update the status of) a Studio app of a domain, as ListApps reports it. moto has no
    apps; UpdateDomain (patched) refuses network changes while one is InService/Pending/Deleting."""
    apps = _apps(sagemaker_backends[account][region])
    for app in apps:
        if app["DomainId"] == domain_id and app["AppName"] == app_name:
            app["Status"] = status
            return
    app = {"DomainId": domain_id, "AppType": app_type, "AppName": app_name, "Status": status,
           "CreationTime": utcnow()}
    if user_profile_name:
        app["UserProfileName"] = user_profile_name
    if space_name:
        app["SpaceName"] = space_name
    apps.append(app)
