"""Cloud Custodian's side of the netguard-vs-Custodian benchmarks: runs Custodian (c7n) as it runs for
real, against the AWS endpoint of the environment (AWS_ENDPOINT_URL, e.g. a moto server), and prints
one JSON line of measurements.

Run with the benchmark virtualenv (benchmarks/requirements-bench.txt; c7n needs boto3<1.44):

    .venv-bench/bin/python benchmarks/custodian_run.py pull --policies benchmarks/custodian/pull.yml \
        --output DIR [--dryrun]
    .venv-bench/bin/python benchmarks/custodian_run.py event --policies benchmarks/custodian/events.yml \
        --event FILE      (one event, cold; or a JSON list: warm-ups, then the measured event)

pull:  the `custodian run` path (c7n.cli's parser and defaults, c7n.commands.policy_command loading,
       validating and initialising the policies, then each policy called in file order as
       c7n.commands.run does). The only option changed from `custodian run`'s defaults is the resource
       cache: in memory (`--cache memory`), so policies of one run share resource lists as with a fresh
       `custodian run`, but no run reads the previous run's ~/.cache/cloud-custodian.cache.
       Prints {"seconds", "policies": {name: {"resources", "matched"}}, "peak_rss_kb",
       "imported_rss_kb", "calls"}.
event: the deployed Lambda path: the policy whose EventBridge pattern (as c7n.mu renders it for the
       policy's mode) matches the event is written to a temporary directory's config.json as c7n.mu's
       PolicyLambda.get_archive writes it (one policy per Lambda, execution options from
       c7n.mu.get_exec_options), and c7n.handler.dispatch_event runs there with the event and a fake
       Lambda context, cold (first invocation of the process: config.json read, account id from STS).
       Prints {"seconds", "import_seconds", "policy", "calls", "resources", "matched", "actions",
       "peak_rss_kb", "imported_rss_kb"}.

"calls" are counted client-side: a botocore `before-call` hook on every boto3 Session created (c7n's
SessionFactory and CustodianSession make boto3 Sessions), so one count per API call, retries not
counted again. Imports only c7n, boto3 and the standard library.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

_START = time.perf_counter()
import boto3.session

BOTO3_IMPORT_SECONDS = time.perf_counter() - _START

ACCOUNT = "123456789012"

# --- API call counting ---------------------------------------------------------------------------

_calls: dict[str, int] = {}
_calls_lock = threading.Lock()


def _count(model: Any = None, **_: Any) -> None:
    key = f"{model.service_model.service_name}:{model.name}"
    with _calls_lock:
        _calls[key] = _calls.get(key, 0) + 1


def install_call_counter() -> None:
    """Every boto3 Session (and so every client made from it, clients copy the session's handlers when
    created) counts its calls. Sessions are made on many threads by c7n: the counter takes a lock."""
    original = boto3.session.Session.__init__
    if getattr(original, "_bench_counting", False):
        return

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.events.register("before-call.*.*", _count, unique_id="netguard-bench-count")

    init._bench_counting = True  # type: ignore[attr-defined]
    boto3.session.Session.__init__ = init  # type: ignore[method-assign]


def calls_snapshot() -> dict[str, int]:
    with _calls_lock:
        return dict(sorted(_calls.items()))


def rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def check_environment() -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        if not os.environ.get(name):
            sys.exit(f"custodian_run: {name} must be set (the benchmark's AWS endpoint and fake credentials)")


def c7n_options(policies: str, output: str, region: str, dryrun: bool = False) -> Any:
    """A c7n Config exactly as `custodian run` builds it from its command line. c7n 0.9.53's `run`
    has no --account-id: c7n asks STS (GetCallerIdentity) once when it initialises the policies."""
    from c7n.cli import setup_parser
    from c7n.config import Config

    argv = ["run", "-s", output, "--region", region, "--cache", "memory"]
    if dryrun:
        argv.append("--dryrun")
    argv.append(policies)
    options = setup_parser().parse_args(argv)
    return options, Config.empty(**vars(options))


# --- pull ----------------------------------------------------------------------------------------

def pull(args: argparse.Namespace) -> dict[str, Any]:
    install_call_counter()
    from c7n import commands
    from c7n.cli import _setup_logger
    from c7n.query import QueryResourceManager

    # The population each policy's resource manager returned, before filtering: c7n hands it, with
    # the filtered count, to check_resource_limit (only for the policy's own resource manager).
    evaluated: dict[str, int] = {}
    check_limit = QueryResourceManager.check_resource_limit

    def observe_limit(self: Any, selection_count: int, population_count: int) -> Any:
        evaluated[self.ctx.policy.name] = population_count
        return check_limit(self, selection_count, population_count)

    QueryResourceManager.check_resource_limit = observe_limit  # type: ignore[method-assign]

    region = os.environ["AWS_DEFAULT_REGION"]
    output = Path(args.output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    options, config = c7n_options(args.policies, str(output), region, args.dryrun)
    _setup_logger(options)
    imported_rss = rss_kb()
    result: dict[str, Any] = {}

    def run(options: Any, policies: list[Any]) -> None:
        # c7n.commands.run, less its assume-role check (no role here) and with errors raised, not
        # logged and turned into exit code 2 at the end.
        start = time.perf_counter()
        for policy in policies:
            policy()
        result["seconds"] = time.perf_counter() - start
        result["policies"] = [p.name for p in policies]

    commands.policy_command(run)(config)
    per_policy = {}
    for name in result["policies"]:
        matched = json.loads((output / name / "resources.json").read_text())
        per_policy[name] = {"resources": evaluated.get(name), "matched": len(matched)}
    return {"seconds": round(result["seconds"], 4), "policies": per_policy, "peak_rss_kb": rss_kb(),
            "imported_rss_kb": imported_rss, "calls": calls_snapshot()}


# --- event ---------------------------------------------------------------------------------------

class FakeLambdaContext:
    """What the Lambda runtime passes as `context` (c7n's handler does not read it)."""

    def __init__(self, name: str, region: str, account: str) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
        self.memory_limit_in_mb = 512
        self.aws_request_id = "00000000-0000-4000-8000-000000000000"
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "bench"
        self._deadline = time.monotonic() + 900

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


def pattern_matches(pattern: Any, value: Any) -> bool:
    """EventBridge matching of the patterns c7n renders (lists of exact values, nested objects)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            key in value and pattern_matches(sub, value[key]) for key, sub in pattern.items())
    if isinstance(pattern, list):
        return value in pattern
    return pattern == value


def event(args: argparse.Namespace) -> dict[str, Any]:
    install_call_counter()
    # What a Lambda cold start imports: boto3 and c7n's handler (which imports c7n.policy and the
    # rest); c7n.mu is imported here to render the policies' event patterns.
    start = time.perf_counter()
    from c7n import handler
    from c7n.mu import CloudWatchEventSource, get_exec_options
    from c7n.policy import LambdaMode
    from c7n.utils import load_file
    import_seconds = BOTO3_IMPORT_SECONDS + time.perf_counter() - start
    imported_rss = rss_kb()

    region = os.environ["AWS_DEFAULT_REGION"]
    loaded = json.loads(Path(args.event).read_text())
    warmups, evt = (loaded[:-1], loaded[-1]) if isinstance(loaded, list) else ([], loaded)
    data = load_file(args.policies)
    # Deployed, each policy is its own Lambda whose EventBridge rule is rendered by c7n.mu from the
    # policy's mode: only the policy whose pattern matches the event is invoked.
    chosen = [p for p in data["policies"]
              if p.get("mode", {}).get("type") not in (None, "pull")
              and pattern_matches(json.loads(CloudWatchEventSource(p["mode"], None).render_event_pattern()), evt)]
    if len(chosen) != 1:
        sys.exit(f"custodian_run: {len(chosen)} policies of {args.policies} match the event "
                 f"({[p['name'] for p in chosen]}), expected one")
    policy_data = chosen[0]

    observed: dict[str, Any] = {"resources": 0, "matched": 0, "actions": []}
    resolve, run_set = LambdaMode.resolve_resources, LambdaMode.run_resource_set

    def observe_resolve(self: Any, event: Any) -> Any:
        resources = resolve(self, event)
        observed["resources"] += len(resources or [])
        return resources

    def observe_run_set(self: Any, event: Any, resources: Any) -> Any:
        observed["matched"] += len(resources)
        observed["actions"] += [a.type for a in self.policy.resource_manager.actions]
        return run_set(self, event, resources)

    LambdaMode.resolve_resources = observe_resolve  # type: ignore[method-assign]
    LambdaMode.run_resource_set = observe_run_set  # type: ignore[method-assign]

    with tempfile.TemporaryDirectory(prefix="custodian-lambda-") as task_root:
        # config.json as c7n.mu.PolicyLambda.get_archive writes it for `custodian run` deploying the
        # policy (`-s` a local directory, which get_exec_options leaves out of the Lambda's options).
        _, config = c7n_options(args.policies, os.path.join(task_root, "out"), region)
        Path(task_root, "config.json").write_text(json.dumps(
            {"execution-options": get_exec_options(config), "policies": [policy_data]}, indent=2))
        cwd = os.getcwd()
        os.chdir(task_root)
        try:
            # The Lambda runtime's root handler: c7n.handler sets the root level to DEBUG on import
            # and logs the event and the resources it resolves, as it does deployed.
            logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
            context = FakeLambdaContext(f"custodian-{policy_data['name']}", region, args.account_id)
            for warmup in warmups:  # a warm container: the same Lambda has handled events before
                handler.dispatch_event(warmup, context)
            if warmups:
                _calls.clear()
                observed.update(resources=0, matched=0, actions=[])
                bench_server("reset")
            start = time.perf_counter()
            handler.dispatch_event(evt, context)
            seconds = time.perf_counter() - start
        finally:
            os.chdir(cwd)
    server_calls = bench_server("calls")
    return {"seconds": round(seconds, 4), "import_seconds": round(import_seconds, 4), "warm": bool(warmups),
            "policy": policy_data["name"], "client_calls": calls_snapshot(),
            "calls": server_calls if server_calls is not None else calls_snapshot(), **observed,
            "peak_rss_kb": rss_kb(), "imported_rss_kb": imported_rss}


def bench_server(what: str) -> Any:
    """The counts of a benchmarks/motoserver.py server (None when the endpoint is not one)."""
    import urllib.error
    import urllib.request

    method = "GET" if what == "calls" else "POST"
    request = urllib.request.Request(f"{os.environ['AWS_ENDPOINT_URL']}/_bench/{what}", method=method,
                                     data=None if method == "GET" else b"")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())
    except (urllib.error.URLError, ValueError):
        return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pull", help="run every policy in pull mode, as `custodian run`")
    p.add_argument("--policies", required=True)
    p.add_argument("--output", required=True, help="c7n's output directory (-s)")
    p.add_argument("--dryrun", action="store_true", help="skip actions (custodian run --dryrun)")
    e = sub.add_parser("event", help="run one event through c7n's Lambda handler")
    e.add_argument("--policies", required=True)
    e.add_argument("--event", required=True, help="a JSON file holding one EventBridge event, or a list of "
                   "events: all but the last warm the handler, the last is measured")
    e.add_argument("--account-id", default=ACCOUNT,
                   help="for the fake Lambda context only; the handler asks STS, as deployed")
    args = parser.parse_args(argv)
    check_environment()
    out = pull(args) if args.command == "pull" else event(args)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    print(json.dumps(out, sort_keys=False), flush=True)


if __name__ == "__main__":
    main()
