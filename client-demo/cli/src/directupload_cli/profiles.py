"""What the API's profiles accept, learned from its ``GET /profiles`` (public) and checked before
any request: a file the API would refuse is refused here, with the same exit code, before a byte
or a quota reservation is spent. The limits are never copied into the CLI, and these checks never
replace the server's: whatever passes here, the server checks again, and its problem+json reaches
the user as before."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from directupload_cli.api import Api
from directupload_cli.errors import RefusedError
from directupload_cli.output import human

CHECKED_BEFORE_SENDING = "refused before sending anything: "


@dataclass(frozen=True)
class Profile:
    """One entry of GET /profiles, the fields this CLI checks."""

    name: str
    content_types: tuple[str, ...]
    min_size: int
    max_size: int

    @classmethod
    def from_wire(cls, entry: dict[str, Any]) -> Profile:
        return cls(
            name=str(entry["name"]),
            content_types=tuple(str(t) for t in entry["contentTypes"]),
            min_size=int(entry.get("minSize", 1)),
            max_size=int(entry["maxSize"]),
        )

    def takes(self, content_type: str) -> bool:
        """As the server matches: case-insensitive type, ``*`` wildcards in the profile's patterns."""
        return any(fnmatch.fnmatchcase(content_type.lower(), pattern) for pattern in self.content_types)


def fetch_profiles(api: Api) -> dict[str, Profile] | None:
    """The API's profiles by name; None when it does not say (an API without the route, or an
    answer this CLI cannot read): then only the server checks."""
    try:
        answer = api.profiles()
    except RefusedError:
        return None
    try:
        return {profile.name: profile for profile in map(Profile.from_wire, answer["profiles"])}
    except (KeyError, TypeError, ValueError):
        return None


def check_upload(profiles: dict[str, Profile] | None, name: str, content_type: str, size: int) -> None:
    """Refuse, as the API would, an unknown profile, a type the profile does not take, a size
    outside its range (RefusedError, exit 3, the same as the server's refusal)."""
    if profiles is None:
        return
    profile = profiles.get(name)
    if profile is None:
        raise RefusedError(
            f"{CHECKED_BEFORE_SENDING}the API has no profile named {name!r}",
            hint="its profiles: " + (", ".join(sorted(profiles)) or "none"),
        )
    if not profile.takes(content_type):
        raise RefusedError(
            f"{CHECKED_BEFORE_SENDING}profile {name!r} does not take {content_type}",
            hint=f"it takes {', '.join(profile.content_types)}; --content-type declares the file's type",
        )
    if size > profile.max_size:
        raise RefusedError(
            f"{CHECKED_BEFORE_SENDING}{size} bytes ({human(size)}) is over the {name!r} limit of "
            f"{profile.max_size} bytes ({human(profile.max_size)})"
        )
    if size < profile.min_size:
        raise RefusedError(
            f"{CHECKED_BEFORE_SENDING}{size} bytes is under the {name!r} minimum of {profile.min_size} bytes"
        )
