use aggregator::{AggregatorConfig, Application};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let about = "Consumes events from Kafka and keeps exact minute/hour/day/all-time rollups in Cassandra";
    let Some((config, shutdown)) =
        platform::cli::start::<AggregatorConfig>("aggregator", "AGGREGATOR", about, |c| &c.log)?
    else {
        return Ok(());
    };
    let app = Application::build(config).await?;
    // Tests read this first line to find /metrics.
    println!("aggregator metrics on http://{}/metrics", app.local_addr());
    app.run(shutdown).await
}
