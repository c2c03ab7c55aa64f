"""Prompt templates from prompts/: loaded by stage and language, hashed, and filled safely.

Also the other text kept there: the repair turn of a structured call and the digest's fixed
output text (prompts/output_text.toml), both part of prompts_fingerprint.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Template
from typing import Any

from arxiv_digest.errors import ConfigError
from arxiv_digest.resources import PROMPTS_DIR

_SECTION = re.compile(r"^## (system|user)\s*$", re.MULTILINE)
# Untrusted text must not be able to close its data block or open a new one.
_DELIMITER = re.compile(r"<<<\s*DATA|DATA\s*>>>", re.IGNORECASE)


@dataclass(frozen=True)
class Prompt:
    """One stage's template in one language; `sha256` goes into every cache key that uses it."""

    name: str
    system: str
    user: str
    sha256: str

    def messages(self, **values: str) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": Template(self.system).substitute(values).strip()},
            {"role": "user", "content": Template(self.user).substitute(values).strip()},
        ]


def _read_template(name: str, language: str) -> tuple[Path, str, dict[str, str]]:
    """A template file's path, text and `## system` / `## user` sections."""
    path = PROMPTS_DIR / f"{name}.{language}.md"
    if not path.is_file():
        raise ConfigError(f"no prompt template {path.name} in {PROMPTS_DIR}")
    text = path.read_text(encoding="utf-8")
    parts = _SECTION.split(text)
    return path, text, {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


@cache
def load_prompt(stage: str, language: str) -> Prompt:
    path, text, sections = _read_template(stage, language)
    if set(sections) != {"system", "user"}:
        raise ConfigError(f"{path.name} needs a '## system' and a '## user' section")
    return Prompt(
        name=path.stem,
        system=sections["system"],
        user=sections["user"],
        sha256=hashlib.sha256(text.encode()).hexdigest(),
    )


@cache
def _user_turn(name: str, language: str) -> str:
    path, _, sections = _read_template(name, language)
    if set(sections) != {"user"}:
        raise ConfigError(f"{path.name} needs one '## user' section and no other")
    return sections["user"]


def repair_message(language: str, problem: str) -> dict[str, str]:
    """The user turn asking once for a corrected answer (prompts/repair.<language>.md);
    `problem` says what was wrong with the answer before it."""
    content = Template(_user_turn("repair", language)).substitute(problem=problem).strip()
    return {"role": "user", "content": content}


OUTPUT_TEXT = "output_text.toml"


@cache
def _output_texts() -> dict[str, dict[str, dict[str, Any]]]:
    path = PROMPTS_DIR / OUTPUT_TEXT
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the digest's output text {path}: {exc}") from None


def output_languages() -> list[str]:
    """The languages the digest's fixed output text exists in."""
    return sorted(_output_texts())


def output_text(part: str, language: str) -> Mapping[str, Any]:
    """The digest's fixed text of one `part` (analysis, summary, digest) in `language`, from
    prompts/output_text.toml: strings with `{name}` fields, and lists of headings."""
    try:
        return _output_texts()[language][part]
    except KeyError:
        raise ConfigError(
            f"no {part!r} text for language {language!r} in {PROMPTS_DIR / OUTPUT_TEXT}; "
            f"languages: {', '.join(output_languages())}"
        ) from None


def data_block_text(text: str) -> str:
    """Untrusted text made safe to place inside a <<<DATA ... DATA>>> block."""
    return _DELIMITER.sub("[delimiter removed]", text.replace("\r", ""))


def prompts_fingerprint() -> str:
    """One hash over every file in prompts/ (the stages' templates, the repair turn, the output
    text): part of a finished day's configuration, so editing any of them re-renders the day."""
    digest = hashlib.sha256()
    paths = [*PROMPTS_DIR.glob("*.md"), PROMPTS_DIR / OUTPUT_TEXT]
    for path in sorted(paths):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
