"""Profiles: the digests a run makes (DIGEST_PROFILES, a TOML file), each a reader's scope.

Example input (README "Profiles")::

    [[profile]]
    name = "vision"
    title = "Computer Vision"
    categories = ["cs.CV"]
    include = ["diffusion", "video generation"]
    exclude = ["survey"]
    authors = ["Kaiming He"]
    interest = "generative models for images and video"
    library = "zotero.bib"
    top_n = 10
    language = "en"
    notify = ["VISION_APPRISE_URL"]

Every key but `name` is optional: a missing one takes the DIGEST_* setting it stands for
(title: DIGEST_TOPIC). Without DIGEST_PROFILES there is one profile, `default`, made of the
settings. A bad file is one ConfigError line naming the file, the line (where it can be found)
and the key, raised by the preflight before anything runs.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from arxiv_digest.categories import check_categories
from arxiv_digest.errors import ConfigError
from arxiv_digest.settings import Settings, digest_config_hash, secret_variables
from tasks.models import Paper

DEFAULT_PROFILE = "default"
_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PROFILE_HEADER = re.compile(r"^\s*\[\[\s*profile\s*\]\]")
_TABLE_HEADER = re.compile(r"^\s*\[")


@dataclass(frozen=True)
class Profile:
    """One reader's digest: its scope, what it follows and how much of it to show."""

    name: str
    title: str
    categories: tuple[str, ...]
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    interest: str = ""
    library: Path | None = None
    top_n: int = 10
    language: str = "zh"
    notify: tuple[str, ...] = ()  # names of environment variables, never their values

    @property
    def uses_features(self) -> bool:
        """Whether ranking goes beyond the generic score (and digests show each paper's why)."""
        return bool(self.include or self.exclude or self.authors or self.library)


