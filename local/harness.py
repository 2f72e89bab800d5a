"""One emulator harness for the local stack, the tests and the benchmarks.

Each of them needs the same three things, built here once:

- the emulator: moto (with ``local/moto_fixes.py``) behind the IAM gate and the request counter,
  on loopback, in this process (``InProcessEmulator``) or in a child process of its own
  (``local.emulator.Emulator``);
- the template's resources provisioned in it (``deploy``), and the variables Lambda would give
  the functions, pointed at them;
- clients of it (``client``), with the placeholder keys moto accepts.

A function's Lambda context is ``local.lambda_runtime.LocalContext``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from local.emulator import serve
from local.provision import Provisioned, provision
from local.template import LocalTemplate, load

REGION = "us-east-1"
# moto accepts any credentials: placeholders, not secrets
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
# what the functions run without locally: no X-Ray daemon, and no CloudWatch to publish metrics to
POWERTOOLS_OFF = {"POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_DISABLED": "true"}
# the clients ``deploy`` provisions with (and hands on in ``Deployment.clients``)
SERVICES = ("s3", "sqs", "dynamodb", "events")
# boto3's default session is shared (its loaded service models make a client about three times
# cheaper than a session of its own) but not thread-safe: clients are made one at a time
_CLIENTS_LOCK = threading.Lock()


def aws_env(endpoint: str) -> dict[str, str]:
    """The variables that point an AWS SDK at the emulator: its keys, the region, the endpoint."""
    return {**CREDENTIALS, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "AWS_ENDPOINT_URL": endpoint}


def client(service: str, endpoint: str | None = None, *, access_key: str | None = None) -> Any:
    """A boto3 client of the emulator at ``endpoint`` (None: ``AWS_ENDPOINT_URL``'s), with the
    placeholder keys, or with an access key of its own (what the emulator's request counter
    names the requests by)."""
    import boto3
    from botocore.config import Config

    with _CLIENTS_LOCK:
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=endpoint,
            aws_access_key_id=access_key or CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(signature_version="s3v4") if service == "s3" else None,
        )


class InProcessEmulator:
    """The emulator the local stack runs (moto behind the IAM gate), serving from a thread of
    this process on a free loopback port; ``url`` is where."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = serve(host, port)
        bound_host, bound_port = self.server.server_address[:2]
        if isinstance(bound_host, bytes):
            bound_host = bound_host.decode()
        self.url = f"http://{bound_host}:{bound_port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> InProcessEmulator:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


@dataclass
class Deployment:
    """The template's resources in the emulator, and the functions' environment pointing at them."""

    endpoint: str
    template: LocalTemplate
    resources: Provisioned
    # ProcessFunction's and ApiFunction's variables together, as Lambda sets them from the template
    env: dict[str, str]
    clients: dict[str, Any]  # the ones it was provisioned with, by service (SERVICES)

    @property
    def bucket(self) -> str:
        return self.resources.bucket

    @property
    def table(self) -> str:
        return self.resources.uploads_table

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """One function's own variables, as the template gives them."""
        return self.template.function_environment(logical_id)


def deploy(endpoint: str, parameters: dict[str, str], prefix: str | None = None) -> Deployment:
    """Provision template.yaml's resources in the emulator at ``endpoint``, with these parameters
    and names under ``prefix`` (None: the local stack's), as CloudFormation would create them."""
    naming = {"prefix": prefix} if prefix is not None else {}
    tpl = LocalTemplate(load(), region=REGION, endpoint=endpoint, parameters=parameters, **naming)
    clients = {service: client(service, endpoint) for service in SERVICES}
    if tpl.resources("AWS::SecretsManager::Secret"):  # the webhook's signing secret (WebhookUrl set)
        clients["secretsmanager"] = client("secretsmanager", endpoint)
    resources = provision(
        tpl, clients["s3"], clients["sqs"], clients["dynamodb"], clients["events"], clients.get("secretsmanager")
    )
    env = tpl.function_environment("ProcessFunction") | tpl.function_environment("ApiFunction")
    return Deployment(endpoint, tpl, resources, env, clients)
