use query_service::{Application, QueryConfig};

// mimalloc rather than glibc's malloc: allocation was about 15% of the gateway's CPU
// under load (README, issue 15, where the gain is measured).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let about = "Answers time-ranged view counts from the rollups in Cassandra";
    let Some((config, shutdown)) = platform::cli::start::<QueryConfig>("query-service", "QUERY", about, |c| &c.log)?
    else {
        return Ok(());
    };
    let app = Application::build(config).await?;
    println!("query-service listening on http://{} (admin http://{})", app.local_addr(), app.admin_addr());
    app.run(shutdown).await
}
