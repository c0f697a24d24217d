//! The Shipshape server: enrollment, signed reports, grading and the fleet report.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod fleet;
pub mod grade;
pub mod model;
pub mod store;
