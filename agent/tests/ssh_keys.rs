//! Tests for the ssh_keys probe, filled by its owner.
