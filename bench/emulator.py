"""The benchmarks' deployment: template.yaml's resources in the emulator (local/harness.py), with
the parameters the figures describe.

The emulator runs in process (``InProcessEmulator``) where the brief wants the handler and its
baseline to share one process with it, or as a child process (``local.emulator.Emulator``) where
a measured subprocess must not share its memory or GIL with it.
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from typing import Any

from bench import FUNCTIONS, ROOT
from local import harness
from local.harness import Deployment

# The deployment the figures describe: the template's defaults with Stage=prod (INFO logs, as
# production logs), except the per-owner daily byte allowance, which the size benchmarks would
# otherwise use up after two 5 GiB issues (the quota *calls* are made all the same).
PARAMETERS = {"Stage": "prod", "QuotaDailyBytes": str(2**60)}


def quiet() -> None:
    """The benchmarks print their figures, not powertools' warnings about them."""
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def deploy(endpoint: str, parameters: dict[str, str] | None = None) -> Deployment:
    """Provision template.yaml's resources (fresh names) and return the functions' environment,
    as Lambda would set it (both functions' variables), pointed at the emulator."""
    from directupload.profiles import load_profiles

    quiet()
    parameters = {**PARAMETERS, **(parameters or {})}
    deployment = harness.deploy(endpoint, parameters, prefix=f"b{uuid.uuid4().hex[:10]}")
    env = deployment.env
    env.update(harness.aws_env(endpoint))
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
    return deployment


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


def baseline_clients(deployment: Deployment) -> tuple[Any, Any]:
    """The hand-written baselines' S3 and DynamoDB clients, built once and configured as
    functions/directupload/aws.py configures the product's (SigV4, standard retries)."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(region_name=harness.REGION)
    retries: Any = {"mode": "standard", "max_attempts": 3}
    s3 = session.client(
        "s3", endpoint_url=deployment.endpoint, config=Config(signature_version="s3v4", retries=retries)
    )
    ddb = session.client("dynamodb", endpoint_url=deployment.endpoint, config=Config(retries=retries))
    return s3, ddb
