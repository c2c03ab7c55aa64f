"""Our own exception types: each carries one line a user can act on."""


class DigestError(Exception):
    """Base of every error the CLI turns into a one-line message and a non-zero exit."""


class ConfigError(DigestError):
    """A setting or argument is invalid (bad date, unknown category, reversed range)."""


class ArxivError(DigestError):
    """The arXiv API could not be read, or answered with an error or a malformed feed."""


class IncompleteFeedError(ArxivError):
    """Fewer entries arrived than the feed's totalResults promised."""


class EmptyWindowError(DigestError):
    """A day's window returned no papers and empty days were not allowed."""


class LakeError(DigestError):
    """The lake (local path or S3) cannot be read or written."""


class CatalogError(DigestError):
    """The DuckDB catalog cannot be opened, registered or queried."""


class LeaseLostError(DigestError):
    """Another run took a digest day's lease over: this run must stop working on that day."""


class LLMUnavailableError(DigestError):
    """The LLM cannot answer at all (endpoint unreachable, model or credentials refused)."""


class DayCancelledError(DigestError):
    """A day's remaining LLM work was stopped: another of its stages failed, or the run stopped."""
