"""SageMaker jobs (training, processing, tuning, transform): stop a running one. Its network settings cannot
be changed, and SageMaker cannot restart a stopped job, so restore refuses it."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..model import ALREADY_DONE, PROCESSING_JOB, SUCCEEDED, TRAINING_JOB, TUNING_JOB
from .base import DONE, SAGEMAKER, ActionRequest, ActionResult, Call, failure, make


def _stop_call(kind: str, name: str) -> Call:
    says = "stopped the job"
    if kind == TRAINING_JOB:
        return SAGEMAKER.stop_training_job(TrainingJobName=name, says=says)
    if kind == PROCESSING_JOB:
        return SAGEMAKER.stop_processing_job(ProcessingJobName=name, says=says)
    if kind == TUNING_JOB:
        return SAGEMAKER.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name, says=says)
    return SAGEMAKER.stop_transform_job(TransformJobName=name, says=says)


def _status_reader(sm: Any, kind: str, name: str) -> Callable[[], str | None]:
    """How to read the status of one kind of job."""
    if kind == TRAINING_JOB:
        return lambda: sm.describe_training_job(TrainingJobName=name).get("TrainingJobStatus")
    if kind == PROCESSING_JOB:
        return lambda: sm.describe_processing_job(ProcessingJobName=name).get("ProcessingJobStatus")
    if kind == TUNING_JOB:
        return lambda: sm.describe_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name).get("HyperParameterTuningJobStatus")
    return lambda: sm.describe_transform_job(TransformJobName=name).get("TransformJobStatus")


def stop_job(req: ActionRequest) -> ActionResult:
    """Stop a running job: its network settings cannot be changed. A finished job is left alone."""
    if req.resource.state.get("JobStatus") != "InProgress":
        return ActionResult(ALREADY_DONE, f"job is {req.resource.state.get('JobStatus')}: nothing to stop")
    kind, name = req.resource.ref.resource_type, req.resource.ref.resource_id
    stopped = make(_stop_call(kind, name), req.client)
    if stopped.result == DONE:
        return ActionResult(SUCCEEDED, "stopped the job; its network settings are immutable: run it again compliant")
    if not isinstance(stopped.exc, BotoCoreError):
        try:
            current = _status_reader(req.client("sagemaker"), kind, name)()
        except ClientError:
            current = None
        if current in ("Stopping", "Stopped", "Completed", "Failed"):
            return ActionResult(ALREADY_DONE, f"job already {current}")
    raise failure(stopped, "Stop*Job")
