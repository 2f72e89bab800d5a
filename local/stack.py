"""`make run`: the whole system on this machine, no AWS account, no Docker.

moto (local/emulator.py)   S3, SQS, DynamoDB, EventBridge on loopback, in its own process
gateway                    HTTP API v2 events -> the real ApiFunction handler, demo page at /
poller                     SQS batches -> the real ProcessFunction handler
event tap                  bus events -> console, .local/events.jsonl, the sample consumer
webhook worker             (WebhookUrl set) the webhook's queue -> the real WebhookFunction
TTL sweeper, stream poller expired records -> the table's stream -> the real RetentionFunction
stream poller              changes that owe an event -> the table's stream -> the real PublishFunction
scanner                    (MalwareProtection) ClamAV plays GuardDuty: a verdict per staging object
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from directupload import problems
from local import ROOT
from local.auth import TOKEN_LIFETIME, LocalIssuer
from local.emulator import Emulator
from local.function_host import FunctionProcess
from local.gateway import Gateway
from local.harness import POWERTOOLS_OFF, REGION, aws_env, client, deploy
from local.poller import EventTap
from local.provision import Provisioned
from local.retention import StreamPoller, TtlSweeper, mapping_of
from local.roles import ISSUER_ROLE_ARN, FunctionRole, create_issuer_role, create_roles
from local.scanner import Scanner
from local.sigv4 import EmulatorVerifier
from local.template import ACCOUNT

SCANNERS = 3  # local malware scanner threads


@dataclass
class StackOptions:
    host: str = "127.0.0.1"
    port: int = 3000
    emulator_port: int = 4566
    state_dir: Path = ROOT / ".local"
    auth: str = "jwt"
    retry_delay: int = 1
    process_workers: int = 3
    ttl_sweep_seconds: float = 60
    quiet: bool = False
    parameters: dict[str, str] = field(default_factory=dict)
    # "own": the template creates its bucket (S3 -> SQS); "existing": buckets made outside the
    # template, as their owner would (ExistingBuckets; S3 -> EventBridge -> SQS)
    buckets: str = "own"

    def template_parameters(self) -> dict[str, str]:
        # the local trusted backend's role is the one backend on the allow-list, unless told otherwise
        parameters = {"Stage": "dev", "TrustedIssuerRoleArns": ISSUER_ROLE_ARN, **self.parameters}
        if self.buckets == "existing" and not parameters.get("ExistingBuckets"):
            parameters["ExistingBuckets"] = EXISTING_BUCKET
        return parameters


EXISTING_BUCKET = "directupload-local-existing-uploads"  # make run BUCKETS=existing


class LocalStack:
    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.emulator: Emulator | None = None
        self.gateway: Gateway | None = None
        self.threads: list[Any] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self.resources: Provisioned | None = None
        self.env: dict[str, str] = {}
        self.roles: dict[str, FunctionRole] = {}
        self.functions: list[FunctionProcess] = []
        self.issuer_role_arn = ""

    @property
    def api_url(self) -> str:
        if self.gateway is None:
            raise RuntimeError("the local stack is not started")
        host, port = self.gateway.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def emulator_url(self) -> str:
        if self.emulator is None:
            raise RuntimeError("the local stack is not started")
        return self.emulator.url

    def start(self) -> LocalStack:
        warnings.filterwarnings("ignore", message="No application metrics to publish")

        opts = self.options
        self.emulator = Emulator(opts.host, opts.emulator_port)
        self.emulator.start()  # in a process of its own: a core of its own

        os.environ.update(aws_env(self.emulator_url))
        deployment = deploy(self.emulator_url, opts.template_parameters())
        tpl, clients, self.resources = deployment.template, deployment.clients, deployment.resources
        # each function runs with the credentials of its own role, as SAM writes it (local/roles.py)
        self.roles = create_roles(tpl, client("iam"), client("sts"))
        self.issuer_role_arn = create_issuer_role(client("iam"), REGION)

        local_settings = self._local_env()
        # the variables Lambda sets for each function: the template's, its role's credentials
        self.env = deployment.env | local_settings

        def function(logical_id: str, handler: str) -> FunctionProcess:
            props = tpl.properties(logical_id)
            env = {**os.environ, **deployment.function_environment(logical_id), **local_settings}
            env.update(self.roles[logical_id].environment())
            return FunctionProcess(
                logical_id,
                handler,
                env,
                timeout=float(props.get("Timeout", tpl.globals("Timeout", 3))),
                memory_mb=int(props.get("MemorySize", tpl.globals("MemorySize", 128))),
                cwd=str(ROOT),
                # LOCAL_FAULT_* throttle the events' sending too (the processor's are the poller's)
                inject_faults=logical_id == "PublishFunction",
            )

        api_fn = function("ApiFunction", "handlers.api:lambda_handler")
        consumer_fn = function("ConsumerFunction", "handlers.consumer:lambda_handler")
        retention_fn = function("RetentionFunction", "handlers.retention:lambda_handler")
        publish_fn = function("PublishFunction", "handlers.publisher:lambda_handler")
        self.functions = [api_fn, consumer_fn, retention_fn, publish_fn]
        process = function("ProcessFunction", "handlers.processor:lambda_handler")

        opts.state_dir.mkdir(parents=True, exist_ok=True)
        # ProcessFunction: one poller and 'container' per process, as the SQS event source scales out;
        # each polls with the function's role, as the event source mapping does
        self.workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "local.worker",
                    "--queue-url",
                    self.resources.ingest_queue_url,
                    "--retry-delay",
                    str(opts.retry_delay),
                    "--timeout",
                    str(process.timeout),
                    "--memory",
                    str(process.memory_mb),
                    "--region",
                    REGION,
                ],
                cwd=ROOT,
                env=process.env,
            )
            for _ in range(opts.process_workers)
        ]
        if self.resources.webhook_queue_url:
            # WebhookUrl is set: the rule (provisioned from the template) fills the webhook's queue,
            # and one WebhookFunction 'container' drains it with its own role and environment
            webhook = function("WebhookFunction", "handlers.webhook:lambda_handler")
            self.workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "local.worker",
                        "--queue-url",
                        self.resources.webhook_queue_url,
                        "--retry-delay",
                        str(opts.retry_delay),
                        "--timeout",
                        str(webhook.timeout),
                        "--memory",
                        str(webhook.memory_mb),
                        "--region",
                        REGION,
                        "--function",
                        "WebhookFunction",
                        "--handler",
                        "handlers.webhook:lambda_handler",
                    ],
                    cwd=ROOT,
                    env=webhook.env,
                )
            )
        tap = EventTap(
            clients["sqs"], self.resources.events_queue_url, opts.state_dir / "events.jsonl", consumer_fn, opts.quiet
        )
        stream_arn = clients["dynamodb"].describe_table(TableName=self.resources.uploads_table)["Table"][
            "LatestStreamArn"
        ]
        sweeper = TtlSweeper(clients["dynamodb"], self.resources.uploads_table, interval=opts.ttl_sweep_seconds)
        self.threads = [
            tap,
            *(
                StreamPoller(client("dynamodbstreams"), stream_arn, fn, *mapping_of(tpl.raw, fn.name))
                for fn in (retention_fn, publish_fn)
            ),
            sweeper,
        ]
        if self.resources.scan_requests_queue_url:
            # GuardDuty Malware Protection's part: ClamAV scans every staging object (local/scanner.py)
            # (several at once, as GuardDuty scans many objects in parallel)
            switch = os.environ.get("LOCAL_SCANNER_SWITCH")
            self.threads += [
                Scanner(
                    client("sqs", access_key=SCANNER_KEY),
                    client("s3", access_key=SCANNER_KEY),
                    client("events", access_key=SCANNER_KEY),
                    self.resources.scan_requests_queue_url,
                    REGION,
                    switch=Path(switch) if switch else None,
                    duplicate_rate=float(os.environ.get("LOCAL_DUPLICATE_RATE") or 0),
                    name=f"scanner-{n}",
                )
                for n in range(SCANNERS)
            ]
        for thread in self.threads:
            thread.start()

        issuer = LocalIssuer(opts.state_dir)
        self.gateway = Gateway(
            (opts.host, opts.port),
            api_fn,
            ROOT / "client-demo",
            config=self.client_config,
            authenticate=issuer.verify if opts.auth == "jwt" else None,
            # as the template's authorizer: what its API declares without security needs no token
            public_routes=tpl.public_routes(),
            local_routes={
                "POST /local/token": partial(_token_route, issuer),
                "POST /local/ttl-sweep": partial(_sweep_route, sweeper),
            },
            allowed_origins=tpl.ref("AllowedOrigins"),
            # the trusted-backend routes: SigV4, verified with what the emulator's STS issued
            iam_routes=tpl.iam_routes(),
            verify_iam=EmulatorVerifier(self.emulator_url, REGION, ACCOUNT),
        )
        threading.Thread(target=self.gateway.serve_forever, name="gateway", daemon=True).start()
        (opts.state_dir / "stack.json").write_text(_json(self.describe()))
        return self

    def _local_env(self) -> dict[str, str]:
        """What differs locally from the template's environment."""
        return {
            "AUTH_MODE": self.options.auth,
            "STAGE": "local",
            **POWERTOOLS_OFF,
            "POWERTOOLS_LOG_LEVEL": os.environ.get("LOCAL_LOG_LEVEL", "WARNING"),
            "POWERTOOLS_DEV": "false",
        }

    def client_config(self) -> dict[str, Any]:
        return {"apiBaseUrl": self.api_url, "stage": "local", "auth": self.options.auth}

    def describe(self) -> dict[str, Any]:
        if self.resources is None:
            raise RuntimeError("the local stack is not started")
        return {
            "apiUrl": self.api_url,
            "emulatorUrl": self.emulator_url,
            "region": REGION,
            "bucket": self.resources.bucket,
            "buckets": list(self.resources.buckets),
            "bucketMode": "existing" if self.options.template_parameters().get("ExistingBuckets") else "own",
            "uploadsTable": self.resources.uploads_table,
            "eventBus": self.resources.event_bus,
            "ingestQueueUrl": self.resources.ingest_queue_url,
            "deadLetterQueueUrl": self.resources.dead_letter_queue_url,
            "eventsLog": str(self.options.state_dir / "events.jsonl"),
            "functionRoles": {name: role.role_arn for name, role in self.roles.items()},
            # a role for your own backend's calls to /backend/uploads (assume it with the emulator's STS)
            "trustedIssuerRoleArn": self.issuer_role_arn,
            "malwareScanning": bool(self.resources.scan_requests_queue_url),
            # the optional webhook: the secret's id in the emulator (never its value), its queues
            **(
                {
                    "webhookSecretId": self.resources.webhook_secret_id,
                    "webhookQueueUrl": self.resources.webhook_queue_url,
                    "webhookDeadLetterQueueUrl": self.resources.webhook_dead_letter_queue_url,
                }
                if self.resources.webhook_queue_url
                else {}
            ),
        }

    def stop(self) -> None:
        for thread in self.threads:
            thread.stop()
        if self.gateway is not None:
            self.gateway.shutdown()
            self.gateway.server_close()
        for worker in self.workers:
            worker.terminate()
        for thread in self.threads:
            thread.join(timeout=5)
        for function in self.functions:
            function.stop()
        for worker in self.workers:
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
        if self.emulator is not None:
            self.emulator.stop()


