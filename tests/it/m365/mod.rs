//! Integration tests for `skyvault::m365`.
