//! Integration tests for `skyvault::storage`.
