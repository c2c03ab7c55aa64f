"""Prompt templates from prompts/: loaded by stage and language, hashed, and filled safely."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from string import Template

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


@cache
def load_prompt(stage: str, language: str) -> Prompt:
    path = PROMPTS_DIR / f"{stage}.{language}.md"
    if not path.is_file():
        raise ConfigError(f"no prompt template {path.name} in {PROMPTS_DIR}")
    text = path.read_text(encoding="utf-8")
    parts = _SECTION.split(text)
    sections = {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}
    if set(sections) != {"system", "user"}:
        raise ConfigError(f"{path.name} needs a '## system' and a '## user' section")
    return Prompt(name=path.stem, system=sections["system"], user=sections["user"],
                  sha256=hashlib.sha256(text.encode()).hexdigest())


def data_block_text(text: str) -> str:
    """Untrusted text made safe to place inside a <<<DATA ... DATA>>> block."""
    return _DELIMITER.sub("[delimiter removed]", text.replace("\r", ""))


def prompts_fingerprint() -> str:
    """One hash over every prompt template: part of a finished day's configuration."""
    digest = hashlib.sha256()
    for path in sorted(PROMPTS_DIR.glob("*.md")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
