//! Tests for the ssh_server probe, filled by its owner.
