"""The client baseline: ``python bench/upload_worker.py ENDPOINT BUCKET KEY FILE PART_SIZE CONCURRENCY [CHECKSUM]``.

boto3's ``upload_file`` (s3transfer's TransferManager) sending FILE multipart, in parts of
PART_SIZE with CONCURRENCY threads, to the emulator. Credentials and region from the environment.
botocore already sends each part with a CRC32 (a trailer, computed as the part is streamed);
CHECKSUM (e.g. SHA256) is the ``ChecksumAlgorithm`` it uses instead.
"""

import sys

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

if __name__ == "__main__":
    endpoint, bucket, key, path, part_size, concurrency = sys.argv[1:7]
    extra = {"ChecksumAlgorithm": sys.argv[7]} if len(sys.argv) > 7 else None
    s3 = boto3.session.Session().client("s3", endpoint_url=endpoint, config=Config(signature_version="s3v4"))
    part = int(part_size)
    s3.upload_file(
        path,
        bucket,
        key,
        ExtraArgs=extra,
        Config=TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=int(concurrency)),
    )
