"""The one settings object: env prefix DIGEST_, `.env` supported, read once at a flow's start."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from arxiv_digest.categories import check_categories
from arxiv_digest.errors import ConfigError
from arxiv_digest.local_llm import LITELLM_MODEL as LOCAL_LITELLM_MODEL

DEFAULT_ARXIV_API_URL = "https://export.arxiv.org/api/query"
# DIGEST_ fields whose values a settings error never shows.
SECRET_FIELDS = frozenset({"notify_urls"})


class Settings(BaseSettings):
    """Everything configurable. Provider keys and AWS credentials keep their standard names."""

    model_config = SettingsConfigDict(
        env_prefix="DIGEST_", env_file=".env", extra="ignore", populate_by_name=True
    )

    lake_url: str = "./data/lake"
    duckdb_path: str = "./data/digest.duckdb"
    arxiv_api_url: str = DEFAULT_ARXIV_API_URL
    arxiv_delay_s: float = Field(3.0, ge=0)
    arxiv_backoff_s: float = Field(2.0, ge=0)
    arxiv_page_size: int = Field(200, ge=1, le=2000)
    arxiv_retries: int = Field(4, ge=0)
    arxiv_timeout_s: float = Field(30.0, gt=0)
    categories: Annotated[list[str], NoDecode] = ["cs.CV"]
    topic: str = "Computer Vision"
    interest: str = ""
    top_n: int = Field(10, ge=0)
    # Abstract characters shown per paper when ranking (0: titles only, for small local models).
    rank_abstract_chars: int = Field(600, ge=0)
    # "llm": the model scores relevance; "heuristic": the documented offline score only (for
    # models too small to rank, like the demo's local one).
    rank_with: Literal["llm", "heuristic"] = "llm"
    language: Literal["zh", "en"] = "zh"
    llm_model: str = "openai/local-model"
    llm_api_base: str | None = None
    llm_concurrency: int = Field(4, ge=1)
    llm_rpm: int = Field(0, ge=0)
    llm_timeout_s: float = Field(120.0, gt=0)
    llm_backoff_s: float = Field(1.0, ge=0)
    lookback_days: int = Field(3, ge=0, le=30)
    output_dir: str = "./output"
    fulltext: bool = True
    # A day's lease on an S3 lake expires this long after its holder's last heartbeat (renewed
    # every third of it): a crashed run blocks its day for at most this long.
    lease_ttl_s: float = Field(60.0, gt=0)

    # The OpenAI-compatible key, only needed with DIGEST_LLM_API_BASE (other providers' keys are
    # read by litellm from their own standard variables).
    openai_api_key: SecretStr | None = Field(None, validation_alias="OPENAI_API_KEY")

    # Standard AWS variables (no DIGEST_ prefix): used only when the lake is on S3.
    aws_access_key_id: str | None = Field(None, validation_alias="AWS_ACCESS_KEY_ID")
    aws_secret_access_key: SecretStr | None = Field(None, validation_alias="AWS_SECRET_ACCESS_KEY")
    aws_session_token: SecretStr | None = Field(None, validation_alias="AWS_SESSION_TOKEN")
    aws_endpoint_url: str | None = Field(
        None, validation_alias=AliasChoices("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
    )
    aws_region: str = Field(
        "us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )

    # Notifications (tasks/notify.py): Apprise URLs (mailto://, slack://, tgram://, ...),
    # whitespace or comma separated. They hold tokens: secret, never logged nor stored (a
    # channel is known by a hash of its URL), never shown in a settings error.
    notify_urls: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)

    @field_validator("notify_urls", mode="before")
    @classmethod
    def _split_notify_urls(cls, value: object) -> object:
        return split_notify_urls(value) if isinstance(value, str) else value

    # Profiles (README "Profiles"): DIGEST_PROFILES names a TOML file of [[profile]] tables;
    # without it there is one profile, `default`, made of the settings above. LIBRARY_WEIGHT is
    # the library's share of a profile's relevance (the rest is the LLM's score, or the
    # heuristic's); LIBRARY_RECENT_DAYS how many days of the lake's papers (up to the digest
    # day) the library is told apart from.
    profiles: str | None = None
    library_weight: float = Field(0.7, ge=0, le=1)
    library_recent_days: int = Field(30, ge=1, le=365)

    @field_validator("profiles")
    @classmethod
    def _profiles_path(cls, value: str | None) -> str | None:
        # An empty variable means "no profiles file": the one default profile.
        return (value or "").strip() or None

    # -- Small local models (issue 17) --
    # The analysis template: "full" (the reference's sections, from the full text or abstract),
    # "compact" (four one-sentence fields from the abstract and one short example, for small
    # local models), or "auto": compact exactly when DIGEST_LLM_MODEL names the packaged local
    # model (openai/local-model, the default and the demo's), full otherwise.
    analysis_template_style: Literal["auto", "compact", "full"] = "auto"

    @property
    def analysis_style(self) -> Literal["compact", "full"]:
        """The analysis template style in effect (`auto` resolved)."""
        if self.analysis_template_style != "auto":
            return self.analysis_template_style
        return "compact" if self.llm_model == LOCAL_LITELLM_MODEL else "full"

    # -- The readers' side: the static site and the Atom feed (tasks/publish.py) ----------------
    # Where DIGEST_OUTPUT_DIR/site/ is uploaded after each publish (s3://bucket/prefix; empty:
    # nowhere), and the public address it is served at (the feed's and messages' links).
    site_url: str = ""
    site_base_url: str = ""

    @field_validator("categories", mode="before")
    @classmethod
    def _split_categories(cls, value: object) -> object:
        # Env values arrive as "cs.CV,cs.LG"; lists pass through.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        return check_categories(value)

    @field_validator("arxiv_api_url")
    @classmethod
    def _arxiv_url(cls, value: str) -> str:
        return _require_http_url(value)

    @field_validator("llm_api_base")
    @classmethod
    def _llm_url(cls, value: str | None) -> str | None:
        # An empty variable means "not set" (the provider's own endpoint).
        return _require_http_url(value) if value else None

    @field_validator("lake_url")
    @classmethod
    def _lake_location(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("empty: give a local path or s3://bucket/prefix")
        if value.startswith("s3://"):
            if not value.removeprefix("s3://").split("/", 1)[0]:
                raise ValueError("names no bucket: use s3://bucket or s3://bucket/prefix")
        elif "://" in value:
            scheme = value.split("://", 1)[0]
            raise ValueError(f"{scheme}:// is not supported: give a local path or s3://bucket")
        return value

    @property
    def lake_on_s3(self) -> bool:
        return self.lake_url.startswith("s3://")

    def ingest_config_hash(self) -> str:
        """Hash of the settings that decide which papers a day holds (not secrets, not paths)."""
        relevant = {"categories": sorted(self.categories)}
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def digest_config_hash(settings: Settings, prompts_fingerprint: str, profile: str = "") -> str:
    """Everything that decides a rendered digest: a day finished under the same hash is done.

    `profile` fingerprints a profiles file and its library (tasks/profiles.py); without
    DIGEST_PROFILES it is empty and the hash is the one digests had before profiles existed.
    """
    relevant = {
        "ingest": settings.ingest_config_hash(),
        "topic": settings.topic,
        "interest": settings.interest,
        "top_n": settings.top_n,
        "language": settings.language,
        "rank_with": settings.rank_with,
        "model": settings.llm_model,
        "fulltext": settings.fulltext,
        "prompts": prompts_fingerprint,
        "analysis_style": settings.analysis_style,
    }
    if profile:
        relevant["profile"] = profile
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


# A new URL starts where a separator is followed by `scheme://` (as Apprise splits its own URL
# lists): a comma inside a URL (`?to=a@x.org,b@x.org`) stays in it.
_NEXT_URL = re.compile(r"[\s,]+(?=[A-Za-z][A-Za-z0-9+.-]*://)")


def split_notify_urls(text: str) -> list[str]:
    """`"mailto://a json://b, slack://c"` -> the three URLs (text before the first URL is kept
    as an entry of its own, so the preflight can reject it)."""
    return [part.strip(" \t\r\n,") for part in _NEXT_URL.split(text.strip()) if part.strip(" ,")]


def _require_http_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL with a host, e.g. https://host/path")
    return value.strip()


def env_name(field: str) -> str:
    """The variable a user sets for a field: `top_n` -> DIGEST_TOP_N, `aws_region` -> AWS_REGION.

    A name that is not a field (pydantic reports aliases as they were found) stays as it is.
    """
    info = Settings.model_fields.get(field)
    if info is None:
        return field
    alias = info.validation_alias
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return f"{Settings.model_config.get('env_prefix', '')}{field}".upper()


def _describe_error(err: Any) -> str:
    loc = err["loc"]
    name = env_name(str(loc[0])) if loc else "settings"
    info = Settings.model_fields.get(str(loc[0])) if loc else None
    shown = name
    value = err.get("input")
    # The value helps find a typo. Only DIGEST_ fields show it: the aliased ones (AWS_*,
    # OPENAI_API_KEY) may hold secrets.
    if (
        info is not None
        and info.validation_alias is None
        and str(loc[0]) not in SECRET_FIELDS
        and isinstance(value, str | int | float)
    ):
        shown = f"{name}={str(value)[:120]!r}"
    return f"{shown}: {str(err['msg']).removeprefix('Value error, ')}"


def load_settings(**overrides: Any) -> Settings:
    """Read the settings once; a validation problem becomes one ConfigError line."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(_describe_error(err) for err in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from None


def secret_variables(names: Iterable[str]) -> dict[str, SecretStr | None]:
    """The values of the environment variables a profile names (its `notify` Apprise URLs),
    read here at the settings edge, from the environment or `.env` like the settings; kept as
    secrets (never logged or stored). A variable that is unset or empty maps to None."""
    from dotenv import dotenv_values

    dotenv = dotenv_values(".env") if os.path.isfile(".env") else {}
    found: dict[str, SecretStr | None] = {}
    for name in names:
        value = os.environ.get(name) or dotenv.get(name)
        found[name] = SecretStr(value) if value else None
    return found
