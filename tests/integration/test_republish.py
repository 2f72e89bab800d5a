"""`make republish`: after an EventBridge outage longer than the stream keeps changes, the events
of the records changed since a moment are sent again, as the PublishFunction builds them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from tests.integration.conftest import Api, delivered_events, png, upload
from tests.support.processing import process


def test_the_records_changed_since_the_moment_get_their_events_again_in_order(aws: Any, api: Api) -> None:
    from directupload import wiring
    from scripts.republish import Target, republish

    data = png()
    before = upload(api, data, "before.png", "image/png", "avatar")
    process(aws, before["key"], len(data))
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]
    since = datetime.now(UTC)
    kept = upload(api, data, "kept.png", "image/png", "avatar")
    process(aws, kept["key"], len(data))
    gone = upload(api, data, "gone.png", "image/png", "avatar")
    process(aws, gone["key"], len(data))
    assert api.call("DELETE", f"/uploads/{gone['uploadId']}")[1]["status"] == "DELETED"
    pending = upload(api, data, "pending.png", "image/png", "avatar")  # no outcome yet: owes nothing
    original = {(e["detail"]["uploadId"], e["detail-type"]): e["detail"] for e in delivered_events(aws)}

    target = Target(aws.resources.uploads_table, aws.env["EVENT_BUS_NAME"], aws.bucket)
    sent = republish(aws.dynamodb, wiring.publisher(), target, since)

    assert sent == [(kept["uploadId"], "Upload Processed"), (gone["uploadId"], "Upload Deleted")]
    again = delivered_events(aws)
    assert [(e["detail"]["uploadId"], e["detail-type"]) for e in again] == sent
    for event in again:  # the very events the PublishFunction sent
        assert event["detail"] == original[(event["detail"]["uploadId"], event["detail-type"])]
    assert pending["uploadId"] not in {upload_id for upload_id, _ in sent}
    # the same moment in another time zone is the same window
    elsewhere = since.astimezone(timezone(timedelta(hours=2)))
    assert republish(aws.dynamodb, wiring.publisher(), target, elsewhere) == sent
    delivered_events(aws)
    assert republish(aws.dynamodb, wiring.publisher(), target, since, since - timedelta(seconds=1)) == []
