"""directupload from the command line: upload a file through the API, straight to S3.

    directupload upload FILE --profile video
    directupload upload FILE --profile video --resume UPLOAD_ID
    directupload status UPLOAD_ID
    directupload download UPLOAD_ID [-o FILE] [--variant thumbnail]
    directupload list [--status PROCESSED] [--profile video] [--all]
    directupload delete UPLOAD_ID

Modules, by job: ``api`` (the HTTP API, problem+json as exceptions), ``profiles`` (what the API's
profiles accept, checked before any request), ``transfer`` (one POST, or parallel multipart parts
with retries and re-signing), ``state`` (what lets an interrupted upload resume), ``upload`` (issue,
transfer, complete, wait), ``download`` and ``listing`` (the read side), ``progress`` and ``output``
(what the user sees), ``errors`` (failures and their exit codes), ``cli`` (the command line).
"""

__version__ = "0.1.0"
