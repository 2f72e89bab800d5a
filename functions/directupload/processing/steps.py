"""The step interface and registry.

Verification (verify.py) is not a step: it runs first for every profile, and what it checked
(size, SHA-256, sniffed type) is what each step is handed. Profiles list it first by its name,
``VERIFY``, so a profile reads as what happens to its files; nothing looks it up here.

A step is a small function: it gets the verified object (its record, its SHA-256, the
sniffed type and, when the step asks for it, a seekable copy of its bytes) and returns a
``StepResult``: fields merged into the record's ``result``, and derived objects that the
pipeline writes under ``derived/{uploadId}/``. Steps never touch S3 or DynamoDB
themselves, so each one is tested with bytes alone.

A step raises ``Rejected`` for a file that can never be accepted (permanent: the upload
ends REJECTED at once) and anything else for a failure worth retrying.

Adding a step: a module in this package with a ``run(obj) -> StepResult`` function, and its
entry in ``STEPS`` (profiles validate their step lists against its names at cold start).
docs/processing.md ("Adding a step") walks through an example.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import IO, Any

from directupload import keys
from directupload.errors import Rejected
from directupload.models import UploadRecord

# What a profile lists verification by (steps: ["verify", ...]): it always runs, before the steps.
VERIFY = "verify"
THUMBNAIL_NAME = "thumbnail.webp"  # the image step's derived object
VARIANT_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"
VARIANT_NAME = re.compile(VARIANT_PATTERN[1:-1])


@dataclass
class VerifiedObject:
    """An uploaded object whose size, type and checksum verification (verify.py) has checked."""

    record: UploadRecord
    bucket: str
    key: str
    size: int
    sha256: str
    sniffed_type: str | None
    etag: str
    body: IO[bytes] | None = None  # set when a step of the profile needs the bytes

    @property
    def upload_id(self) -> str:
        return self.record.upload_id

    def read(self) -> IO[bytes]:
        """The object's bytes, rewound. Only for steps registered with ``needs_body=True``."""
        if self.body is None:
            raise RuntimeError("this step did not declare needs_body")
        self.body.seek(0)
        return self.body

    def derived_key(self, name: str) -> str:
        """Where the pipeline stores a derived object called ``name``."""
        return keys.derived_key(self.upload_id, name)


@dataclass(frozen=True)
class Derived:
    """An object a step made from the upload (a thumbnail, a text extract)."""

    name: str  # a file name: stored as derived/{uploadId}/{name}
    data: bytes
    content_type: str
    # what clients ask for it by (GET /uploads/{id}/download?variant=...); the name's stem by default
    variant: str = ""

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name in (".", ".."):
            raise ValueError(f"derived object name {self.name!r} must be a plain file name")
        if not self.variant:
            object.__setattr__(self, "variant", self.name.split(".", 1)[0])
        if not VARIANT_NAME.fullmatch(self.variant):
            raise ValueError(f"variant name {self.variant!r} must match {VARIANT_NAME.pattern}")


@dataclass
class StepResult:
    fields: dict[str, Any] = field(default_factory=dict)
    derived: list[Derived] = field(default_factory=list)


StepFunction = Callable[[VerifiedObject], StepResult]


@dataclass(frozen=True)
class Step:
    name: str
    run: StepFunction
    needs_body: bool = False  # the pipeline keeps a copy of the bytes (memory, then /tmp) for it
    derives: tuple[str, ...] = ()  # the names of the derived objects it may store


@dataclass(frozen=True)
class StepSpec:
    """A registered step before its code is loaded: the module in this package whose ``run`` it
    is (imported by ``registry()`` only, so validating profiles or deleting an upload never loads
    Pillow or pypdf), and what the pipeline must know of it beforehand."""

    module: str
    needs_body: bool = False
    derives: tuple[str, ...] = ()


# The step registry: every step a profile may name after ``VERIFY``, and nothing else does.
STEPS: Mapping[str, StepSpec] = MappingProxyType(
    {
        "image": StepSpec("image", needs_body=True, derives=(THUMBNAIL_NAME,)),
        "pdf": StepSpec("pdf", needs_body=True),
    }
)


def run_step(step: Step, obj: VerifiedObject) -> StepResult:
    """Run one step on hostile bytes. Steps never call AWS, so whatever a parser raises is a
    property of the file: a rejection (``corrupt-{step}``), never a retry, a FAILED upload and
    a page to an operator. Only the exception's type is said; its text stays out of records."""
    try:
        return step.run(obj)
    except Rejected:
        raise
    except MemoryError as exc:
        raise Rejected("too-complex", f"the file needs more memory than {step.name} may use") from exc
    except Exception as exc:  # hostile bytes make a parser raise anything at all
        raise Rejected(f"corrupt-{step.name}", f"the file cannot be read ({type(exc).__name__})") from exc


def derived_names() -> frozenset[str]:
    """Every derived object name any step may store (deletion removes them all)."""
    return frozenset(name for spec in STEPS.values() for name in spec.derives)


def registry() -> dict[str, Step]:
    """Every registered step by name, its code loaded (the ProcessFunction, once per container)."""
    return {
        name: Step(
            name,
            importlib.import_module(f"directupload.processing.{spec.module}").run,
            needs_body=spec.needs_body,
            derives=spec.derives,
        )
        for name, spec in STEPS.items()
    }
