use ingest_gateway::{Application, GatewayConfig};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(config) = platform::cli::load_config::<GatewayConfig>(
        "ingest-gateway",
        "GATEWAY",
        "Accepts view and counting events over HTTP and produces them to Kafka",
    )?
    else {
        return Ok(());
    };
    platform::telemetry::init_logging(&config.log);
    let shutdown = CancellationToken::new();
    platform::http::cancel_on_signal(shutdown.clone());
    let app = Application::build(config).await?;
    println!("ingest-gateway listening on http://{}", app.local_addr());
    app.run(shutdown).await
}
