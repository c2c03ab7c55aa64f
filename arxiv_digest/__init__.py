"""arxiv-digest: a daily arXiv digest and an analyst-ready Parquet/DuckDB lake."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from arxiv_digest.settings import Settings
    from tasks.notebook import AnalystConnection


def connect(settings: Settings | None = None) -> AnalystConnection:
    """A read-only DuckDB connection to the catalog's views and the lake, for notebooks (the
    `arxiv-digest query` rules); settings from the environment unless given. tasks/notebook.py
    says how it is kept read-only."""
    from tasks.notebook import connect as connect_catalog

    return connect_catalog(settings)


__all__ = ["connect"]
