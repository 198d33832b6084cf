"""The Slack channel's transport: the webhook URL (a secret), its checks, and the HTTP client.

The webhook URL is stored in SSM (SecureString) or Secrets Manager: it is resolved at send time, cached for
five minutes in-process and never logged nor put in an exception message (only `scheme://host/***`). It must
be https (http only to a loopback host, for tests) and under an allowed prefix. Posts are retried within
bounds (429 with `Retry-After`, 5xx, transport errors); redirects are never followed. urllib.request,
botocore and ipaddress are imported when first needed.
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import DeliveryError
from .slack import one_line

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..aws import Clients

log = logging.getLogger("netguard.notify")

SLACK_TIMEOUT_SECONDS = 5.0
SLACK_MAX_ATTEMPTS = 4
SLACK_MAX_RETRY_AFTER = 30.0
_URL_PATTERN = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s?#]+)[/?#][^\s'\"]*")


def redact_url(url: str) -> str:
    """'https://hooks.slack.com/services/T/B/X' -> 'https://hooks.slack.com/***' (scheme and host only)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<webhook url>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}/***"


def redact_urls(text: str) -> str:
    """Any URL inside `text` reduced to its scheme and host (defence in depth for error texts)."""
    return _URL_PATTERN.sub(lambda match: match.group(1) + "/***", text)


def _is_loopback(host: str) -> bool:
    import ipaddress  # noqa: PLC0415 - only needed for http:// test URLs

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_webhook_url(url: str) -> None:
    """https only; http only for loopback hosts (local tests). Raises DeliveryError (URL redacted)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        # `from None`: urllib's ValueError quotes pieces of the URL, which is a secret.
        raise DeliveryError(f"Slack webhook URL {redact_url(url)} is malformed") from None
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise DeliveryError(f"Slack webhook URL {redact_url(url)} contains whitespace or control characters")
    if not host:
        raise DeliveryError(f"Slack webhook URL {redact_url(url)} has no host")
    scheme = parts.scheme.lower()
    if scheme == "https" or (scheme == "http" and _is_loopback(host)):
        return
    raise DeliveryError(
        f"Slack webhook URL {redact_url(url)} refused: only https:// (or http:// to a loopback host) is allowed"
    )


def check_allowed_webhook(url: str, allowed: Sequence[str]) -> None:
    """The webhook URL must start with one of the allowed URL prefixes (NETGUARD_SLACK_ALLOWED_URLS,
    default https://hooks.slack.com/): same scheme, host and port, and a path under the prefix's. Whoever
    can change the stored URL could otherwise send netguard's alerts somewhere they are never read.
    Raises DeliveryError (URL redacted)."""
    try:
        parts = urlsplit(url)
        key = (parts.scheme.lower(), (parts.hostname or "").lower(), parts.port, parts.username)
    except ValueError:
        raise DeliveryError(f"Slack webhook URL {redact_url(url)} is malformed") from None
    for prefix in allowed:
        try:
            want = urlsplit(prefix)
            if (key[:3] == (want.scheme.lower(), (want.hostname or "").lower(), want.port) and key[3] is None
                    and parts.path.startswith(want.path or "/")):
                return
        except ValueError:
            continue
    raise DeliveryError(f"Slack webhook URL {redact_url(url)} refused: not under an allowed URL "
                        f"(NETGUARD_SLACK_ALLOWED_URLS: {', '.join(redact_url(p) for p in allowed)})")


def retry_after_seconds(value: str | None, cap: float = SLACK_MAX_RETRY_AFTER) -> float | None:
    """A `Retry-After` header in seconds, capped; None when absent or not a number (HTTP dates too)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), cap)


class SlackWebhook:
    """POSTs payloads to one Slack incoming webhook with bounded retries.

    Retried: HTTP 429 (waiting `Retry-After`, capped), 5xx and transport errors/timeouts (exponential
    backoff). Not retried: any other status, and redirects (never followed). The URL is checked before any
    network call and only its redacted form (`redacted_url`) is ever logged or raised.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = SLACK_TIMEOUT_SECONDS,
        max_attempts: int = SLACK_MAX_ATTEMPTS,
        backoff: float = 1.0,
        max_backoff: float = 8.0,
        max_retry_after: float = SLACK_MAX_RETRY_AFTER,
        sleep: Callable[[float], Any] = time.sleep,
        logger: Any = None,
    ) -> None:
        check_webhook_url(url)
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._url = url
        self.redacted_url = redact_url(url)
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._log = logger or log
        self._opener: Any = None

    def __repr__(self) -> str:
        return f"SlackWebhook({self.redacted_url!r})"

    def _open(self, body: bytes) -> None:
        """One POST; returns on 2xx, raises urllib's HTTPError/URLError or a transport error otherwise."""
        import urllib.request  # noqa: PLC0415 - ~80 ms of imports, only paid when Slack is used

        if self._opener is None:
            self._opener = _build_opener(self._url)
        request = urllib.request.Request(
            self._url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "netguard"},
        )
        with self._opener.open(request, timeout=self.timeout) as response:
            response.read()

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff * (2 ** (attempt - 1)), self.max_backoff)

    def post(self, payload: Mapping[str, Any]) -> None:
        """Deliver `payload` (a Block Kit message). Raises DeliveryError when it cannot be delivered."""
        import http.client  # noqa: PLC0415
        import urllib.error  # noqa: PLC0415

        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        for attempt in range(1, self.max_attempts + 1):
            try:
                self._open(body)
                return
            except urllib.error.HTTPError as exc:
                status, answer = exc.code, _read_error_body(exc)
                if status == 429:
                    delay = retry_after_seconds(exc.headers.get("Retry-After"), self.max_retry_after)
                    delay = self._backoff(attempt) if delay is None else delay
                elif 500 <= status <= 599:
                    delay = self._backoff(attempt)
                else:
                    raise DeliveryError(
                        f"Slack webhook {self.redacted_url} rejected the message: HTTP {status} {answer}".rstrip()
                    ) from exc
                problem: str = f"HTTP {status} {answer}".rstrip()
                cause: BaseException = exc
            except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets, bad responses
                delay = self._backoff(attempt)
                problem = redact_urls(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}")
                cause = exc
            if attempt == self.max_attempts:
                raise DeliveryError(
                    f"Slack webhook {self.redacted_url} failed after {attempt} attempts: {problem}"
                ) from cause
            self._log.warning(
                "Slack webhook %s: %s; retry %d/%d in %.1fs",
                self.redacted_url, problem, attempt, self.max_attempts - 1, delay,
            )
            self._sleep(delay)


def _read_error_body(exc: Any) -> str:
    """The first line of an error response body (Slack answers e.g. 'invalid_payload'), closing it."""
    try:
        text = exc.read(512).decode("utf-8", "replace")
    except (OSError, ValueError, AttributeError):
        text = ""
    finally:
        exc.close()
    return redact_urls(one_line(text))[:200]


def _build_opener(url: str) -> Any:
    """A urllib opener that never follows redirects, and never uses a proxy for (loopback) http URLs."""
    import urllib.request  # noqa: PLC0415

    class RefuseRedirects(urllib.request.HTTPRedirectHandler):
        """A webhook never redirects; following one could send the payload elsewhere (or over http)."""

        def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
            return None  # urllib then raises the 3xx as an HTTPError, which is not retried

    handlers: list[Any] = [RefuseRedirects()]
    if urlsplit(url).scheme.lower() == "http":
        handlers.append(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(*handlers)


# --------------------------------------------------------------------------- webhook URL resolution

WEBHOOK_CACHE_SECONDS = 300.0
_SECRETS_ARN_PREFIX = "arn:aws:secretsmanager:"
_SECRETS_PREFIX = "secretsmanager:"
_cache: dict[tuple[str, str | None], tuple[float, str]] = {}
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every cached webhook URL (tests; or after rotating the secret)."""
    with _cache_lock:
        _cache.clear()


def _arn_region(arn: str) -> str | None:
    parts = arn.split(":")
    return (parts[3] or None) if arn.startswith("arn:") and len(parts) > 5 else None


def _from_secret(secret_string: str) -> str:
    """A SecretString that is the URL itself, or JSON with a `url` / `webhook_url` key."""
    text = secret_string.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            for key in ("url", "webhook_url"):
                if isinstance(data.get(key), str):
                    return data[key].strip()
            raise DeliveryError("the Slack webhook secret is JSON without a 'url' or 'webhook_url' string")
    return text


def _read_webhook_url(param_name: str, clients: Clients, region: str | None) -> str:
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from ..aws import error_code  # noqa: PLC0415

    if param_name.startswith(_SECRETS_ARN_PREFIX) or param_name.startswith(_SECRETS_PREFIX):
        secret_id = param_name if param_name.startswith("arn:") else param_name[len(_SECRETS_PREFIX):]
        where = f"Secrets Manager secret {secret_id!r}"
        try:
            answer = clients.client("secretsmanager", region or _arn_region(secret_id)).get_secret_value(
                SecretId=secret_id
            )
        except (ClientError, BotoCoreError) as exc:
            raise DeliveryError(f"cannot read the Slack webhook URL from {where}: {error_code(exc) or exc}") from exc
        if not isinstance(answer.get("SecretString"), str):
            raise DeliveryError(f"{where} has no SecretString")
        value = _from_secret(answer["SecretString"])
    else:
        where = f"SSM parameter {param_name!r}"
        try:
            answer = clients.client("ssm", region or _arn_region(param_name)).get_parameter(
                Name=param_name, WithDecryption=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise DeliveryError(f"cannot read the Slack webhook URL from {where}: {error_code(exc) or exc}") from exc
        value = str(answer.get("Parameter", {}).get("Value", "")).strip()
    if not value:
        raise DeliveryError(f"{where} holds an empty Slack webhook URL")
    return value


def resolve_webhook_url(
    param_name: str, clients: Clients, region: str | None = None, *, clock: Callable[[], float] = time.monotonic
) -> str:
    """The Slack webhook URL stored in SSM (SecureString) or Secrets Manager, cached for 5 minutes.

    `param_name`: an SSM parameter name (or ARN); `secretsmanager:NAME`; or a Secrets Manager ARN.
    Raises DeliveryError if it cannot be read. The value is never logged.
    """
    key = (param_name, region)
    now = clock()
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and now - cached[0] < WEBHOOK_CACHE_SECONDS:
            return cached[1]
    value = _read_webhook_url(param_name, clients, region)
    with _cache_lock:
        _cache[key] = (now, value)
    return value
