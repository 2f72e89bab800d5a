"""The client baseline: ``python bench/upload_worker.py ENDPOINT BUCKET KEY FILE PART_SIZE CONCURRENCY``.

boto3's ``upload_file`` (s3transfer's TransferManager) sending FILE multipart, in parts of
PART_SIZE with CONCURRENCY threads, to the emulator. Credentials and region from the environment.
"""

import sys

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

if __name__ == "__main__":
    endpoint, bucket, key, path, part_size, concurrency = sys.argv[1:7]
    s3 = boto3.session.Session().client("s3", endpoint_url=endpoint, config=Config(signature_version="s3v4"))
    part = int(part_size)
    s3.upload_file(
        path,
        bucket,
        key,
        Config=TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=int(concurrency)),
    )
