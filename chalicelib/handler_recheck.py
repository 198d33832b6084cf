"""The recheck queue's handler: deferred decisions and retryable failures, looked at again (recheck.py)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from .aws import is_retryable
from .errors import IgnoredEvent, InvalidEvent
from .handler_support import EmfTelemetry, RuntimeSource, check_accounts, logger, sqs_batch, summary
from .model import EventContext, Trigger
from .recheck import RecheckQueue
from .recheck import decode as decode_recheck


def recheck(event: Any, runtime: RuntimeSource) -> dict[str, Any]:
    """Deferred decisions and retryable failures, looked at again (recheck.py)."""
    logger.append_keys(handler="recheck")
    rt = runtime()

    def handle(record: Any) -> dict[str, Any]:
        logger.set_correlation_id(record.message_id)
        try:
            item = decode_recheck(record.body)
            trigger = Trigger(EventContext(f"recheck-{record.message_id}", "recheck",
                                           event_name=f"attempt {item.attempt} of {item.origin}"), item.refs)
            check_accounts(trigger, rt.settings)
            waits = item.waits(dt.datetime.now(dt.UTC))
            if waits > rt.settings.action_window_minutes * 60:  # no window of netguard's ends that late
                raise InvalidEvent(f"not_before {item.not_before} is further than a blast-radius window")
        except (InvalidEvent, IgnoredEvent) as exc:
            # Kept, not dropped: reported failed, it ends in the dead-letter queue for someone to look at.
            logger.warning("unusable recheck message", extra={"message_id": record.message_id, "reason": exc.reason})
            raise
        queue = RecheckQueue(rt.settings, rt.clients)
        if waits:  # a blast-radius window ends later than SQS can delay a message: on again, not run yet
            sent = queue.schedule([(ref, item.reason) for ref in item.refs], item.origin, item.attempt,
                                  not_before=item.not_before)
            logger.info("recheck not due yet", extra={"not_before": item.not_before, "resent": len(sent)})
            return {"attempt": item.attempt, "waiting": waits, "rechecks": len(sent)}
        telemetry = EmfTelemetry()
        try:
            report = rt.pipeline(telemetry).run(trigger)
        finally:
            telemetry.flush()
        failed_reads = [ref.key for ref, message in report.errors if is_retryable(message)]
        if failed_reads:
            # A throttled or failing read: let SQS deliver this message again (visibility timeout, DLQ).
            raise RecheckRetry(f"retryable errors reading {', '.join(failed_reads)}")
        sent = queue.schedule_report(report, item.origin or trigger.context.event_id, item.attempt + 1,
                                     include_duplicates=True)
        result = summary(report) | {"attempt": item.attempt, "rechecks": len(sent)}
        logger.info("recheck processed", extra={"summary": result})
        return result

    return sqs_batch(event, handle)


class RecheckRetry(RuntimeError):
    """A recheck met a retryable error: SQS delivers the message again."""
