use query_service::{Application, QueryConfig};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(config) = platform::cli::load_config::<QueryConfig>(
        "query-service",
        "QUERY",
        "Answers time-ranged view counts from the rollups in Cassandra",
    )?
    else {
        return Ok(());
    };
    platform::telemetry::init_logging(&config.log);
    let shutdown = CancellationToken::new();
    platform::http::cancel_on_signal(shutdown.clone());
    let app = Application::build(config).await?;
    println!("query-service listening on http://{}", app.local_addr());
    app.run(shutdown).await
}
