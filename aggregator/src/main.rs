fn main() -> anyhow::Result<()> {
    aggregator::main()
}
