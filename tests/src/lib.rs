//! End-to-end tests of the `shipshape` agent against `shipshape-server` live
//! in `tests/`, once the server accepts reports; the agent's own CLI tests
//! are in `agent/tests/`.