def _token_route(issuer: LocalIssuer, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
    """Local only: a token for any user name, as a sign-in would give (never part of the deployed API)."""
    try:
        user = (json.loads(body or b"{}") or {}).get("user", "demo")
    except (ValueError, AttributeError):
        user = None
    if not isinstance(user, str) or not re.fullmatch(r"[A-Za-z0-9._@-]{1,64}", user):
        detail = 'body must be {"user": "<name>"} with 1-64 letters, digits or ._@-'
        return 400, problems.INVALID_REQUEST.problem(detail)
    return 200, {"token": issuer.mint(user), "tokenType": "Bearer", "expiresIn": TOKEN_LIFETIME, "user": user}


def _sweep_route(sweeper: TtlSweeper, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
    """Local only: run DynamoDB's TTL now, as of the moment given (the clock played forward)."""
    try:
        at = (json.loads(body or b"{}") or {}).get("at")
        moment = datetime.fromisoformat(at) if at else datetime.now(UTC)
        if moment.tzinfo is None:
            raise ValueError("naive time")
    except (ValueError, AttributeError, TypeError):
        return 400, problems.INVALID_REQUEST.problem('body must be {"at": "<ISO 8601 time with offset>"}')
    return 200, {"removed": sweeper.sweep(moment), "at": moment.isoformat()}


# the malware scanner's requests are GuardDuty's on AWS (billed per GB scanned, not per request)
SCANNER_KEY = "guardduty"


_EXPOSED = (
    "  WARNING           listening on {host}: anyone who can reach this address can mint tokens for any "
    "user (/local/token) and use the emulator's S3, SQS and DynamoDB without credentials"
)


def _in_use(host: str, port: int) -> bool:
    """Whether something listens on ``host:port`` already (asked before anything starts)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: not TIME_WAIT
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def _json(value: Any) -> str:
    return json.dumps(value, indent=2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run directupload locally (moto as AWS).")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address the API and the emulator listen on (default 127.0.0.1); any other lets whoever "
        "reaches it mint tokens (/local/token) and read and write the emulator's AWS without credentials",
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 3000)))
    parser.add_argument("--emulator-port", type=int, default=int(os.environ.get("EMULATOR_PORT", 4566)))
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".local")
    parser.add_argument(
        "--auth",
        choices=["jwt", "none"],
        default=os.environ.get("LOCAL_AUTH", "jwt"),
        help="jwt (default): bearer tokens required, as with the template's authorizer; none: one anonymous owner",
    )
    parser.add_argument("--retry-delay", type=int, default=1, help="seconds before a failed message is retried")
    parser.add_argument(
        "--process-workers",
        type=int,
        default=int(os.environ.get("LOCAL_PROCESS_WORKERS", 3)),
        help="ProcessFunction containers (processes) polling the queue at once (default 3)",
    )
    parser.add_argument(
        "--buckets",
        choices=["own", "existing"],
        default=os.environ.get("LOCAL_BUCKETS", "own"),
        help="own (default): the template's bucket, S3 -> SQS; existing: buckets provisioned outside the "
        "template, as their owner would, S3 -> EventBridge -> SQS (ExistingBuckets=a,b names them)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not print each event")
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template parameter, as `sam deploy --parameter-overrides` sets it (e.g. ProfilesJson=...)",
    )
    parser.add_argument(
        "--ttl-sweep-seconds", type=float, default=60, help="how often DynamoDB's TTL is applied (default 60)"
    )
    args = parser.parse_args(argv)
    taken = [f"{args.host}:{port}" for port in (args.port, args.emulator_port) if port and _in_use(args.host, port)]
    if taken:
        print(
            f"{' and '.join(taken)} already in use: stop what holds it, or choose other ports "
            "(make run PORT=3001 EMULATOR_PORT=4567, or --port and --emulator-port)",
            file=sys.stderr,
        )
        return 2
    parameters = dict(item.split("=", 1) for item in args.parameter if "=" in item)
    stack = LocalStack(
        StackOptions(
            host=args.host,
            port=args.port,
            emulator_port=args.emulator_port,
            state_dir=args.state_dir,
            auth=args.auth,
            retry_delay=args.retry_delay,
            process_workers=max(1, args.process_workers),
            quiet=args.quiet,
            parameters=parameters,
            buckets=args.buckets,
            ttl_sweep_seconds=args.ttl_sweep_seconds,
        )
    ).start()
    info = stack.describe()
    print(
        "\n".join(
            [
                "directupload local stack is up",
                f"  demo page + API   {info['apiUrl']}/  (OpenAPI: {info['apiUrl']}/openapi.json)",
                f"  AWS emulator      {info['emulatorUrl']}  (moto: S3, SQS, DynamoDB, EventBridge, Secrets Manager)",
                f"  bucket            {', '.join(info['buckets'])} ({info['bucketMode']})",
                f"  ingest queue      {info['ingestQueueUrl']}",
                f"  dead letters      {info['deadLetterQueueUrl']}",
                f"  events            printed here and appended to {info['eventsLog']}",
                *(
                    ["  malware scans     ClamAV (local/clamav signatures), as GuardDuty"]
                    if info["malwareScanning"]
                    else []
                ),
                *(
                    [f"  webhook           signed with the secret {info['webhookSecretId']} (in the emulator)"]
                    if "webhookSecretId" in info
                    else []
                ),
                f"  auth              {stack.options.auth}",
                *([_EXPOSED.format(host=args.host)] if not _loopback(args.host) else []),
                "Ctrl-C stops everything.",
            ]
        ),
        flush=True,
    )
    done = threading.Event()
    # Ctrl-C stops the stack even when whatever started it left SIGINT ignored (a background job
    # of a script), as it stops the emulator beside it (local/emulator.py)
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: done.set())
    with contextlib.suppress(KeyboardInterrupt):
        done.wait()
    print("stopping...", flush=True)
    stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