class _ProfileTable(BaseModel):
    """One [[profile]] table as written: unknown keys and wrong types are errors."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    title: str | None = Field(None, min_length=1)
    categories: list[str] | None = None
    include: list[str] = []
    exclude: list[str] = []
    authors: list[str] = []
    interest: str | None = None
    library: str | None = Field(None, min_length=1)
    top_n: int | None = Field(None, ge=0)
    language: Literal["zh", "en"] | None = None
    notify: list[str] = []

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.fullmatch(value):
            raise ValueError(
                "not a slug: lowercase letters, digits, '-' or '_', starting with a letter or "
                "digit, at most 64 characters (it names the profile's output folder)"
            )
        return value

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        return check_categories(value)

    @field_validator("include", "exclude", "authors")
    @classmethod
    def _phrases(cls, value: list[str]) -> list[str]:
        stripped = [" ".join(v.split()) for v in value]
        if not all(stripped):
            raise ValueError("an empty entry")
        return stripped

    @field_validator("notify")
    @classmethod
    def _variable_names(cls, value: list[str]) -> list[str]:
        bad = [i for i, v in enumerate(value) if not _VARIABLE.fullmatch(v)]
        if bad:
            # The entry itself is not shown: it may well be a URL with a token in it.
            raise ValueError(
                f"entry {bad[0] + 1} is not an environment variable name: `notify` lists the "
                "names of variables holding Apprise URLs, never the URLs themselves"
            )
        return value


def default_profile(settings: Settings) -> Profile:
    """The one profile of a run without DIGEST_PROFILES: the settings as they are."""
    return Profile(
        name=DEFAULT_PROFILE,
        title=settings.topic,
        categories=tuple(settings.categories),
        interest=settings.interest,
        top_n=settings.top_n,
        language=settings.language,
    )


def load_profiles(settings: Settings) -> tuple[Profile, ...]:
    """The run's profiles: DIGEST_PROFILES's tables in file order, or the default profile."""
    if settings.profiles is None:
        return (default_profile(settings),)
    path = Path(settings.profiles).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"DIGEST_PROFILES={settings.profiles!r} cannot be read: {_reason(exc)}"
        ) from None
    return parse_profiles(text, path, settings)


def parse_profiles(text: str, path: Path, settings: Settings) -> tuple[Profile, ...]:
    """The profiles a TOML text declares (`path` names it in errors and anchors libraries)."""
    where = f"DIGEST_PROFILES={str(path)!r}"
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line L, column C)".
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    unknown = sorted(set(document) - {"profile"})
    if unknown:
        raise ConfigError(
            f"{where}: unknown top-level key {unknown[0]!r}: the file holds [[profile]] tables only"
        )
    tables = document.get("profile")
    if not isinstance(tables, list) or not tables:
        raise ConfigError(f"{where}: no [[profile]] table: declare at least one")
    profiles: list[Profile] = []
    seen: dict[str, int] = {}
    for index, table in enumerate(tables):
        profile = _profile(table, index, text, where, path, settings)
        if profile.name in seen:
            line = _line(text, index, "name")
            raise ConfigError(
                f"{where}:{line} key 'name': profile name {profile.name!r} is declared twice "
                f"(profiles {seen[profile.name] + 1} and {index + 1}): names must be unique"
            )
        seen[profile.name] = index
        profiles.append(profile)
    return tuple(profiles)


def _profile(
    table: Any, index: int, text: str, where: str, path: Path, settings: Settings
) -> Profile:
    label = f"[[profile]] number {index + 1}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: {label} is not a table")
    if isinstance(table.get("name"), str):
        label = f"[[profile]] {table['name']!r}"
    try:
        spec = _ProfileTable.model_validate(table)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, index, text, f"{where}:", label)) from None
    library = None
    if spec.library is not None:
        library = (path.parent / Path(spec.library).expanduser()).resolve()
        if not library.is_file():
            line = _line(text, index, "library")
            problem = "is not a file" if library.exists() else "does not exist"
            raise ConfigError(
                f"{where}:{line} {label}, key 'library': {spec.library!r} ({library}) {problem}"
            )
    return Profile(
        name=spec.name,
        title=spec.title if spec.title is not None else settings.topic,
        categories=tuple(spec.categories or settings.categories),
        include=tuple(spec.include),
        exclude=tuple(spec.exclude),
        authors=tuple(spec.authors),
        interest=spec.interest if spec.interest is not None else settings.interest,
        library=library,
        top_n=spec.top_n if spec.top_n is not None else settings.top_n,
        language=spec.language or settings.language,
        notify=tuple(spec.notify),
    )


def _describe(exc: ValidationError, index: int, text: str, where: str, label: str) -> str:
    """The first problem of a [[profile]] table as one line: file, line, table, key."""
    error = exc.errors()[0]
    key = str(error["loc"][0]) if error["loc"] else None
    line = _line(text, index, key if error["type"] != "missing" else None)
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = f"unknown key (known: {', '.join(_ProfileTable.model_fields)})"
    elif error["type"] == "missing":
        message = "missing (every profile needs one)"
    elif key != "notify" and isinstance(error.get("input"), str | int | float):
        message = f"{message} (got {repr(error['input'])[:80]})"
    return f"{where}{line} {label}, key {key!r}: {message}"


def _line(text: str, index: int, key: str | None) -> str:
    """' line N:' for a key of the index-th [[profile]] table (its header line when the key is
    not written there), or '' when the table is not written as a [[profile]] header."""
    lines = text.splitlines()
    headers = [i for i, line in enumerate(lines) if _PROFILE_HEADER.match(line)]
    if index >= len(headers):
        return ""
    start = headers[index]
    end = next(
        (i for i in range(start + 1, len(lines)) if _TABLE_HEADER.match(lines[i])), len(lines)
    )
    if key is not None:
        quoted = "|".join(re.escape(k) for k in (key, f'"{key}"', f"'{key}'"))
        pattern = re.compile(rf"^\s*(?:{quoted})\s*=")
        for i in range(start + 1, end):
            if pattern.match(lines[i]):
                return f" line {i + 1}:"
    return f" line {start + 1}:"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, IsADirectoryError):
        return "it is a directory"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return exc.strerror or type(exc).__name__ if isinstance(exc, OSError) else str(exc)


def profile_settings(settings: Settings, profile: Profile) -> Settings:
    """The settings a profile's digest is made with: its title, scope, interest, size and
    language in place of DIGEST_TOPIC, CATEGORIES, INTEREST, TOP_N and LANGUAGE."""
    return settings.model_copy(
        update={
            "topic": profile.title,
            "categories": list(profile.categories),
            "interest": profile.interest,
            "top_n": profile.top_n,
            "language": profile.language,
        }
    )


def fetch_settings(settings: Settings, profiles: Sequence[Profile]) -> Settings:
    """The settings of a day's one fetch: the union of the profiles' categories (in order of
    first mention); the settings themselves for the default profile."""
    union = list(dict.fromkeys(c for p in profiles for c in p.categories))
    if union == settings.categories:
        return settings
    return settings.model_copy(update={"categories": union})


def in_scope(paper: Paper, profile: Profile) -> bool:
    """Whether a paper of the day's fetch is in one of the profile's categories."""
    return not set(paper.categories).isdisjoint(profile.categories)


def output_dir(settings: Settings, profile: str) -> Path:
    """Where a profile's digests and index go: DIGEST_OUTPUT_DIR itself without
    DIGEST_PROFILES (today's paths), else its folder DIGEST_OUTPUT_DIR/<name>/."""
    base = Path(settings.output_dir)
    return base if settings.profiles is None and profile == DEFAULT_PROFILE else base / profile


def artifact_key(profile: str, day: str) -> str:
    """The Prefect artifact key of a profile's digest (keys allow lowercase, digits, dashes)."""
    name = "" if profile == DEFAULT_PROFILE else f"{profile.replace('_', '-')}-"
    return f"digest-{name}{day}"


def profile_fingerprint(settings: Settings, profile: Profile) -> str:
    """A hash of what a profile adds to its digest beyond its settings (its keywords, authors,
    library file, the library settings, and DIGEST_TOPIC, which the shared analyses are
    written for); empty without DIGEST_PROFILES, so the digests' config hash stays what it
    was."""
    if settings.profiles is None:
        return ""
    relevant: dict[str, object] = {
        "name": profile.name,
        "include": profile.include,
        "exclude": profile.exclude,
        "authors": profile.authors,
        "analysis_topic": settings.topic,
    }
    if profile.library is not None:
        relevant["library"] = hashlib.sha256(profile.library.read_bytes()).hexdigest()
        relevant["weight"] = settings.library_weight
        relevant["recent_days"] = settings.library_recent_days
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def profile_config_hash(settings: Settings, profile: Profile, prompts: str) -> str:
    """The config hash of a profile's digest (a day finished under it is done for it)."""
    return digest_config_hash(
        profile_settings(settings, profile), prompts, profile_fingerprint(settings, profile)
    )


def check_notify_variables(profiles: tuple[Profile, ...]) -> None:
    """Every variable a profile's `notify` names is set (its value is not read further here)."""
    for profile in profiles:
        values = secret_variables(profile.notify)
        unset = [name for name, value in values.items() if value is None]
        if unset:
            raise ConfigError(
                f"profile {profile.name!r}: notify names {unset[0]}, which is not set (it "
                "should hold an Apprise URL)"
            )
