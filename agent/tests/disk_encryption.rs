//! Tests for the disk_encryption probe, filled by its owner.
