"""One cold start, in a fresh interpreter: ``python bench/cold_worker.py MODE JOB RESULT``.

Run as a script (not ``-m``) so nothing but this file is imported before the clock starts.
MODE is one of:

  api                 import handlers.api, serve the first POST /uploads
  api-baseline        import boto3, build the S3 and DynamoDB clients, presign one POST, put one item
  api-stack           api-baseline's work in a minimal handler on the product's stack: powertools'
                      HTTP resolver with validation (a pydantic body model), Logger and Metrics
  processor           import handlers.processor, handle the first SQS batch (one S3 notification)
  processor-baseline  import boto3, build the S3, DynamoDB and EventBridge clients, stream the
                      object (get_object, read in 1 MiB chunks), put one item, put one event
  processor-stack     processor-baseline's work in a minimal handler on the product's stack:
                      powertools' BatchProcessor, a pydantic model, Logger and Metrics

The two "stack" modes are a floor: what the frameworks the style guide asks for cost before any
line of ours runs (tracing is off in both, as in the subject, whose off-tracer imports nothing).

JOB is a JSON file with the event and names (written by bench/cold_start.py); RESULT is where
this writes ``{"seconds": ..., "importSeconds": ..., "cpuSeconds": ..., "gcSeconds": ..., "gcPasses": ...,
"outcome": ...}`` (CPU: this process's own, user and system, so not the emulator's, which runs in
the parent; GC: the time and passes of Python's cyclic garbage collector). The functions'
environment comes from the parent (template variables, emulator endpoint, Lambda's own variables).
"""

import time

T0 = time.perf_counter()
CPU0 = time.process_time()

import gc  # noqa: E402 - after the clock on purpose
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

GC = {"seconds": 0.0, "passes": 0, "since": 0.0}


def _collecting(phase: str, _: dict) -> None:
    """Time in the cyclic garbage collector (what a pause while starting saves: handlers/__init__.py)."""
    if phase == "start":
        GC["since"] = time.perf_counter()
    else:
        GC["seconds"] += time.perf_counter() - GC["since"]
        GC["passes"] += 1


gc.callbacks.append(_collecting)


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


def _api_clients() -> tuple:
    import boto3
    from botocore.config import Config

    retries = {"mode": "standard", "max_attempts": 3}
    session = boto3.session.Session()
    s3 = session.client("s3", config=Config(signature_version="s3v4", retries=retries))
    return s3, session.client("dynamodb", config=Config(retries=retries))


def _issue(clients: tuple, job: dict, filename: str, content_type: str, size: int) -> tuple[str, dict]:
    """The API baselines' AWS work: presign one POST, put one item. Returns (upload id, signed)."""
    s3, ddb = clients
    upload_id = os.urandom(16).hex()
    key = f"incoming/{upload_id}/{filename}"
    fields = {"Content-Type": content_type, "x-amz-meta-upload-id": upload_id}
    conditions: list = [{k: v} for k, v in fields.items()]
    conditions.append(["content-length-range", size, size])
    signed = s3.generate_presigned_post(
        Bucket=job["bucket"], Key=key, Fields=fields, Conditions=conditions, ExpiresIn=900
    )
    ddb.put_item(
        TableName=job["table"],
        Item={
            "pk": {"S": f"upload#{upload_id}"},
            "status": {"S": "PENDING"},
            "key": {"S": key},
            "size": {"N": str(size)},
        },
        ConditionExpression="attribute_not_exists(pk)",
    )
    return upload_id, signed


def api_baseline(job: dict) -> tuple[float, object]:
    import boto3  # noqa: F401 - imported before the mark, as the subject imports its own
    from botocore.config import Config  # noqa: F401

    imported = time.perf_counter()
    clients = _api_clients()
    request = json.loads(job["event"]["body"])
    upload_id, signed = _issue(clients, job, request["filename"], request["contentType"], request["size"])
    json.dumps({"uploadId": upload_id, **signed})
    return imported, {"status": 201, "uploadId": upload_id}


