//! Command-line presentation that grew beyond main.rs.

pub mod jobs;
