//! The Shipshape server: enrollment, signed reports, grading and the fleet report.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod counts;
pub mod fleet;
pub mod grade;
pub mod keyset;
pub mod model;
pub mod regrade;
pub mod simulate;
pub mod store;
