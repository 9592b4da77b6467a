//! Replays the kept corpus (`fuzz/corpus/<target>/`) through every fuzz target in
//! the ordinary test build: each input that once found a bug, or that libFuzzer
//! kept for the coverage it reaches, stays a regression test.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target}: {} fails", path.display());
        n += 1;
    }
    assert!(n >= 5, "{target}: the corpus has only {n} inputs");
    eprintln!("{target}: {n} corpus inputs replayed");
}

#[test]
fn event_json_corpus() {
    replay("event_json", vcount_fuzz::event_json);
}

#[test]
fn event_batch_corpus() {
    replay("event_batch", vcount_fuzz::event_batch);
}

#[test]
fn youtube_url_corpus() {
    replay("youtube_url", vcount_fuzz::youtube_url);
}

#[test]
fn query_range_corpus() {
    replay("query_range", vcount_fuzz::query_range);
}
