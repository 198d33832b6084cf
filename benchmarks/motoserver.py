"""The benchmarks' AWS: a moto server over HTTP, in its own process, that counts every request by
service and operation and can add a fixed delay to each (the network round trip AWS costs and an
in-process moto hides).

The count is taken by the server, so both tools are counted the same way whatever sessions and
clients they make. Both are read and set over HTTP, outside the AWS API:

    GET  /_bench/calls            -> {"service:Operation": n, ...}
    GET  /_bench/seconds          -> {"service:Operation": seconds moto spent answering them, ...}
    POST /_bench/reset            -> zeroes the counts
    POST /_bench/delay?ms=25      -> every later AWS request waits 25 ms before moto answers it

The server is threaded (one thread per request, as moto's ThreadedMotoServer), so a tool's
concurrent calls overlap their delays as they would against AWS. It runs with netguard_testkit's
AWS-like SageMaker patches (jobs start InProgress and stop as on AWS), and one speed fix: moto 5.2
finds an EC2 resource's tags by scanning every tag of the region, so describing thousands of security
groups or network interfaces costs minutes (past botocore's 60 s read timeout at 10,000 resources);
here a resource's own tags are looked up directly. The answers are the same; both tools benefit.

    server = BenchServer.start()        # in a benchmark
    ... AWS_ENDPOINT_URL=server.endpoint ...
    server.reset(); ...; server.calls()
"""
from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

ROOT = Path(__file__).resolve().parent.parent
CREDENTIAL = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/")
CONTROL = "/_bench/"


def operation(environ: dict[str, Any]) -> str:
    """'service:Operation' of one AWS request: the service from the SigV4 credential scope, the
    operation from X-Amz-Target (JSON protocols) or the Action parameter (query protocols), else the
    HTTP method (REST protocols such as S3)."""
    match = CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    service = match.group(1) if match else "unsigned"
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return f"{service}:{target.rsplit('.', 1)[-1]}"
    action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    if not action and environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
    if action:
        return f"{service}:{action[0]}"
    return f"{service}:{environ.get('REQUEST_METHOD', '?')}"


class Counting:
    """WSGI middleware: count, delay, then hand the request to moto."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.seconds: dict[str, float] = {}  # moto's own time per operation (the delay excluded)
        self.delay = 0.0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL):
            return self.control(path[len(CONTROL):], environ, start_response)
        key = operation(environ)
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
        if self.delay:
            time.sleep(self.delay)
        started = time.perf_counter()
        answer = list(self.app(environ, start_response))
        with self.lock:
            self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - started
        return answer

    def control(self, what: str, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with self.lock:
            if what == "reset":
                self.counts, self.seconds = {}, {}
            elif what == "delay":
                self.delay = float(parse_qs(environ.get("QUERY_STRING", "")).get("ms", ["0"])[0]) / 1000
            answers = {"calls": self.counts, "seconds": {k: round(v, 3) for k, v in self.seconds.items()}}
            body = json.dumps(answers.get(what, {"delay_ms": self.delay * 1000})).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def serve(port: int) -> None:
    """The server process: moto's dispatcher behind `Counting`, threaded, on 127.0.0.1:port."""
    import logging
    from unittest import mock

    from moto.ec2.models.tags import TagBackend
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    from netguard_testkit.moto_sagemaker import aws_like_sagemaker

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with aws_like_sagemaker(), mock.patch.object(TagBackend, "describe_tags",
                                                 _tags_of_one_resource(TagBackend.describe_tags)):
        app = Counting(DomainDispatcherApplication(create_backend_app))
        server = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
        print("ready", flush=True)
        server.serve_forever()


def _tags_of_one_resource(describe_tags: Callable[..., list[dict[str, str]]]) -> Callable[..., list[dict[str, str]]]:
    """moto's describe_tags, answering the lookup every EC2 model makes for its own tags
    (filters={"resource-id": [its id]}) from that resource's entry instead of scanning them all."""
    def lookup(self: Any, filters: dict[str, list[str]] | None = None) -> list[dict[str, str]]:
        ids = (filters or {}).get("resource-id") or []
        if not filters or set(filters) != {"resource-id"} or any(c in i for i in ids for c in "*?"):
            return describe_tags(self, filters)
        from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

        return [{"resource_id": rid, "key": key, "value": value,
                 "resource_type": EC2_PREFIX_TO_RESOURCE.get(get_prefix(rid), "")}
                for rid in dict.fromkeys(ids) if rid in self.tags for key, value in self.tags[rid].items()]

    return lookup


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BenchServer:
    """A running server process (see module docstring)."""

    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process, self.port = process, port
        self.endpoint = f"http://127.0.0.1:{port}"

    @classmethod
    def start(cls, argv: Callable[[int], list[str]] | None = None, env: dict[str, str] | None = None) -> BenchServer:
        """The server in its own process: this module's, or the one `argv(port)` starts (which prints
        "ready" once it listens), with `env` added to the environment."""
        port = free_port()
        command = argv(port) if argv is not None else [sys.executable, str(Path(__file__).resolve()), str(port)]
        process = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            process.kill()
            raise RuntimeError("the moto server did not start")
        return cls(process, port)

    def _control(self, what: str, method: str = "POST") -> Any:
        request = urllib.request.Request(f"{self.endpoint}{CONTROL}{what}", method=method,
                                         data=b"" if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    def calls(self) -> dict[str, int]:
        return self._control("calls", "GET")

    def seconds(self) -> dict[str, float]:
        """moto's own time per operation since the last reset (threads overlap: not wall time)."""
        return self._control("seconds", "GET")

    def reset(self) -> None:
        self._control("reset")

    def set_delay(self, ms: float) -> None:
        self._control(f"delay?ms={ms}")

    def env(self) -> dict[str, str]:
        """The environment a tool's process needs to use this server (and nothing else)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NETGUARD_", "AWS_", "POWERTOOLS_"))}
        env.update(AWS_ENDPOINT_URL=self.endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                   AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1")
        return env

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def __enter__(self) -> BenchServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    serve(int(sys.argv[1]))
