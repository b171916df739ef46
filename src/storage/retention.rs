//! Retention and deletion (placeholder while being written).
