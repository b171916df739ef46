//! Verify (placeholder while being written).
