"""The AWS emulator (moto over real HTTP on loopback) and resources provisioned from template.yaml.

In process (``InProcessEmulator``) where the brief wants the handler and its baseline to share
one process with the emulator, or as a child process (``EmulatorProcess``, ``python -m
bench.emulator``) where a measured subprocess must not share its memory or GIL with it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
import warnings
from dataclasses import dataclass
from typing import Any

from bench import FUNCTIONS, ROOT

REGION = "us-east-1"
# moto accepts any credentials: placeholders, not secrets
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}

# The deployment the figures describe: the template's defaults with Stage=prod (INFO logs, as
# production logs), except the per-owner daily byte allowance, which the size benchmarks would
# otherwise use up after two 5 GiB issues (the quota *calls* are made all the same).
PARAMETERS = {"Stage": "prod", "QuotaDailyBytes": str(2**60)}


def quiet() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def aws_env(endpoint: str) -> dict[str, str]:
    return {**CREDENTIALS, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "AWS_ENDPOINT_URL": endpoint}


def client(service: str, endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session(region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local").client(
        service, endpoint_url=endpoint, config=Config(signature_version="s3v4") if service == "s3" else None
    )


class InProcessEmulator:
    """The emulator the local stack runs (moto behind the IAM gate), in this process."""

    def __init__(self) -> None:
        from local.emulator import serve

        quiet()
        self.server = serve("127.0.0.1", 0)
        host, port = self.server.server_address[:2]
        self.url = f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    def stop(self) -> None:
        self.server.shutdown()

    def __enter__(self) -> InProcessEmulator:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class EmulatorProcess:
    """moto in a child process; it lives until ``stop()`` (or until this process's stdin pipe closes)."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.emulator"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError(f"the emulator did not start: {line!r}")
        self.url = line

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


@dataclass
class Deployment:
    """Resources of one benchmark in the emulator, and the functions' environment pointing at them."""

    endpoint: str
    resources: Any  # local.provision.Provisioned
    env: dict[str, str]

    @property
    def bucket(self) -> str:
        return str(self.resources.bucket)

    @property
    def table(self) -> str:
        return str(self.resources.uploads_table)


def deploy(endpoint: str, parameters: dict[str, str] | None = None) -> Deployment:
    """Provision template.yaml's resources (fresh names) and return the functions' environment,
    as Lambda would set it (both functions' variables), pointed at the emulator."""
    from directupload.profiles import load_profiles
    from local.provision import provision
    from local.template import LocalTemplate, load

    tpl = LocalTemplate(
        load(),
        region=REGION,
        prefix=f"b{uuid.uuid4().hex[:10]}",
        endpoint=endpoint,
        parameters={**PARAMETERS, **(parameters or {})},
    )
    clients = {name: client(name, endpoint) for name in ("s3", "sqs", "dynamodb", "events")}
    resources = provision(tpl, clients["s3"], clients["sqs"], clients["dynamodb"], clients["events"])
    env = tpl.function_environment("ProcessFunction") | tpl.function_environment("ApiFunction")
    env.update(aws_env(endpoint))
    env.update(
        {
            # the figures are of our processing; the malware scanner's latency is GuardDuty's
            "PROFILES_JSON": json.dumps(
                {
                    name: {**profile.model_dump(by_alias=True, exclude={"name"}), "scan": "off"}
                    for name, profile in load_profiles(env.get("PROFILES_JSON")).items()
                }
            ),
            "AUTH_MODE": "none",
            # No X-Ray daemon here: tracing off, as in the local stack. Metrics stay on (EMF to stdout).
            "POWERTOOLS_TRACE_DISABLED": "true",
            "PYTHONPATH": os.pathsep.join([str(FUNCTIONS), str(ROOT)]),
        }
    )
    return Deployment(endpoint, resources, env)


def lambda_env(function_name: str, memory_mb: int) -> dict[str, str]:
    """What the Lambda runtime adds to a function's environment. LAMBDA_TASK_ROOT matters: the
    X-Ray SDK (imported by the powertools Tracer) takes its Lambda path with it, and without it
    builds two X-Ray clients at import time, which a Lambda cold start never pays."""
    return {
        "LAMBDA_TASK_ROOT": str(FUNCTIONS),
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
    }


def _serve() -> None:
    quiet()
    emulator = InProcessEmulator()
    print(emulator.url, flush=True)
    sys.stdin.read()  # until the parent closes the pipe (or dies)
    emulator.stop()


if __name__ == "__main__":
    _serve()
    sys.exit(0)
