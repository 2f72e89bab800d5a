"""The ``directupload`` command line: arguments, the command to run, and its exit code.

The API is --api, else $DIRECTUPLOAD_API, else .local/stack.json (the local stack) or
client-demo/config.json (a deployed stack) in the current directory or a parent. A token (--token
or $DIRECTUPLOAD_TOKEN) goes as Authorization: Bearer; against the local stack with auth on, the
CLI signs in by itself as the demo page does.

Exit codes: 0 done (upload and status: processed), 1 still processing when --wait-timeout ran out,
2 usage (also: the download target exists), 3 the API (or S3) refused, or would refuse as its
profiles say (e.g. 404 unknown upload or variant, 409 not processed yet or deleted, 413/415 a file
its profile does not take), 4 network, 5 processing REJECTED or FAILED (or the upload was
CANCELLED, EXPIRED or deleted), 6 the downloaded bytes are not the ones the API announced (nothing
is saved), 130 interrupted (the message says how to resume an upload).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
from pathlib import Path
from typing import NoReturn

from rich.markup import escape

from directupload_cli import __version__
from directupload_cli.api import Api, discover_api, local_token
from directupload_cli.download import download
from directupload_cli.errors import EXIT_INTERRUPTED, CliError, InterruptError, UsageError
from directupload_cli.listing import list_uploads
from directupload_cli.output import console, printable, program, report, report_deleted, report_download, report_list
from directupload_cli.state import StateFile, state_dir
from directupload_cli.transfer import RateLimit, Transfer
from directupload_cli.upload import Options, resume_command, upload


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def rate(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKmMgG]?)i?[bB]?", text.strip())
    if not match:
        raise argparse.ArgumentTypeError("a rate like 500K, 20M (bytes per second)")
    return float(match.group(1)) * float(1024 ** " kmg".index(match.group(2).lower() or " "))


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--api", help="API base URL (default: $DIRECTUPLOAD_API, .local/stack.json, client-demo/config.json)"
    )
    common.add_argument(
        "--token", default=os.environ.get("DIRECTUPLOAD_TOKEN"), help="bearer token (default: $DIRECTUPLOAD_TOKEN)"
    )
    common.add_argument(
        "--json", dest="as_json", action="store_true", help="print the result as JSON (an upload's: its record)"
    )
    again = program()
    main = argparse.ArgumentParser(
        # the usage line names the command (as argparse does); the resume hints, the runnable path
        prog=" ".join(again) if len(again) > 1 else Path(again[0]).name,
        description="Upload and fetch files through the directupload API.",
        epilog="exit codes: 0 done, 1 still processing, 2 usage, 3 refused, 4 network, "
        "5 rejected/failed/cancelled, 6 downloaded bytes not verified, 130 interrupted",
    )
    main.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = main.add_subparsers(dest="command", required=True)

    up = commands.add_parser("upload", parents=[common], help="upload a file, wait for processing, print the outcome")
    up.add_argument("file", type=Path)
    up.add_argument("--profile", "-p", help="upload profile (required unless --resume)")
    up.add_argument("--content-type", help="default: guessed from the file name")
    up.add_argument("--concurrency", "-c", type=positive_int, default=4, help="parts in flight (default 4)")
    up.add_argument("--retries", type=int, default=5, help="attempts per part after the first (default 5)")
    up.add_argument("--resume", metavar="UPLOAD_ID", help="continue an interrupted multipart upload")
    up.add_argument("--checksum", action="store_true", help="send the file's SHA-256 for the server to verify")
    up.add_argument("--limit-rate", type=rate, help="at most this many bytes per second, e.g. 20M")
    up.add_argument("--no-wait", dest="wait", action="store_false", help="do not wait for processing")
    up.add_argument("--wait-timeout", type=float, default=600, help="seconds to wait for processing (default 600)")
    up.add_argument(
        "--state-dir",
        help="where interrupted uploads are remembered "
        "(default: $DIRECTUPLOAD_STATE_DIR or ~/.local/state/directupload)",
    )
    up.add_argument("--quiet", "-q", action="store_true", help="no progress output")

    status = commands.add_parser("status", parents=[common], help="print an upload's record")
    status.add_argument("upload_id")

    down = commands.add_parser(
        "download", parents=[common], help="save a processed upload's file (or a variant), verified"
    )
    down.add_argument("upload_id")
    down.add_argument(
        "--output", "-o", type=Path, help="the file to write, or a directory for it (default: the served name, here)"
    )
    down.add_argument("--variant", help="a derived file instead of the original, e.g. thumbnail")
    down.add_argument("--force", "-f", action="store_true", help="overwrite an existing file")
    down.add_argument("--quiet", "-q", action="store_true", help="no progress output")

    listing = commands.add_parser("list", parents=[common], help="list your uploads, newest first")
    listing.add_argument("--status", type=str.upper, help="only uploads in this status, e.g. PROCESSED")
    listing.add_argument("--profile", "-p", help="only uploads of this profile")
    listing.add_argument("--limit", type=positive_int, help="uploads per page (default and maximum: the API's)")
    listing.add_argument("--cursor", help="start from a page's nextCursor")
    listing.add_argument("--all", dest="follow", action="store_true", help="follow nextCursor to the last page")

    delete = commands.add_parser(
        "delete", parents=[common], help="cancel a pending upload, or delete a finished one with its files"
    )
    delete.add_argument("upload_id")
    return main


def _raise_interrupt(*_: object) -> NoReturn:
    raise InterruptError()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    options: Options | None = None
    try:
        base_url = discover_api(args.api)
        api = Api(base_url, args.token or local_token(base_url))
        if args.command == "status":
            return report(api.get(args.upload_id), args.as_json)
        if args.command == "download":
            output = args.output.expanduser() if args.output else None
            saved = download(
                api, args.upload_id, variant=args.variant, output=output, force=args.force, quiet=args.quiet
            )
            return report_download(saved, args.as_json)
        if args.command == "list":
            listing = list_uploads(
                api, status=args.status, profile=args.profile, limit=args.limit, cursor=args.cursor, follow=args.follow
            )
            return report_list(listing, args.as_json)
        if args.command == "delete":
            return report_deleted(api.delete(args.upload_id), args.as_json)
        file = args.file.expanduser().resolve()
        if not file.is_file():
            raise UsageError(f"{args.file}: no such file")
        if file.stat().st_size == 0:
            raise UsageError(f"{args.file} is empty")
        profile = args.profile

        def resume_hint(upload_id: str) -> str:
            return resume_command(file, profile, base_url, upload_id)

        options = Options(
            transfer=Transfer(
                api=api,
                file=file,
                concurrency=args.concurrency,
                retries=max(0, args.retries),
                quiet=args.quiet,
                limit=RateLimit(args.limit_rate),
                resume_hint=resume_hint,
            ),
            profile=profile,
            content_type=args.content_type,
            resume=args.resume,
            checksum=args.checksum,
            wait=args.wait,
            wait_timeout=args.wait_timeout,
            states=StateFile(state_dir(args.state_dir)),
        )
        return report(upload(options), args.as_json)
    except (InterruptError, KeyboardInterrupt):
        if options is not None:
            options.transfer.stop.set()
            if options.current:
                console.print(f"\ninterrupted; resume with:\n  {options.transfer.resume_hint(options.current)}")
                return EXIT_INTERRUPTED
        console.print("\ninterrupted")
        return EXIT_INTERRUPTED
    except CliError as error:
        console.print(f"[red]error:[/] {escape(printable(error.message))}")
        if error.hint:
            console.print(f"  {escape(printable(error.hint))}")
        return error.exit_code
