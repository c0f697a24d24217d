//! How a check report is shown to a person (`--format human`) or a program (`--format json`).
