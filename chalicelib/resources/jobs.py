"""SageMaker training, processing, hyperparameter tuning and transform jobs: one module, since the four
kinds are read into one shape (`job_view`: isolation, VPC, encryption, instance count, status)."""
from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from ..model import PROCESSING_JOB, TRAINING_JOB, TRANSFORM_JOB, TUNING_JOB, Resource, ResourceRef, finished_job
from ..reads import missing, sagemaker_tags_of
from .base import (
    IN_VPC_FIELDS,
    SAGEMAKER_NAME_RE,
    TAG_FIELDS,
    USED_BY_ENDPOINT,
    USED_BY_TRAINING,
    Listing,
    ResourceType,
    StateChange,
    in_vpc,
    vpc_uses,
)


def _describe_job(lookups: Any, ref: ResourceRef) -> dict[str, Any] | None:
    sm, name = lookups.sagemaker, ref.resource_id
    try:
        if ref.resource_type == TRAINING_JOB:
            return sm.describe_training_job(TrainingJobName=name)
        if ref.resource_type == PROCESSING_JOB:
            return sm.describe_processing_job(ProcessingJobName=name)
        if ref.resource_type == TUNING_JOB:
            return sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        return sm.describe_transform_job(TransformJobName=name)
    except ClientError as exc:
        if missing(exc):
            return None
        raise


def instance_count(resource_config: dict[str, Any] | None) -> int | None:
    """Instances of a training resource config: a heterogeneous cluster's instance groups added up
    (it has no InstanceCount of its own), else its InstanceCount."""
    config = resource_config or {}
    groups = config.get("InstanceGroups") or []
    if groups:
        return sum(int(g.get("InstanceCount") or 0) for g in groups)
    return config.get("InstanceCount") or config.get("SelectedInstanceCount")


def _definition_instances(definition: dict[str, Any]) -> int:
    """Instances each training job of a tuning definition runs on: its ResourceConfig, or its
    HyperParameterTuningResourceConfig (one count, or one of several instance configurations)."""
    tuning = definition.get("HyperParameterTuningResourceConfig") or {}
    counts = [instance_count(definition.get("ResourceConfig")), tuning.get("InstanceCount")]
    counts += [c.get("InstanceCount") for c in tuning.get("InstanceConfigs") or []]
    return max((int(c) for c in counts if c), default=1)


