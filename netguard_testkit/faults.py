"""A deterministic fault layer for botocore: throttling, 5xx, timeouts and AccessDenied on a share of calls.

Installed on one boto3 session (netguard's, never the test's own), it answers a seeded-random share of
requests itself, before they are sent, with what AWS answers in a bad minute. Because it acts at
`before-send`, botocore's own retries (standard mode, 5 attempts) see these faults as they would see
AWS's: throttling, 5xx and timeouts are retried, AccessDenied is not. The same seed gives the same
faults for the same sequence of calls.

Error bodies follow each service's protocol (JSON, query XML, EC2 XML, REST XML), so botocore parses
them into the ClientError netguard's code handles. A faulted request is never performed: like AWS
throttling a call, the in-process moto (whose own before-send handler runs after ours) skips it.
"""
from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

THROTTLE, SERVER_ERROR, TIMEOUT, DENIED = "throttle", "5xx", "timeout", "denied"
KINDS = (THROTTLE, SERVER_ERROR, TIMEOUT, DENIED)
_ERRORS = {
    THROTTLE: (400, "ThrottlingException", "Rate exceeded (injected)"),
    SERVER_ERROR: (500, "InternalError", "We encountered an internal error (injected)"),
    DENIED: (403, "AccessDenied", "User is not authorized to perform this operation (injected)"),
}
_QUERY_XML = {"sts", "sns", "iam"}
_EC2_XML = {"ec2"}
_REST_XML = {"s3"}
# What EC2 calls throttling
_CODE_OVERRIDES = {("ec2", THROTTLE): "RequestLimitExceeded", ("sqs", THROTTLE): "ThrottlingException"}
FAULT_HEADER = "x-netguard-injected-fault"
_moto_patch: Any = None


def _skip_faulted_requests() -> None:
    """In-process moto answers at before-send too, after us: make it skip the requests we answered."""
    global _moto_patch
    if _moto_patch is not None:
        return
    from moto.core.botocore_stubber import BotocoreStubber  # noqa: PLC0415

    real = BotocoreStubber.__call__

    def call(self: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
        if request is not None and FAULT_HEADER in getattr(request, "headers", {}):
            return None
        return real(self, event_name, request, **kwargs)

    BotocoreStubber.__call__ = call  # type: ignore[method-assign]
    _moto_patch = real


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def _body(service: str, code: str, message: str) -> tuple[bytes, dict[str, str]]:
    if service in _EC2_XML:
        xml = f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>" \
              "<RequestID>injected</RequestID></Response>"
        return xml.encode(), {"Content-Type": "text/xml"}
    if service in _QUERY_XML:
        xml = f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>" \
              "<RequestId>injected</RequestId></ErrorResponse>"
        return xml.encode(), {"Content-Type": "text/xml"}
    if service in _REST_XML:
        return (f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode(),
                {"Content-Type": "application/xml"})
    body = {"__type": code, "message": message, "Message": message}
    return json.dumps(body).encode(), {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code}


class FaultInjector:
    """Answer `rate` of the requests of the sessions it is installed on with a fault of `kinds`."""

    def __init__(self, rate: float = 0.3, seed: int = 7, kinds: Iterable[str] = KINDS,
                 services: Iterable[str] | None = None) -> None:
        self.rate, self.kinds = rate, tuple(kinds)
        self.services = set(services) if services is not None else None
        self.rng = random.Random(seed)
        self.enabled = True
        self.injected: Counter[tuple[str, str]] = Counter()  # (service:operation, kind)
        self.requests = 0
        self._lock = threading.Lock()

    def install(self, session: Any) -> FaultInjector:
        # First: ahead of moto's own before-send handler, which would otherwise answer for real.
        session.events.register_first("before-send", self._before_send)
        _skip_faulted_requests()
        return self

    def _before_send(self, request: Any = None, event_name: str = "", **_: Any) -> AWSResponse | None:
        _, service, operation = (event_name.split(".") + ["", ""])[:3]
        with self._lock:
            self.requests += 1
            if not self.enabled or (self.services is not None and service not in self.services):
                return None
            if self.rng.random() >= self.rate:
                return None
            kind = self.rng.choice(self.kinds)
            self.injected[(f"{service}:{operation}", kind)] += 1
        if kind == TIMEOUT:
            raise ReadTimeoutError(endpoint_url=getattr(request, "url", "injected"))
        status, code, message = _ERRORS[kind]
        code = _CODE_OVERRIDES.get((service, kind), code)
        if request is not None:
            request.headers[FAULT_HEADER] = kind
        body, headers = _body(service, code, message)
        return AWSResponse(getattr(request, "url", ""), status, headers, _Raw(body))

    def by_kind(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for (_, kind), n in self.injected.items():
            counts[kind] += n
        return dict(counts)
