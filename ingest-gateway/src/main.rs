use ingest_gateway::{Application, GatewayConfig};

// mimalloc rather than glibc's malloc: allocation was about 15% of the gateway's CPU
// under load (README, issue 15, where the gain is measured).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let about = "Accepts view and counting events over HTTP and produces them to Kafka";
    let Some((config, shutdown)) =
        platform::cli::start::<GatewayConfig>("ingest-gateway", "GATEWAY", about, |c| &c.log)?
    else {
        return Ok(());
    };
    if config.producer.sink == ingest_gateway::config::Sink::Null {
        println!("ingest-gateway: NULL SINK, events are validated and encoded, then discarded");
    }
    let app = Application::build(config).await?;
    println!("ingest-gateway listening on http://{} (admin http://{})", app.local_addr(), app.admin_addr());
    app.run(shutdown).await
}
