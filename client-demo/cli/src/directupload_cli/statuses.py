"""The API's upload statuses (the Status enum of GET /openapi.json), as this CLI reads them. The API
does not say which are final, so the grouping lives here, once; a test checks it covers the enum."""

IN_PROGRESS = ("PENDING", "UPLOADED", "SCANNING")
PROCESSING_OUTCOMES = ("PROCESSED", "REJECTED", "FAILED")
# never processed (cancelled, expired), or deleted by its owner
CLOSED = ("CANCELLED", "EXPIRED", "DELETING", "DELETED")
FINAL = (*PROCESSING_OUTCOMES, *CLOSED)
