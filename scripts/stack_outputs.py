"""Write a deployed stack's outputs where the demo page reads its configuration.

    python scripts/stack_outputs.py --stack directupload-dev [--region eu-west-1] [--out client-demo/config.json]

Uses the ordinary AWS credential chain (profile, environment, SSO). Nothing is hard-coded in the
page: it discovers the API, region and bucket from this file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

# config.json key <- stack output (template.yaml Outputs)
CONFIG_FROM_OUTPUTS = {"apiBaseUrl": "ApiUrl", "region": "Region", "bucket": "UploadsBucketName", "auth": "AuthMode"}


class StackOutputsError(Exception):
    pass


def stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    if not stacks:
        raise StackOutputsError(f"no stack named {stack}")
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def client_config(outputs: dict[str, str]) -> dict[str, str]:
    missing = sorted(name for name in CONFIG_FROM_OUTPUTS.values() if name not in outputs)
    if missing:
        raise StackOutputsError(f"the stack has no output {', '.join(missing)} (deployed from an older template?)")
    config = {key: outputs[name] for key, name in CONFIG_FROM_OUTPUTS.items()}
    config["apiBaseUrl"] = config["apiBaseUrl"].rstrip("/")
    config["stage"] = "aws"
    return config


def main(argv: list[str] | None = None, cloudformation: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="directupload-dev")
    parser.add_argument("--region", default=None, help="default: the AWS CLI/SDK default region")
    parser.add_argument("--out", type=Path, default=Path("client-demo/config.json"))
    args = parser.parse_args(argv)

    if cloudformation is None:
        import boto3

        cloudformation = boto3.client("cloudformation", region_name=args.region)
    try:
        config = client_config(stack_outputs(cloudformation, args.stack))
    except (StackOutputsError, ClientError, BotoCoreError) as exc:
        print(f"stack_outputs: {exc}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(config, indent=2) + "\n")
    print(f"wrote {args.out}: {json.dumps(config)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
