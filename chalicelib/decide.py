"""Decide: finding -> decision. Pure: mode, exemptions and resource state; no AWS calls.

Order (first match wins): exempt, a finished job (it ran: nothing can stop it now, whatever the control's
mode; recorded and alerted once, see ledger.rules), no remediation for the control, stage override (dry-run/alert),
the control's mode (alert), then the remediation's readiness for the resource's state (deferred until
a notebook is InService, already contained, or not actionable in this state).
"""
from __future__ import annotations

import datetime as dt

from .actions.catalog import SPECS
from .model import (
    ALERT_ONLY,
    DEFERRED,
    DRY_RUN,
    EXEMPT,
    NON_COMPLIANT,
    NOT_ACTIONABLE,
    REMEDIATE,
    REPORT_ONLY,
    Decision,
    EventContext,
    Finding,
    finished_job,
)
from .policy import Policy, exemption_for
from .settings import Settings


def decide(finding: Finding, policy: Policy, settings: Settings, today: dt.date,
           report_only: bool = False, context: EventContext | None = None) -> Decision | None:
    """The decision for a NON_COMPLIANT finding (None for compliant / not applicable ones)."""
    if finding.status != NON_COMPLIANT:
        return None
    control = finding.control
    exemption = exemption_for(policy, control.id, finding.resource, today, settings.max_exemption_days)
    if exemption.exempt:
        return Decision(finding, EXEMPT, f"exempt: {exemption.detail}")
    note = f" ({exemption.detail})" if exemption.detail else ""
    action = SPECS.get(control.remediation) if control.remediation else None
    finished = finished_job(finding.resource)
    if report_only:
        planned = f"would {action.describe}" if action else "no automatic remediation"
        if finished:
            return Decision(finding, REPORT_ONLY, f"read-only scan: {finished_reason(finished)}{note}")
        return Decision(finding, REPORT_ONLY, f"read-only scan: {planned}{note}", control.remediation)
    if finished:
        return Decision(finding, NOT_ACTIONABLE, f"{finished_reason(finished)}{note}")
    if action is None:
        return Decision(finding, NOT_ACTIONABLE, f"no automatic remediation for {control.id}: see guidance{note}")
    if action.handles_targets is not None and not set(finding.targets) & action.handles_targets:
        return Decision(finding, NOT_ACTIONABLE,
                        f"no automatic remediation for {', '.join(finding.targets) or 'this'}: see guidance{note}")
    missing = action.unconfigured(control.params)
    if missing:
        return Decision(finding, NOT_ACTIONABLE, f"cannot {action.describe}: {missing}{note}")
    if action.needs_principal and not (context and context.principal):
        return Decision(finding, NOT_ACTIONABLE,
                        f"cannot {action.describe}: this trigger names no principal (only CloudTrail events do){note}")
    mode = settings.control_modes.get(control.id, control.mode)
    if settings.mode == "dry-run":
        return Decision(finding, DRY_RUN, f"dry-run: would {action.describe}{note}", action.name)
    if settings.mode == "alert":
        return Decision(finding, ALERT_ONLY, f"stage mode is alert: would {action.describe}{note}", action.name)
    if mode != "enforce":
        return Decision(finding, ALERT_ONLY, f"{control.id} is in {mode} mode{note}", action.name)
    unmet = action.precondition(finding.resource) if action.precondition else None
    if unmet:
        return Decision(finding, NOT_ACTIONABLE, f"cannot {action.describe}: {unmet}{note}")
    readiness = action.readiness(finding.resource)
    state = finding.resource.state.get(action.state_field) if action.state_field else None
    if readiness == "defer":
        return Decision(finding, DEFERRED, f"deferred: resource is {state}; will {action.describe} once it can{note}",
                        action.name)
    if readiness == "cannot":
        return Decision(finding, NOT_ACTIONABLE,
                        f"cannot {action.describe} while {action.state_field} is {state}{note}")
    return Decision(finding, REMEDIATE, f"enforce: {action.describe}{note}", action.name)


def finished_reason(status: str) -> str:
    return f"finished; cannot be stopped (the job is {status}: it ran with these settings)"
