"""The sweep's handlers: the scheduled `sweep` plans it and fans it out, `sweep_worker` runs one
account-region per message (sweep.py). chalicelib.sweep is imported at call time, and its names looked
up there, so that a cold start on an event does not load it."""
from __future__ import annotations

from typing import Any

from .aws import AWS_ERRORS, error_code
from .errors import IgnoredEvent, InvalidEvent
from .handler_support import EmfTelemetry, RuntimeSource, logger, sqs_batch


def sweep(event: Any, runtime: RuntimeSource) -> dict[str, Any]:
    """Scheduled: plan the sweep and send one task per account-region (sweep.py)."""
    from .sweep import send_tasks, start_sweep  # noqa: PLC0415

    logger.append_keys(handler="sweep")
    rt = runtime()
    telemetry = EmfTelemetry()
    queue = rt.settings.sweep_queue_url
    try:
        # First what earlier alerts could not deliver (a Slack or SNS outage), then the sweep itself.
        try:
            remaining = getattr(getattr(event, "context", None), "get_remaining_time_in_millis", None)
            from .notify import resend_undelivered  # noqa: PLC0415 - sweeps only

            resent = resend_undelivered(rt.ledger, rt.notifier,
                                        (lambda: remaining() / 1000.0) if callable(remaining) else None)
        except AWS_ERRORS as exc:
            logger.error("could not read the undelivered alerts", extra={"error": error_code(exc)})
            resent = {"resent": 0, "still_undelivered": -1}
        result = start_sweep(rt.sweep_deps(telemetry),
                             send=(lambda tasks: send_tasks(rt.clients, queue, tasks)) if queue else None)
        result["undelivered_alerts"] = resent
    finally:
        telemetry.flush()
    logger.info("sweep planned", extra={"summary": result})
    return result


def sweep_worker(event: Any, runtime: RuntimeSource) -> dict[str, Any]:
    """One account-region of a sweep per message (sweep.py)."""
    from .sweep import Task, check_task, give_up_task, run_task  # noqa: PLC0415

    logger.append_keys(handler="sweep_worker")
    rt = runtime()
    context = getattr(event, "context", None)
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    time_left = (lambda: remaining() / 1000.0) if callable(remaining) else None

    def handle(record: Any) -> dict[str, Any]:
        logger.set_correlation_id(record.message_id)
        try:
            task = Task.decode(record.body)
            check_task(task, rt.settings, rt.ledger)
        except (InvalidEvent, IgnoredEvent) as exc:
            # Kept, not dropped: reported failed, it ends in the dead-letter queue for someone to look at.
            logger.warning("unusable sweep task", extra={"message_id": record.message_id, "reason": exc.reason})
            raise
        telemetry = EmfTelemetry()
        deps = rt.sweep_deps(telemetry)
        try:
            figures = run_task(task, deps, time_left)
        except Exception as exc:
            received = int(record.attributes.approximate_receive_count or 1)
            if received >= rt.settings.sweep_max_receives:
                logger.error("sweep task failed on its last delivery", extra={"task": task.key, "error": str(exc)})
                give_up_task(task, deps, f"{type(exc).__name__}: {exc}")
            raise  # delivered again, or (the last time) kept in the dead-letter queue
        finally:
            telemetry.flush()
        logger.info("sweep task done", extra={"summary": figures})
        return figures

    return sqs_batch(event, handle)
