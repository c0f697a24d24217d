//! Tests for the firewall probe, filled by its owner.