def job_view(kind: str, job: dict[str, Any], model: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every kind of job as one shape: isolation, VPC, encryption, instance count, status."""
    if kind == TRAINING_JOB:
        status, settings = job.get("TrainingJobStatus"), job
        count = instance_count(job.get("ResourceConfig"))
    elif kind == PROCESSING_JOB:
        status, settings = job.get("ProcessingJobStatus"), job.get("NetworkConfig") or {}
        count = ((job.get("ProcessingResources") or {}).get("ClusterConfig") or {}).get("InstanceCount")
    elif kind == TUNING_JOB:
        status = job.get("HyperParameterTuningJobStatus")
        definitions = [job["TrainingJobDefinition"]] if job.get("TrainingJobDefinition") else []
        definitions += job.get("TrainingJobDefinitions") or []
        # every training job the tuner starts must comply: the least isolated definition decides
        vpcs = [d.get("VpcConfig") for d in definitions]
        settings = {
            "EnableNetworkIsolation": bool(definitions) and all(d.get("EnableNetworkIsolation") for d in definitions),
            "EnableInterContainerTrafficEncryption":
                bool(definitions) and all(d.get("EnableInterContainerTrafficEncryption") for d in definitions),
            "VpcConfig": {"Subnets": sorted({s for v in vpcs for s in v.get("Subnets", [])}),
                          "SecurityGroupIds": sorted({g for v in vpcs for g in v.get("SecurityGroupIds", [])})}
            if definitions and all(vpcs) else None,
        }
        count = max((_definition_instances(d) for d in definitions), default=None)
    else:  # transform: isolation and VPC are the model's
        status, settings = job.get("TransformJobStatus"), model or {}
        count = (job.get("TransformResources") or {}).get("InstanceCount")
    name_key = {TRAINING_JOB: "TrainingJobName", PROCESSING_JOB: "ProcessingJobName",
                TUNING_JOB: "HyperParameterTuningJobName", TRANSFORM_JOB: "TransformJobName"}[kind]
    view = {
        "JobName": job.get(name_key),
        "JobKind": kind,
        "JobStatus": status,
        "EnableNetworkIsolation": bool(settings.get("EnableNetworkIsolation")),
        "VpcConfig": settings.get("VpcConfig") or None,
        "InstanceCount": count,
    }
    if kind == TRANSFORM_JOB:
        view["ModelName"] = job.get("ModelName")
    else:
        view["EnableInterContainerTrafficEncryption"] = bool(settings.get("EnableInterContainerTrafficEncryption"))
    return view


def collect_job(lookups: Any, ref: ResourceRef) -> Resource | None:
    job = _describe_job(lookups, ref)
    if job is None:
        return None
    model = lookups.model(job["ModelName"]) if ref.resource_type == TRANSFORM_JOB and job.get("ModelName") else None
    state = job_view(ref.resource_type, job, model)
    subnets = (state.get("VpcConfig") or {}).get("Subnets", [])
    in_vpc(lookups, state, subnets)
    arn_key = {TRAINING_JOB: "TrainingJobArn", PROCESSING_JOB: "ProcessingJobArn",
               TUNING_JOB: "HyperParameterTuningJobArn", TRANSFORM_JOB: "TransformJobArn"}[ref.resource_type]
    arn = job[arn_key]
    return Resource(ref, arn, state, sagemaker_tags_of(lookups, arn), version=f"{state['JobStatus']}")




def collect(lookups: Any, ref: ResourceRef, hints: frozenset) -> Resource | None:
    return collect_job(lookups, ref)


def related(resource: Resource) -> list[tuple[ResourceRef, set[str]]]:
    """What a running job uses. A finished job uses nothing any more: its subnets and groups are not
    SageMaker's on its account (VPC.9, SG.4, VPC.11 and the dependency index see the running ones only)."""
    if finished_job(resource):
        return []
    # a transform job runs its model's containers in the model's network: inference, like endpoints
    kind = USED_BY_ENDPOINT if resource.ref.resource_type == TRANSFORM_JOB else USED_BY_TRAINING
    return vpc_uses(resource, kind)


# Jobs whose network settings matter now; scans and sweeps also list those created within
# NETGUARD_JOB_LOOKBACK_DAYS whatever their status (CreationTimeAfter, in all four List*Jobs), for the audit
RUNNING = {"StatusEquals": "InProgress"}
STATE_FIELDS = frozenset({"JobName", "JobKind", "JobStatus", "EnableNetworkIsolation", "VpcConfig", "InstanceCount",
                          "EnableInterContainerTrafficEncryption"}) | IN_VPC_FIELDS | TAG_FIELDS
# a transform job runs a model: its isolation and VPC are the model's, and it has no inter-container traffic
TRANSFORM_FIELDS = STATE_FIELDS - {"EnableInterContainerTrafficEncryption"} | {"ModelName"}


def _job_type(rtype: str, arn_resource: str, call: str, name_field: str, detail_type: str, kind: str,
              list_key: str, pages: Any, reads: str, fields: frozenset[str] = STATE_FIELDS) -> ResourceType:
    return ResourceType(
        type=rtype, service="sagemaker", arn_resource=arn_resource, id_pattern=SAGEMAKER_NAME_RE,
        api_calls=(call,), name_fields={call: name_field},
        state_change=StateChange(detail_type, f"{kind}Name", f"{kind}Status", ("InProgress",)),
        listing=Listing(pages, list_key, f"{kind}Name", RUNNING, since_param="CreationTimeAfter"),
        reads=(reads,), state_fields=fields, collect=collect, related=related)


TRAINING = _job_type(TRAINING_JOB, "training-job", "CreateTrainingJob", "trainingJobName",
                     "SageMaker Training Job State Change", "TrainingJob", "TrainingJobSummaries",
                     lambda sagemaker: sagemaker.get_paginator("list_training_jobs"), "sagemaker:DescribeTrainingJob")
PROCESSING = _job_type(PROCESSING_JOB, "processing-job", "CreateProcessingJob", "processingJobName",
                       "SageMaker Processing Job State Change", "ProcessingJob", "ProcessingJobSummaries",
                       lambda sagemaker: sagemaker.get_paginator("list_processing_jobs"),
                       "sagemaker:DescribeProcessingJob")
TUNING = _job_type(TUNING_JOB, "hyper-parameter-tuning-job", "CreateHyperParameterTuningJob",
                   "hyperParameterTuningJobName", "SageMaker HyperParameter Tuning Job State Change",
                   "HyperParameterTuningJob", "HyperParameterTuningJobSummaries",
                   lambda sagemaker: sagemaker.get_paginator("list_hyper_parameter_tuning_jobs"),
                   "sagemaker:DescribeHyperParameterTuningJob")
TRANSFORM = _job_type(TRANSFORM_JOB, "transform-job", "CreateTransformJob", "transformJobName",
                      "SageMaker Transform Job State Change", "TransformJob", "TransformJobSummaries",
                      lambda sagemaker: sagemaker.get_paginator("list_transform_jobs"),
                      "sagemaker:DescribeTransformJob", TRANSFORM_FIELDS)
