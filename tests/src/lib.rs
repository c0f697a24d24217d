//! End-to-end tests for Shipshape live in `tests/`; this crate has no code of its own.
