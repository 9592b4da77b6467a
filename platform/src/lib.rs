//! What the three services really share, and nothing else: layered config,
//! telemetry, HTTP plumbing (problem+json, public and admin routers, graceful
//! shutdown), the server loop with its limits, what faces hostile clients (rate
//! limits, API keys, a bounded pool for heavy work), the Kafka and Cassandra
//! clients with their setup, the moderator role with its audit log
//! (`moderation`, for the query service and `vcount-admin`), and the operator's side
//! of halted partitions (`admin`, for `vcount-admin`).

pub mod admin;
pub mod apikeys;
pub mod auth;
pub mod cassandra;
pub mod cli;
pub mod config;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod moderation;
pub mod openapi;
pub mod ratelimit;
pub mod server;
pub mod telemetry;
pub mod work;
