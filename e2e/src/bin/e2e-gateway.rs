//! The ingest gateway as the system tests run it when they must kill it: the same
//! start-up as `ingest-gateway/src/main.rs` (which is a binary, not a library
//! function), built inside this crate so cargo builds it with the tests.

use ingest_gateway::{Application, GatewayConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let about = "The ingest gateway, for the system tests";
    let Some((config, shutdown)) =
        platform::cli::start::<GatewayConfig>("ingest-gateway", "GATEWAY", about, |c| &c.log)?
    else {
        return Ok(());
    };
    let app = Application::build(config).await?;
    println!("ingest-gateway listening on http://{}", app.local_addr());
    app.run(shutdown).await
}
