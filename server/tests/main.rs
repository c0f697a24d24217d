//! Integration tests of the server: the HTTP API driven in-process over a
//! real SQLite store, and the `shipshape-server` binary itself.

mod admin;
mod cli;
mod enroll;
mod fleet;
mod health;
mod heartbeats;
mod limits;
mod openapi;
mod policy;
mod reports;
mod shutdown;
mod support;
