//! What the three services really share, and nothing else: layered config,
//! telemetry, HTTP plumbing (problem+json, health and metrics routes, graceful
//! shutdown), and the Kafka and Cassandra clients with their setup.

pub mod auth;
pub mod cassandra;
pub mod cli;
pub mod config;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod openapi;
pub mod telemetry;
