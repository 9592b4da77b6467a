use aggregator::{AggregatorConfig, Application};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(config) = platform::cli::load_config::<AggregatorConfig>(
        "aggregator",
        "AGGREGATOR",
        "Consumes events from Kafka and keeps exact minute/hour/day/all-time rollups in Cassandra",
    )?
    else {
        return Ok(());
    };
    platform::telemetry::init_logging(&config.log);
    let shutdown = CancellationToken::new();
    platform::http::cancel_on_signal(shutdown.clone());
    let app = Application::build(config).await?;
    println!("aggregator metrics on http://{}/metrics", app.local_addr());
    app.run(shutdown).await
}
