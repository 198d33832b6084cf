"""Notify: the last stage; SNS and Slack alerts.

Both channels carry the same facts (`build_alert`, schema `netguard.alert/v1`), split by concern:

* `alerts`: alerts, notices and digests as plain data, channel-agnostic;
* `sns`: the SNS channel (a JSON message with filterable attributes, fitted under the 256 KB limit; batches);
* `slack`: the Slack channel's Block Kit payload (escaped, truncated user text);
* `slack_webhook`: where and how Slack payloads go (the webhook URL as a secret, its checks, the HTTP client);
* `delivery`: the Notifier, which sends to every configured channel independently and hands every failure
  to the ledger (`record_undelivered`), and `resend_undelivered`, which tries those alerts again.

Dependencies run one way: alerts <- sns, slack <- slack_webhook <- delivery. This package re-exports the
names the rest of netguard, its tests and tools import from `chalicelib.notify`, so those paths keep working.
A test that replaces a name the Notifier calls must patch it where the Notifier looks it up
(`chalicelib.notify.delivery`), not here.

Import cost is kept tiny: boto3/botocore, urllib.request and ipaddress are imported when first needed.
"""
from __future__ import annotations

from .alerts import (
    ALERT_SCHEMA,
    DIGEST_SCHEMA,
    NOTICE_SCHEMA,
    alert_id,
    build_alert,
    build_notice,
    is_digest,
    is_notice,
)
from .delivery import (
    CHANNEL_PAUSE_SECONDS,
    DELIVERED,
    NOT_CONFIGURED,
    RESEND_GIVE_UP_AFTER,
    UNDELIVERED_RECORD_ATTEMPTS,
    Notifier,
    resend_undelivered,
)
from .slack import (
    SLACK_FALLBACK_MAX,
    SLACK_FIELD_MAX,
    SLACK_HEADER_MAX,
    SLACK_SECTION_MAX,
    code_block,
    code_span,
    digest_blocks,
    escape_mrkdwn,
    one_line,
    slack_blocks,
    slack_fallback,
    truncate,
)
from .slack_webhook import (
    SLACK_MAX_ATTEMPTS,
    SLACK_MAX_RETRY_AFTER,
    SLACK_TIMEOUT_SECONDS,
    WEBHOOK_CACHE_SECONDS,
    SlackWebhook,
    check_allowed_webhook,
    check_webhook_url,
    clear_cache,
    redact_url,
    redact_urls,
    resolve_webhook_url,
    retry_after_seconds,
)
from .slack_webhook import (
    _cache as _cache,  # the webhook URL cache itself (tests seed it); clear_cache() empties it in place
)
from .sns import (
    SNS_BATCH_ENTRIES,
    SNS_MAX_BYTES,
    SNS_SUBJECT_MAX,
    fit_message,
    publish_sns,
    sns_attributes,
    sns_batches,
    sns_message,
    sns_subject,
    topic_region,
)

__all__ = [
    "ALERT_SCHEMA", "CHANNEL_PAUSE_SECONDS", "DELIVERED", "DIGEST_SCHEMA", "NOTICE_SCHEMA", "NOT_CONFIGURED",
    "RESEND_GIVE_UP_AFTER", "SLACK_FALLBACK_MAX", "SLACK_FIELD_MAX", "SLACK_HEADER_MAX", "SLACK_MAX_ATTEMPTS",
    "SLACK_MAX_RETRY_AFTER", "SLACK_SECTION_MAX", "SLACK_TIMEOUT_SECONDS", "SNS_BATCH_ENTRIES", "SNS_MAX_BYTES",
    "SNS_SUBJECT_MAX", "UNDELIVERED_RECORD_ATTEMPTS", "WEBHOOK_CACHE_SECONDS", "Notifier", "SlackWebhook",
    "alert_id", "build_alert", "build_notice", "check_allowed_webhook", "check_webhook_url", "clear_cache",
    "code_block", "code_span", "digest_blocks", "escape_mrkdwn", "fit_message", "is_digest", "is_notice",
    "one_line", "publish_sns", "redact_url", "redact_urls", "resend_undelivered", "resolve_webhook_url",
    "retry_after_seconds", "slack_blocks", "slack_fallback", "sns_attributes", "sns_batches", "sns_message",
    "sns_subject", "topic_region", "truncate",
]
