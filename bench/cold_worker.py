"""One cold start, in a fresh interpreter: ``python bench/cold_worker.py MODE JOB RESULT``.

Run as a script (not ``-m``) so nothing but this file is imported before the clock starts.
MODE is one of:

  api                 import handlers.api, serve the first POST /uploads
  api-baseline        import boto3, build the S3 and DynamoDB clients, presign one POST, put one item
  processor           import handlers.processor, handle the first SQS batch (one S3 notification)
  processor-baseline  import boto3, build the S3, DynamoDB and EventBridge clients, stream the
                      object (get_object, read in 1 MiB chunks), put one item, put one event

JOB is a JSON file with the event and names (written by bench/cold_start.py); RESULT is where
this writes ``{"seconds": ..., "importSeconds": ..., "outcome": ...}``. The functions' environment
comes from the parent (template variables, emulator endpoint, Lambda's own variables).
"""

import time

T0 = time.perf_counter()

import json  # noqa: E402 - after the clock on purpose
import os  # noqa: E402
import sys  # noqa: E402


class Context:
    """The attributes powertools reads from Lambda's context object."""

    def __init__(self, name: str, memory: int, timeout: float = 60) -> None:
        self.function_name = name
        self.memory_limit_in_mb = memory
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        self.aws_request_id = "00000000-0000-4000-8000-000000000000"
        self.function_version = "$LATEST"
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "cold"
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def api(job: dict) -> tuple[float, object]:
    from handlers import api as handler_module

    imported = time.perf_counter()
    reply = handler_module.lambda_handler(job["event"], Context("ApiFunction", 512))
    body = json.loads(reply["body"])
    return imported, {"status": reply["statusCode"], "uploadId": body.get("uploadId"), "fields": body.get("fields")}


def api_baseline(job: dict) -> tuple[float, object]:
    import boto3
    from botocore.config import Config

    imported = time.perf_counter()
    retries = {"mode": "standard", "max_attempts": 3}
    session = boto3.session.Session()
    s3 = session.client("s3", config=Config(signature_version="s3v4", retries=retries))
    ddb = session.client("dynamodb", config=Config(retries=retries))
    request = json.loads(job["event"]["body"])
    upload_id = os.urandom(16).hex()
    key = f"incoming/{upload_id}/{request['filename']}"
    fields = {"Content-Type": request["contentType"], "x-amz-meta-upload-id": upload_id}
    conditions: list = [{k: v} for k, v in fields.items()]
    conditions.append(["content-length-range", request["size"], request["size"]])
    signed = s3.generate_presigned_post(
        Bucket=job["bucket"], Key=key, Fields=fields, Conditions=conditions, ExpiresIn=900
    )
    ddb.put_item(
        TableName=job["table"],
        Item={
            "pk": {"S": f"upload#{upload_id}"},
            "status": {"S": "PENDING"},
            "key": {"S": key},
            "size": {"N": str(request["size"])},
        },
        ConditionExpression="attribute_not_exists(pk)",
    )
    json.dumps({"uploadId": upload_id, **signed})
    return imported, {"status": 201, "uploadId": upload_id}


def processor(job: dict) -> tuple[float, object]:
    from handlers import processor as handler_module

    imported = time.perf_counter()
    reply = handler_module.lambda_handler(job["event"], Context("ProcessFunction", 1024, timeout=900))
    return imported, reply


def processor_baseline(job: dict) -> tuple[float, object]:
    import boto3

    imported = time.perf_counter()
    session = boto3.session.Session()
    s3 = session.client("s3")
    ddb = session.client("dynamodb")
    events = session.client("events")
    body = s3.get_object(Bucket=job["bucket"], Key=job["key"])["Body"]
    size = sum(len(chunk) for chunk in body.iter_chunks(1024 * 1024))
    ddb.put_item(
        TableName=job["table"],
        Item={"pk": {"S": f"baseline#{os.urandom(8).hex()}"}, "status": {"S": "PROCESSED"}, "size": {"N": str(size)}},
    )
    events.put_events(
        Entries=[
            {
                "Source": "bench",
                "DetailType": "Baseline",
                "Detail": json.dumps({"size": size}),
                "EventBusName": job["bus"],
            }
        ]
    )
    return imported, {"size": size}


MODES = {"api": api, "api-baseline": api_baseline, "processor": processor, "processor-baseline": processor_baseline}

if __name__ == "__main__":
    mode, job_path, result_path = sys.argv[1:4]
    with open(job_path) as f:
        job = json.load(f)
    imported, outcome = MODES[mode](job)
    done = time.perf_counter()
    with open(result_path, "w") as f:
        json.dump({"seconds": done - T0, "importSeconds": imported - T0, "outcome": outcome}, f)
