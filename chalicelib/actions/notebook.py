"""Notebook instances: quarantine (stop it, tag it with the failed controls); restore removes the tag and,
when asked, starts it again."""
from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..model import ALREADY_DONE, SUCCEEDED, join_ids, split_ids
from .base import (
    DONE,
    SAGEMAKER,
    ActionRequest,
    ActionResult,
    Call,
    Plan,
    RestoreRequest,
    check,
    failure,
    make,
)
from .catalog import QUARANTINE_TAG
from .tags import tag_call


def _notebook_status(sm: Any, name: str) -> str | None:
    try:
        return sm.describe_notebook_instance(NotebookInstanceName=name).get("NotebookInstanceStatus")
    except ClientError:
        return None


def quarantine_notebook(req: ActionRequest) -> ActionResult:
    """Stop the notebook if it runs, and tag it `netguard:quarantined` with the failed controls.

    Its network settings cannot be changed: the owner must recreate it (said in the alert).
    """
    resource = req.resource
    name = resource.ref.resource_id
    done: list[str] = []
    if resource.state.get("NotebookInstanceStatus") == "InService":
        stopped = make(SAGEMAKER.stop_notebook_instance(NotebookInstanceName=name, says="stopped"), req.client)
        if stopped.result == DONE:
            done.append(stopped.call.says)
        # refused: someone (or a concurrent invocation) may have stopped it between our read and our call
        elif (isinstance(stopped.exc, BotoCoreError)
              or _notebook_status(req.client("sagemaker"), name) not in ("Stopping", "Stopped")):
            raise failure(stopped)
    # The controls it was quarantined for, with any earlier ones kept (a later run may see fewer).
    tag_value = join_ids(split_ids(resource.tags.get(QUARANTINE_TAG)) | set(req.control_ids))
    if resource.tags.get(QUARANTINE_TAG) != tag_value:
        tag = SAGEMAKER.add_tags(ResourceArn=resource.arn, Tags=[{"Key": QUARANTINE_TAG, "Value": tag_value}],
                                 says=f"tagged {QUARANTINE_TAG}={tag_value}")
        done.append(check(make(tag, req.client)).call.says)
    if not done:
        return ActionResult(ALREADY_DONE, "notebook already stopped and tagged")
    return ActionResult(SUCCEEDED, "; ".join(done) + "; its network settings are immutable: the owner must recreate it")


def plan_notebook(req: RestoreRequest) -> Plan:
    """Remove the quarantine tag (or put a previous one back). Start the notebook only when asked
    (--start), only if it was running before, and only from Stopped (the one state AWS starts from)."""
    ref, current = req.record.ref, req.current
    calls, unchanged, notes = [], [], []
    old, now = req.record.before.get(QUARANTINE_TAG), current.tags.get(QUARANTINE_TAG)
    if now == old:
        unchanged.append(f"{QUARANTINE_TAG} is {'absent' if old is None else repr(old)}, as before")
    else:
        calls.append(tag_call(ref, current.arn, QUARANTINE_TAG, old))
    was, status = req.record.before.get("NotebookInstanceStatus"), current.state.get("NotebookInstanceStatus")
    if was != "InService":
        if req.start:
            notes.append(f"it was {was} before netguard acted: not started")
    elif not req.start:
        notes.append(f"the notebook is {status}: not started (pass --start to start it once it is Stopped)")
    elif status == "Stopped":
        calls.append(Call("sagemaker", "StartNotebookInstance", {"NotebookInstanceName": ref.resource_id},
                          "start the notebook (it was InService before netguard stopped it)"))
    elif status in ("Pending", "InService"):
        unchanged.append(f"the notebook is {status}")
    else:
        notes.append(f"the notebook is {status}: AWS starts it only from Stopped; run restore --start again then")
    return Plan(tuple(calls), tuple(unchanged), tuple(notes))
