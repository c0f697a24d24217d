//! Tests for the os_updates probe, filled by its owner.
