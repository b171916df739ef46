//! Integration tests for `skyvault::simulator`.
