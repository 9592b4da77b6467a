//! The operator tool's library: what `vcount-admin` does that tests call directly.

pub mod correct;
pub mod rebuild;
