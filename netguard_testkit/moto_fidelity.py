"""Make moto 5.2.x notebooks behave like AWS where netguard depends on it. Used by tests and the demo.

moto differs from AWS here (measured): notebooks start InService (AWS: Pending, then InService
minutes later), stop from any state straight to Stopped (AWS: only from InService, via Stopping),
and never change LastModifiedTime. `aws_like_notebooks()` patches exactly that, and `set_status`
plays SageMaker's part of moving a notebook on (the native state-change event follows it).
It also simulates the network interface SageMaker puts in the customer VPC for a notebook, which
moto does not create.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from unittest import mock

from moto.core.utils import utcnow
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.models import FakeSagemakerNotebookInstance, sagemaker_backends

_original_init = FakeSagemakerNotebookInstance.__init__


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    self._netguard_creating = True  # moto's __init__ calls start(): a new notebook stays Pending
    _original_init(self, *args, **kwargs)
    del self._netguard_creating
    self.status = "Pending"


def _start(self: Any) -> None:
    if getattr(self, "_netguard_creating", False):
        return
    if self.status not in ("Stopped", "Failed"):
        raise ValidationError(message=f"Status ({self.status}) not in ([Stopped, Failed]). Unable to transition "
                                      f"to (Pending) for Notebook Instance ({self.arn})")
    self.status = "Pending"
    self.last_modified_time = utcnow()


def _stop(self: Any) -> None:
    if self.status != "InService":
        raise ValidationError(message=f"Status ({self.status}) not in ([InService]). Unable to transition "
                                      f"to (Stopping) for Notebook Instance ({self.arn})")
    self.status = "Stopping"
    self.last_modified_time = utcnow()


@contextlib.contextmanager
def aws_like_notebooks() -> Iterator[None]:
    with mock.patch.object(FakeSagemakerNotebookInstance, "__init__", _init), \
         mock.patch.object(FakeSagemakerNotebookInstance, "start", _start), \
         mock.patch.object(FakeSagemakerNotebookInstance, "stop", _stop):
        yield


def set_status(account: str, region: str, name: str, status: str) -> None:
    """Move a notebook to `status` as SageMaker would (e.g. Pending -> InService, Stopping -> Stopped)."""
    notebook = sagemaker_backends[account][region].notebook_instances[name]
    notebook.status = status
    notebook.last_modified_time = utcnow()


def notebook_status(account: str, region: str, name: str) -> str:
    return sagemaker_backends[account][region].notebook_instances[name].status


def attach_notebook_eni(ec2: Any, subnet_id: str, group_ids: list[str], notebook_name: str) -> str:
    """The network interface SageMaker creates in the customer subnet for a notebook (moto does not)."""
    eni = ec2.create_network_interface(
        SubnetId=subnet_id, Groups=group_ids,
        Description=f"SageMaker notebook instance {notebook_name} (simulated by netguard_testkit)")
    return eni["NetworkInterface"]["NetworkInterfaceId"]
