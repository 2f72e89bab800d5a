"""scripts/stack_outputs.py turns the stack's outputs into the demo page's config.json."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
from botocore.stub import Stubber

from local.cfn import load_template
from scripts.stack_outputs import CONFIG_FROM_OUTPUTS, main


def _cloudformation(outputs: dict[str, str]) -> tuple[object, Stubber]:
    client = boto3.client("cloudformation", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    stubber.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "directupload-dev",
                    "CreationTime": "2024-01-01T00:00:00Z",
                    "StackStatus": "CREATE_COMPLETE",
                    "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
                }
            ]
        },
        {"StackName": "directupload-dev"},
    )
    stubber.activate()
    return client, stubber


def test_config_names_the_api_region_and_bucket_from_the_template_outputs(tmp_path: Path) -> None:
    # Given every output the template declares, with a value named after it
    outputs = {name: f"value-of-{name}" for name in load_template()["Outputs"]}
    outputs["ApiUrl"] = "https://abc123.execute-api.eu-west-1.amazonaws.com/"
    client, stubber = _cloudformation(outputs)
    out = tmp_path / "client-demo" / "config.json"

    # When
    code = main(["--stack", "directupload-dev", "--out", str(out)], cloudformation=client)

    # Then
    assert code == 0
    stubber.assert_no_pending_responses()
    assert set(CONFIG_FROM_OUTPUTS.values()) <= set(load_template()["Outputs"])
    assert json.loads(out.read_text()) == {
        "apiBaseUrl": "https://abc123.execute-api.eu-west-1.amazonaws.com",
        "region": outputs["Region"],
        "bucket": outputs["UploadsBucketName"],
        "auth": outputs["AuthMode"],
        "stage": "aws",  # the page then asks for a token instead of calling /local/token
    }


def test_a_stack_without_the_outputs_is_an_error_not_an_empty_config(tmp_path: Path) -> None:
    client, _ = _cloudformation({"Region": "eu-west-1"})
    out = tmp_path / "config.json"

    code = main(["--stack", "directupload-dev", "--out", str(out)], cloudformation=client)

    assert code == 1
    assert not out.exists()
