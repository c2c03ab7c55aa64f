"""arxiv-digest: a daily arXiv digest and an analyst-ready Parquet/DuckDB lake."""
