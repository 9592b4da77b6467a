// mimalloc rather than glibc's malloc: allocation was about 15% of the gateway's CPU
// under load (README, issue 15, where the gain is measured).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    aggregator::main()
}
