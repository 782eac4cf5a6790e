//! Command-line presentation that grew beyond main.rs.

pub mod access;
pub mod alerts;
pub mod daemon;
pub mod jobs;
