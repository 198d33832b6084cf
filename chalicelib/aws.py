"""The one place AWS clients are made: lazily, cached per (service, region, account), with retries.

Nothing here runs at import. Functions elsewhere take a `Clients` so tests can inject their own.
`AWS_ENDPOINT_URL` (and the per-service variants) are honoured by botocore itself.

Multi-account: given a member role name, a client for another account than the home account is
made from credentials of `arn:<partition>:iam::<account>:role/<role>` (assumed with the external
id, cached per account and renewed before they expire). Without a role name every client uses the
function's own credentials, whatever account is asked for.
"""
from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from .settings import MEMBER_SESSION_NAME

# What an AWS call raises: an error answer (ClientError) or no answer at all (BotoCoreError: a timeout,
# a connection error...). Both are handled alike wherever a call's failure must not stop the others.
AWS_ERRORS = (ClientError, BotoCoreError)

ROLE_SESSION_NAME = MEMBER_SESSION_NAME  # how netguard's own changes in member accounts are recognised
ROLE_SESSION_SECONDS = 3600
RENEW_BEFORE = dt.timedelta(minutes=10)

# max_pool_connections: one connection per concurrent call (NETGUARD_READ_CONCURRENCY is at most 32)
RETRY_CONFIG = {"retries": {"mode": "standard", "max_attempts": 5}, "connect_timeout": 5, "read_timeout": 20,
                "max_pool_connections": 32}

T = TypeVar("T")
R = TypeVar("R")


def concurrently(work: Callable[[T], R], items: Iterable[T], workers: int, name: str = "netguard") -> list[R]:
    """[work(item) for item in items], `workers` at a time in threads: for independent AWS calls,
    whose time is a network round trip (botocore clients are thread-safe). One item, or one worker,
    runs in this thread. Results come in the order of `items`; an exception `work` raises is raised."""
    items = list(items)
    workers = min(workers, len(items))
    if workers <= 1:
        return [work(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        return list(pool.map(work, items))


def partition(region: str | None) -> str:
    if region and region.startswith("cn-"):
        return "aws-cn"
    if region and region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


class Clients:
    """A cache of boto3 clients for one run. `session` defaults to a new boto3 Session."""

    def __init__(self, session: Any = None, member_role: str | None = None, external_id: str | None = None,
                 home_account: str | None = None) -> None:
        self._session = session
        self._clients: dict[tuple[str, str | None, str | None], Any] = {}
        self._lock = threading.RLock()
        self.member_role, self.external_id, self._home = member_role, external_id, home_account
        self._assumed: dict[str, tuple[Any, dt.datetime]] = {}  # account -> (session, expiry)

    @classmethod
    def for_settings(cls, settings: Any, session: Any = None) -> Clients:
        return cls(session, settings.member_role_name, settings.member_external_id, settings.home_account)

    @property
    def home_account(self) -> str:
        """The account of our own credentials (asked once, unless configured)."""
        if self._home is None:
            self._home = str(self.client("sts").get_caller_identity()["Account"])
        return self._home

    def _assumes(self, account: str | None) -> bool:
        return bool(self.member_role and account and account != self.home_account)

    def _session_for(self, account: str, region: str | None) -> Any:
        """A boto3 Session on the member role of `account`, renewed before its credentials expire."""
        import boto3  # noqa: PLC0415

        now = dt.datetime.now(dt.UTC)
        found = self._assumed.get(account)
        if found is not None and found[1] - now > RENEW_BEFORE:
            return found[0]
        params: dict[str, Any] = {
            "RoleArn": f"arn:{partition(region)}:iam::{account}:role/{self.member_role}",
            "RoleSessionName": ROLE_SESSION_NAME, "DurationSeconds": ROLE_SESSION_SECONDS,
        }
        if self.external_id:
            params["ExternalId"] = self.external_id
        creds = self.client("sts", region).assume_role(**params)["Credentials"]
        session = boto3.session.Session(aws_access_key_id=creds["AccessKeyId"],
                                        aws_secret_access_key=creds["SecretAccessKey"],
                                        aws_session_token=creds["SessionToken"])
        expiry = creds["Expiration"]
        if isinstance(expiry, str):
            expiry = dt.datetime.fromisoformat(expiry.replace("Z", "+00:00"))
        self._assumed[account] = (session, expiry)
        # Clients made from the previous credentials must not outlive them.
        for key in [k for k in self._clients if k[2] == account]:
            del self._clients[key]
        return session

    @property
    def session(self) -> Any:
        if self._session is None:
            import boto3  # noqa: PLC0415 - keep boto3 off the import path of modules that may not need it

            self._session = boto3.session.Session()
        return self._session

    def client(self, service: str, region: str | None = None, account: str | None = None) -> Any:
        """A client for `service` in `region`, in `account` (through the member role) if that is not ours."""
        with self._lock:
            assumed = self._assumes(account)
            session = self._session_for(str(account), region) if assumed else self.session
            key = (service, region, account if assumed else None)
            found = self._clients.get(key)
            if found is None:
                from botocore.config import Config  # noqa: PLC0415

                found = session.client(service, region_name=region, config=Config(**RETRY_CONFIG))
                self._clients[key] = found
            return found


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError; the exception's name for a BotoCoreError (a
    timeout: `ReadTimeoutError`); '' for anything else."""
    if isinstance(exc, BotoCoreError):
        return type(exc).__name__
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def error_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Message", "")) or str(exc)


# Errors that say "try again later": throttling, server-side failures, timeouts.
RETRYABLE_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled", "RequestThrottledException",
    "RequestLimitExceeded", "TooManyRequestsException", "ProvisionedThroughputExceededException", "SlowDown",
    "LimitExceededException", "PriorRequestNotComplete", "EC2ThrottledException", "BandwidthLimitExceeded",
    "InternalError", "InternalFailure", "InternalServerError", "ServiceUnavailable", "ServiceUnavailableException",
    "InternalServiceError", "RequestTimeout", "RequestTimeoutException", "TransactionInProgressException",
    # no answer at all (BotoCoreError names, see error_code)
    "ReadTimeoutError", "ConnectTimeoutError", "EndpointConnectionError", "ConnectionClosedError",
})


# Denials a later attempt may not meet either: IAM changes take seconds to propagate, a member
# role's policy gets fixed, a session expires. The recheck queue retries them a bounded number of times.
TRANSIENT_DENIALS = frozenset({
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "ExpiredToken", "ExpiredTokenException",
})


def is_retryable(code_or_message: str) -> bool:
    """True for an error code (or a "Code: message" text) that a later attempt may not meet."""
    code = code_or_message.split(":", 1)[0].strip()
    return code in RETRYABLE_CODES or code in TRANSIENT_DENIALS