def api_stack(job: dict) -> tuple[float, object]:
    from typing import Annotated, Any

    import boto3  # noqa: F401 - imported before the mark, as the subject imports its own
    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
    from aws_lambda_powertools.event_handler.openapi.params import Body
    from botocore.config import Config  # noqa: F401
    from pydantic import BaseModel, ConfigDict, Field

    imported = time.perf_counter()
    logger = Logger(service="bench")
    metrics = Metrics(namespace="Bench", service="bench")
    app = APIGatewayHttpResolver(enable_validation=True)
    clients: list = []

    class Issue(BaseModel):
        model_config = ConfigDict(populate_by_name=True, extra="forbid")
        profile: str
        filename: Annotated[str, Field(min_length=1, max_length=255)]
        content_type: Annotated[str, Field(alias="contentType")]
        size: Annotated[int, Field(gt=0)]

    class Issued(BaseModel):
        model_config = ConfigDict(populate_by_name=True)
        upload_id: Annotated[str, Field(alias="uploadId")]
        url: str
        fields: dict[str, str]

    @app.post("/uploads")
    def issue(request: Annotated[Issue, Body()]) -> Response[Issued]:
        if not clients:
            clients.extend(_api_clients())
        upload_id, signed = _issue(tuple(clients), job, request.filename, request.content_type, request.size)
        logger.info("upload issued", upload_id=upload_id, size=request.size)
        issued = Issued(upload_id=upload_id, url=signed["url"], fields=signed["fields"])
        reply: Response[Any] = Response(201, "application/json", issued.model_dump(mode="json", by_alias=True))
        return reply

    @logger.inject_lambda_context(log_event=False)
    @metrics.log_metrics
    def handler(event: dict, context: Any) -> Any:
        return app.resolve(event, context)

    reply = handler(job["event"], Context("ApiFunction", 512))
    body = json.loads(reply["body"])
    return imported, {"status": reply["statusCode"], "uploadId": body.get("uploadId")}


def processor(job: dict) -> tuple[float, object]:
    from handlers import processor as handler_module

    imported = time.perf_counter()
    reply = handler_module.lambda_handler(job["event"], Context("ProcessFunction", 1024, timeout=900))
    return imported, reply


def _processor_clients() -> dict:
    import boto3

    session = boto3.session.Session()
    return {"s3": session.client("s3"), "ddb": session.client("dynamodb"), "events": session.client("events")}


def _process(clients: dict, job: dict, bucket: str, key: str) -> int:
    """The processor baselines' AWS work: stream the object, put one item, put one event."""
    body = clients["s3"].get_object(Bucket=bucket, Key=key)["Body"]
    size = sum(len(chunk) for chunk in body.iter_chunks(1024 * 1024))
    clients["ddb"].put_item(
        TableName=job["table"],
        Item={"pk": {"S": f"baseline#{os.urandom(8).hex()}"}, "status": {"S": "PROCESSED"}, "size": {"N": str(size)}},
    )
    clients["events"].put_events(
        Entries=[
            {
                "Source": "bench",
                "DetailType": "Baseline",
                "Detail": json.dumps({"size": size}),
                "EventBusName": job["bus"],
            }
        ]
    )
    return size


def processor_baseline(job: dict) -> tuple[float, object]:
    import boto3  # noqa: F401 - imported before the mark, as the subject imports its own

    imported = time.perf_counter()
    return imported, {"size": _process(_processor_clients(), job, job["bucket"], job["key"])}


def processor_stack(job: dict) -> tuple[float, object]:
    from typing import Any
    from urllib.parse import unquote_plus

    import boto3  # noqa: F401 - imported before the mark, as the subject imports its own
    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
    from pydantic import BaseModel

    imported = time.perf_counter()
    logger = Logger(service="bench")
    metrics = Metrics(namespace="Bench", service="bench")
    batch = BatchProcessor(event_type=EventType.SQS)
    clients: dict = {}

    class Notified(BaseModel):
        bucket: str
        key: str
        size: int

    def record_handler(record: object) -> int:
        if not clients:
            clients.update(_processor_clients())
        entry = json.loads(record.body)["Records"][0]["s3"]  # type: ignore[attr-defined]
        notified = Notified(
            bucket=entry["bucket"]["name"], key=unquote_plus(entry["object"]["key"]), size=entry["object"]["size"]
        )
        size = _process(clients, job, notified.bucket, notified.key)
        logger.info("processed", key=notified.key, size=size)
        return size

    @logger.inject_lambda_context(log_event=False)
    @metrics.log_metrics
    def handler(event: dict, context: Any) -> Any:
        return process_partial_response(event=event, record_handler=record_handler, processor=batch, context=context)

    return imported, handler(job["event"], Context("ProcessFunction", 1024, timeout=900))


MODES = {
    "api": api,
    "api-baseline": api_baseline,
    "api-stack": api_stack,
    "processor": processor,
    "processor-baseline": processor_baseline,
    "processor-stack": processor_stack,
}

if __name__ == "__main__":
    mode, job_path, result_path = sys.argv[1:4]
    with open(job_path) as f:
        job = json.load(f)
    imported, outcome = MODES[mode](job)
    done = time.perf_counter()
    cpu = time.process_time() - CPU0
    with open(result_path, "w") as f:
        json.dump(
            {
                "seconds": done - T0,
                "importSeconds": imported - T0,
                "cpuSeconds": cpu,
                "gcSeconds": GC["seconds"],
                "gcPasses": GC["passes"],
                "outcome": outcome,
            },
            f,
        )
