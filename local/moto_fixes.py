"""What the emulator must enforce and moto 5 does not, patched in where it serves requests.

- CopyObject's ``x-amz-copy-source-if-match``: S3 refuses the copy (412 PreconditionFailed)
  when the source is no longer that version. The processor promotes a verified object with
  exactly this condition, so a staging object written again after verification is never
  copied over the verified one. moto honours only ``if-none-match`` on copies.

- The ``sequencer`` of an S3 event notification: S3 gives each write of a key a larger one, so
  a consumer tells two writes of the same bytes (same ETag) apart; moto sends none. The
  processor's idempotency key includes it: without it a re-sent POST of identical bytes
  would look like a duplicate notification and its staging copy would stay.

- The same for S3's EventBridge events (``Object Created``, the existing-bucket path): moto puts
  one fixed sequencer in every event; each write gets a growing one, as above.

- GetBucketNotificationConfiguration leaves out ``EventBridgeConfiguration`` although moto stores
  it and sends the events: the bucket check (scripts/check_bucket.py) reads it, so it is added.

- Atomic conditional writes: DynamoDB evaluates a write's condition and applies it as one step;
  moto's backend has no lock, so two threads of its server can both pass a condition (the quota's
  "fewer than N pending" let a fourth of three through under load). Item writes are serialised.

- A POST upload writes a new object, with only the tags its form gives (none here): moto keeps
  the tags of the object it replaced, so bytes re-sent with a presigned POST would carry the
  malware scanner's verdict on the bytes before them. The processor relies on S3's behaviour
  (the tag travels with exactly the bytes it was given for); the emulator clears them.

- A POST whose form carries ``x-amz-checksum-sha256`` (the API pins it in the policy when the
  client declared the file's SHA-256): S3 refuses bytes that do not hash to it (400 BadDigest)
  and stores it as the object's FULL_OBJECT SHA256 checksum, which HeadObject and GetObject
  return with ``ChecksumMode=ENABLED``; the processor trusts it (processing/verify.py). moto
  ignores the field: the emulator checks and stores it.

- ListParts of a multipart upload opened with a SHA256 checksum: S3 lists each part's
  ``ChecksumSHA256`` (a client resuming compares it with its own bytes); moto lists none. It is
  taken when the part arrives, as S3 takes it, so a listing (every complete lists the parts)
  does not hash the whole object again.

- Bucket policies: moto evaluates a bucket's policy on object requests with its own evaluator,
  which treats any condition it cannot see (``aws:SecureTransport``) as an explicit deny, so the
  template's TLS-only statement would refuse every request. moto's check is switched off; the
  emulator's IAM gate (local/iam_gate.py) evaluates the bucket policy for the functions' roles.

- TransactWriteItems backs up each table it touches with a deep copy, to put back if the
  transaction is refused: a cost that grows with the table (25 us an item here, 75 ms a
  transaction at 3,000 records; a table with a stream also copied every stream record), which
  real DynamoDB does not pay and which made the emulator slower with every upload of a long run.
  Only the items the transaction names are backed up. A refused transaction puts them back as
  they were and drops the stream records of the writes it had made; stream reads take the same
  lock as writes, so no reader sees a write that never happened (nor skips, after it, the real
  records that reuse its sequence numbers), and the readers' shard goes on with what follows.

- moto's server finds the backend for every request by listing its own package directory (a
  `stat` of each of its ~150 service folders) and trying its URL patterns one by one, under one
  lock that every request of every service waits for: a tenth of the emulator's CPU under the
  benchmark's load. A host's backend never changes, so it is looked up once per host.

- SendMessage (and so every event a bus's rule delivers to a queue) builds all of the queue's
  attributes to read one flag, counting its messages on the way: each message sent cost the
  emulator as much as the queue held, so a queue no one drains (a consumer's, a dead-letter
  queue) slowed every send to it. ReceiveMessage does the same for each message it hands out
  (three times, to read the retention period), counting delayed messages too. Neither counts them
  any more.

- SQS queues: moto's backend has no lock either. A DeleteMessage rebuilds the queue's list of
  messages, so a message sent while it ran was dropped (an S3 notification lost: an upload that
  never settled), and two ReceiveMessage calls could hand out the same message at once (a later
  receive while the first still runs, which only a dead attempt allows on AWS). Every call that
  changes a queue is serialised; a long poll waits outside the lock.

- A bus's rule delivering an event to a target builds the target's input from eight JSONPath
  expressions (moto's default input paths), and moto compiled each one again, parser and all, for
  every event and target: 0.3 ms an expression, about 2.6 ms an event per target. An expression
  compiles to the same path every time, so each is compiled once.

- DynamoDB's answers: moto builds the reply of every operation by walking botocore's model of its
  output, member by member, with a generic serialiser; for the item operations (GetItem,
  UpdateItem, TransactWriteItems, Query...) that walk took more of the emulator's CPU than the
  operation itself (a sixth of it under the benchmark's load, against a tenth for UpdateItem's
  own work), and the more attributes an item has the more it costs. Their results are already the
  wire's JSON (attribute values as ``{"S": ...}``): they are written out as JSON directly, the
  members the model does not name left out as the serialiser leaves them out. Anything else
  (another operation, an error, a binary attribute, a value JSON cannot hold) goes the generic
  way. ``CHECK_JSON`` makes every direct answer compare itself with the generic one (the tests).

- A queue's visible messages: moto finds them for every ReceiveMessage (and again each time a
  long poll is woken) by asking each message in the queue whether it is visible and whether it
  is delayed, each question reading the clock anew: 9 ms a walk with 600 delayed messages
  queued, which is what a run of scanned uploads leaves in the ingest queue (each one's scan
  deadline check waits there until its deadline), so every receive after such a run cost the
  emulator more. The clock is read once per walk and each message's two times compared with it.

Applied by the emulator process (local/emulator.py) and by the tests' in-process moto server.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
from collections import Counter
from typing import Any

_APPLIED = False
CHECK_JSON = False  # True: each DynamoDB answer written directly is checked against moto's own
JSON_MISMATCHES: list[str] = []  # what the check found (operations whose answers differed)
JSON_CHECKED: Counter[str] = Counter()  # the operations it checked, how many times
BAD_DIGEST = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>BadDigest</Code>'
    "<Message>The SHA256 you specified did not match the calculated checksum.</Message></Error>"
)


def apply() -> None:
    global _APPLIED
    if _APPLIED:
        return
    _conditional_copies()
    _s3_events()
    _transactions_without_table_copies()  # first: its rollback runs under the lock _the_rest takes
    _dispatch_once_per_host()
    _the_rest()
    _part_checksums_listed()
    _sqs_receive_races()
    _sends_and_receives_without_counting()
    _sqs_serialised()
    _event_paths_compiled_once()
    _dynamodb_answers_as_json()
    _visible_messages_at_one_time()
    _APPLIED = True


def _visible_messages_at_one_time() -> None:
    import moto.sqs.models as sqs_models
    from moto.sqs.models import Queue

    def messages(self: Queue) -> list[Any]:
        now = sqs_models.unix_time_millis()  # moto's clock, read once for the walk
        return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]

    Queue.messages = property(messages)  # type: ignore[method-assign,assignment]


# The item operations whose results moto hands its serialiser as the wire's JSON already.
ITEM_OPERATIONS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    }
)


def _typed(value: Any) -> Any:
    """A JSON value compared with its types: True is not 1, "1" is not 1. A whole number and
    the same float are one value (botocore parses both as the model's double)."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_typed(item) for item in value]
    if isinstance(value, bool) or value is None:
        return (type(value).__name__, value)
    if isinstance(value, int | float):
        return ("number", float(value))
    return (type(value).__name__, value)


def _dynamodb_answers_as_json() -> None:
    from moto.core.responses import ActionResult
    from moto.dynamodb.responses import DynamoHandler

    generic = DynamoHandler.serialized
    members: dict[str, frozenset[str]] = {}

    def output_members(handler: DynamoHandler, operation: str) -> frozenset[str]:
        if operation not in members:
            from moto.core.utils import get_service_model

            shape = get_service_model("dynamodb").operation_model(operation).output_shape
            members[operation] = frozenset(shape.members) if shape is not None else frozenset()
        return members[operation]

    def direct(handler: DynamoHandler, result: Any) -> str | None:
        operation = handler._get_action()
        if operation not in ITEM_OPERATIONS or not isinstance(result, dict):
            return None
        known = output_members(handler, operation)
        try:
            body = json.dumps({name: value for name, value in result.items() if name in known})
        except (TypeError, ValueError):  # bytes, a datetime, an object: the generic way
            return None
        return None if '"B":' in body or '"BS":' in body else body

    def serialized(self: DynamoHandler, action_result: ActionResult) -> Any:
        body = direct(self, action_result.result)
        if body is None:
            return generic(self, action_result)
        if CHECK_JSON:
            _, _, expected = generic(self, action_result)
            JSON_CHECKED[self._get_action()] += 1
            if _typed(json.loads(expected)) != _typed(json.loads(body)):
                JSON_MISMATCHES.append(f"{self._get_action()}: {body[:300]} != {str(expected)[:300]}")
        headers = {"Content-Type": "application/x-amz-json-1.0", **self.response_headers}
        return 200, headers, body

    DynamoHandler.serialized = serialized  # type: ignore[method-assign,assignment]


def _dispatch_once_per_host() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.get_backend_for_host
    found: dict[str | None, Any] = {}

    def get_backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
        if host not in found:
            if len(found) > 1000:  # hosts come from requests: keep the memo bounded
                found.clear()
            found[host] = original(self, host)
        return found[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]


def _transactions_without_table_copies() -> None:
    import copy
    import threading
    import types

    import moto.dynamodb.models as models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    inside = threading.local()

    def deepcopy(value: Any, memo: Any = None) -> Any:
        # moto's backup of a whole table for its rollback: the table itself (the rollback puts
        # back what it replaced, nothing); the transaction's own items are backed up below
        if isinstance(value, Table) and getattr(inside, "transaction", False):
            return value
        return copy.deepcopy(value, memo)

    models.copy = types.SimpleNamespace(**{**vars(copy), "deepcopy": deepcopy})  # type: ignore[assignment]
    original = DynamoDBBackend.transact_write_items

    def backups(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[tuple[str, Any, Any]]:
        """(table, key, a copy of the item or None) for each item the transaction names."""
        saved = []
        for entry in transact_items:
            with contextlib.suppress(Exception):  # a malformed entry: moto refuses it before any write
                ((kind, op),) = entry.items()
                table = backend.get_table(op["TableName"])
                if kind == "Put":  # a Put writes the item its Item names
                    names = (table.hash_key_attr, table.range_key_attr)
                    key = {name: op["Item"][name] for name in names if name is not None}
                else:
                    key = op["Key"]
                found = backend.get_item(op["TableName"], key)
                saved.append((op["TableName"], key, None if found is None else found.to_json()["Attributes"]))
        return saved

    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        saved = backups(self, transact_items)
        shards = {
            name: (shard, len(shard.items))
            for name in {name for name, _, _ in saved}
            if (shard := self.tables[name].stream_shard) is not None
        }
        inside.transaction = True
        try:
            original(self, transact_items)
        except BaseException:
            for name, key, before in reversed(saved):
                if before is None:
                    self.tables[name].delete_item(*self.get_keys_value(self.tables[name], key))
                else:
                    self.tables[name].put_item(before)
            for shard, length in shards.values():
                del shard.items[length:]  # the refused transaction's writes, and their undoing
            raise
        finally:
            inside.transaction = False

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _conditional_copies() -> None:
    from urllib.parse import unquote, urlparse

    from moto.s3.exceptions import PreconditionFailed
    from moto.s3.responses import S3Response

    original = S3Response.copy_object

    def copy_object(self: S3Response) -> Any:
        wanted = self.headers.get("x-amz-copy-source-if-match")
        if wanted:
            source = self.headers.get("x-amz-copy-source")
            if isinstance(source, bytes):
                source = source.decode("utf-8")
            bucket, key = unquote(urlparse(source).path).lstrip("/").split("/", 1)
            current = self.backend.get_object(bucket, key)
            if current is None or current.etag.strip('"') != wanted.strip('"'):
                raise PreconditionFailed(failed_condition="x-amz-copy-source-If-Match")
        return original(self)

    S3Response.copy_object = copy_object  # type: ignore[method-assign]


def _s3_events() -> None:
    import itertools
    import time

    from moto.s3 import notifications
    from moto.s3.responses import S3Response

    event_of = notifications._get_s3_event
    counter = itertools.count()

    def s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
        event = event_of(event_name, bucket, key, notification_id)
        sequencer = f"{time.time_ns():016X}{next(counter) % 0x10000:04X}"  # grows with every write
        for record in event["Records"]:
            record["s3"]["object"]["sequencer"] = sequencer
        return event

    notifications._get_s3_event = s3_event

    from moto.events.models import Rule

    send_to_targets = Rule.send_to_targets
    moto_sequencer = "617f08299329d189"  # moto's one value for every S3 EventBridge event

    def send_s3_event_to_targets(self: Rule, event: Any, transform_input: bool = True) -> None:
        obj = (event.get("detail") or {}).get("object") if event.get("source") == "aws.s3" else None
        if isinstance(obj, dict) and obj.get("sequencer") == moto_sequencer:
            # set once for the write (in place: every rule moto offers this event to sees the same one)
            obj["sequencer"] = f"{time.time_ns():016X}{next(counter) % 0x10000:04X}"
        send_to_targets(self, event, transform_input)

    Rule.send_to_targets = send_s3_event_to_targets  # type: ignore[method-assign,assignment]

    get_notification = S3Response.get_bucket_notification

    def get_bucket_notification(self: S3Response) -> Any:
        reply = get_notification(self)
        config = self.backend.get_bucket_notification_configuration(self.bucket_name)
        if config is None or config.event_bridge is None or not isinstance(reply, tuple):
            return reply
        status, headers, body = reply
        text = body.decode() if isinstance(body, bytes) else str(body)
        element = "<EventBridgeConfiguration></EventBridgeConfiguration>"
        if text.rstrip().endswith("/>"):  # no other configuration: <NotificationConfiguration .../>
            text = text.rstrip()[:-2] + ">" + element + "</NotificationConfiguration>"
        else:
            text = text.replace("</NotificationConfiguration>", element + "</NotificationConfiguration>")
        return status, headers, text

    S3Response.get_bucket_notification = get_bucket_notification  # type: ignore[method-assign]


def _serialise(owner: type, names: tuple[str, ...], lock: Any) -> None:
    """``owner``'s methods ``names`` run one at a time under ``lock``."""
    import functools

    for name in names:
        method = getattr(owner, name)

        @functools.wraps(method)
        def locked(*args: Any, _method: Any = method, **kwargs: Any) -> Any:
            with lock:
                return _method(*args, **kwargs)

        setattr(owner, name, locked)


def _part_checksums_listed() -> None:
    from moto.s3.models import FakeMultipart
    from moto.s3.responses import S3Response

    set_part = FakeMultipart.set_part

    def set_part_hashed(self: FakeMultipart, part_id: int, value: bytes) -> Any:
        # as S3 does, the part's checksum is taken when the part arrives (beside the other
        # parts' transfers: hashlib lets go of the interpreter lock), not at every listing
        key = set_part(self, part_id, value)
        if str(self.metadata.get("x-amz-checksum-algorithm", "")).upper() == "SHA256":
            key.listed_sha256 = base64.b64encode(hashlib.sha256(value).digest()).decode()  # type: ignore[attr-defined]
        return key

    FakeMultipart.set_part = set_part_hashed  # type: ignore[method-assign]
    original = S3Response.list_parts

    def list_parts(self: S3Response) -> Any:
        status, headers, body = original(self)
        with contextlib.suppress(Exception):  # (an answer moto refused stays as it was)
            multipart = self.backend.get_bucket(self.bucket_name).multiparts[self._get_param("uploadId")]
            if str(multipart.metadata.get("x-amz-checksum-algorithm", "")).upper() == "SHA256":
                text = body.decode() if isinstance(body, bytes) else str(body)

                def with_checksum(found: re.Match[str]) -> str:
                    part = multipart.parts[int(found.group(1))]
                    checksum = getattr(part, "listed_sha256", None)
                    if checksum is None:
                        checksum = base64.b64encode(hashlib.sha256(part.value).digest()).decode()
                    return f"{found.group(0)}<ChecksumSHA256>{checksum}</ChecksumSHA256>"

                text = re.sub(r"<PartNumber>(\d+)</PartNumber>", with_checksum, text)
                body = text.encode() if isinstance(body, bytes) else text
        return status, headers, body

    S3Response.list_parts = list_parts  # type: ignore[method-assign]


def _the_rest() -> None:
    import threading

    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend
    from moto.s3.responses import S3Response

    writes = threading.RLock()
    _serialise(DynamoDBBackend, ("put_item", "update_item", "delete_item", "transact_write_items"), writes)
    # a stream read never lands inside a transaction, which a refusal undoes with its records
    _serialise(DynamoDBStreamsBackend, ("get_records",), writes)

    post_original = S3Response._bucket_response_post

    def declared_sha256(self: S3Response) -> str | None:
        form = getattr(self, "form_data", None) or {}
        return next((str(v) for k, v in form.items() if k.lower() == "x-amz-checksum-sha256"), None)

    def bucket_response_post(self: S3Response, request: Any, bucket_name: str) -> Any:
        key_name = (getattr(self, "querystring", {}) or {}).get("key", [None])[0]
        declared = declared_sha256(self) if key_name else None
        if declared is not None:
            body = self.body if isinstance(self.body, bytes) else str(self.body or "").encode()
            if base64.b64encode(hashlib.sha256(body).digest()).decode() != declared:
                return 400, {"Content-Type": "application/xml"}, BAD_DIGEST
        reply = post_original(self, request, bucket_name)
        status = reply[0] if isinstance(reply, tuple) else 200
        if key_name and 200 <= int(status) < 300 and "tagging" not in self.querystring:
            with contextlib.suppress(Exception):
                key = self.backend.get_object(bucket_name, key_name.replace("${filename}", ""))
                if key is not None:
                    self.backend.tagger.delete_all_tags_for_resource(key.arn)
                    if declared is not None:  # S3 keeps the checksum it verified
                        key.checksum_algorithm, key.checksum_value = "SHA256", declared
                        key.checksum_type = "FULL_OBJECT"
        return reply

    S3Response._bucket_response_post = bucket_response_post  # type: ignore[method-assign]

    from moto.iam.access_control import PermissionResult
    from moto.s3.models import FakeBucket

    FakeBucket.get_permission = lambda self, action, resource: PermissionResult.NEUTRAL  # type: ignore[method-assign]


class _QueueMessages(list[Any]):
    """A queue's messages whose ``remove`` tolerates a message already gone (see below)."""

    def remove(self, message: Any) -> None:
        if message in self:
            super().remove(message)


def _sends_and_receives_without_counting() -> None:
    import functools
    import threading

    from moto.sqs.models import Queue, SQSBackend

    sending = threading.local()
    for name in (
        "approximate_number_of_messages",
        "approximate_number_of_messages_delayed",
        "approximate_number_of_messages_not_visible",
    ):
        counted = getattr(Queue, name).fget

        def count(self: Queue, _counted: Any = counted) -> int:
            # a send or a receive reads the queue's attributes for one setting, never these counts
            return 0 if getattr(sending, "active", False) else int(_counted(self))

        setattr(Queue, name, property(count))

    def uncounted(original: Any) -> Any:
        @functools.wraps(original)
        def call(self: SQSBackend, *args: Any, **kwargs: Any) -> Any:
            before = getattr(sending, "active", False)
            sending.active = True
            try:
                return original(self, *args, **kwargs)
            finally:
                sending.active = before

        return call

    SQSBackend.send_message = uncounted(SQSBackend.send_message)  # type: ignore[method-assign]
    SQSBackend.receive_message = uncounted(SQSBackend.receive_message)  # type: ignore[method-assign]


def _sqs_serialised() -> None:
    """Each SQS call that changes a queue is one step, as on SQS (see the module's docstring)."""
    import functools
    import threading
    import time

    from moto.sqs.models import SQSBackend

    changes = threading.RLock()
    names = (
        "send_message",
        "send_message_batch",
        "delete_message",
        "delete_message_batch",
        "change_message_visibility",
        "change_message_visibility_batch",
        "purge_queue",
    )
    _serialise(SQSBackend, names, changes)
    receive = SQSBackend.receive_message

    @functools.wraps(receive)
    def receive_message(
        self: SQSBackend,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> Any:
        deadline = time.monotonic() + wait_seconds_timeout
        while True:
            with changes:  # one look at the queue, no wait
                found = receive(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
            left = deadline - time.monotonic()
            if found or left <= 0:
                return found
            self.get_queue(queue_name).wait_for_messages(min(1.0, left))  # type: ignore[arg-type]

    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]


def _sqs_receive_races() -> None:
    """Two concurrent ReceiveMessage calls can both pick the same over-received message to move to
    the dead-letter queue; the second ``list.remove`` then raises and that call fails with a 500
    after marking its batch received, which then stays in flight for the whole visibility timeout
    (90 minutes on the ingest queue): messages no poller can see. SQS moves each message once."""
    from moto.sqs.models import Queue

    def get(self: Queue) -> Any:
        return self.__dict__["_messages"]

    def set_(self: Queue, messages: Any) -> None:
        self.__dict__["_messages"] = messages if isinstance(messages, _QueueMessages) else _QueueMessages(messages)

    Queue._messages = property(get, set_)  # type: ignore[assignment]


def _event_paths_compiled_once() -> None:
    import functools

    import jsonpath_ng.ext

    # moto's EventTemplateParser imports ``parse`` from this module on every call; a compiled
    # path is only read (``find``), so one may serve every thread
    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=256)(jsonpath_ng.ext.parse)
