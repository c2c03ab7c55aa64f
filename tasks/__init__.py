"""Pipeline stages: plain typed functions plus thin retryable Prefect task wrappers."""
