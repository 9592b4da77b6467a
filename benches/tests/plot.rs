//! The plot binary renders a run's records (sample data in tests/data/sample-run)
//! into decodable PNGs of a readable size and a markdown table with every step.

use std::path::Path;
use std::process::Command;

/// Decodes a PNG and returns its size in pixels.
fn png_size(path: &Path) -> (u32, u32) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file)).read_info().expect("a PNG header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("PNG pixel data decodes");
    // A chart has more than one colour: not a blank canvas.
    let first = &buf[..3];
    assert!(
        buf.chunks(info.line_size / info.width as usize).any(|px| &px[..3] != first),
        "{} is blank",
        path.display()
    );
    (info.width, info.height)
}

#[test]
fn renders_pngs_and_the_table_from_step_records() {
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sample-run");
    let out = std::env::temp_dir().join(format!("plot-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run =
        Command::new(env!("CARGO_BIN_EXE_plot")).arg("--input").arg(&input).arg("--out").arg(&out).output().unwrap();
    assert!(run.status.success(), "plot failed: {}", String::from_utf8_lossy(&run.stderr));

    for name in ["throughput.png", "latency.png"] {
        let path = out.join(name);
        let (w, h) = png_size(&path);
        assert!(w >= 800 && h >= 200, "{name} is {w}x{h}");
        assert!(std::fs::metadata(&path).unwrap().len() > 10_000, "{name} is suspiciously small");
    }
    let table = std::fs::read_to_string(out.join("latest.md")).unwrap();
    for row in [
        "| gateway (null sink) | single | loadgen | 20K | 20K | 0.80 | 4.10 | 12.00 | 0.048 | 0.0000 | not checked |",
        "| pipeline | batch 100 | – | 30K | 30K | 12.40 | 727.00 | 915.00 | 0.073 | 0.5800 | 0 / 0 |",
        "| peer A: Cassandra counter | single | – | 2.0K | 2.0K | 3.00 | 45.00 | 120.00 | 0.475 | 1.0000 | 0 / 0 |",
        "| aggregator alone | 1000000 events | – | – | 250K | – | – | – | 0.006 | 0.0900 | 0 / 0 |",
    ] {
        assert!(table.contains(row), "missing row {row}\n{table}");
    }
    assert!(table.contains("| pipeline / batch 100 | 1 h | 2.10 | 9.00 | 30.50 |"), "read latency table\n{table}");
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn renders_the_cost_curves_one_row_of_panels_per_sweep() {
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sample-curves.tsv");
    let out = std::env::temp_dir().join(format!("plot-curves-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run =
        Command::new(env!("CARGO_BIN_EXE_plot")).arg("--curves").arg(&input).arg("--out").arg(&out).output().unwrap();
    assert!(run.status.success(), "plot failed: {}", String::from_utf8_lossy(&run.stderr));
    let (w, h) = png_size(&out.join("curves.png"));
    // Three sweeps in the sample (rate, videos, late): three rows of 300 pixels under the title.
    assert_eq!((w, h), (1500, 60 + 3 * 300));
    // Neither --input nor --curves: a usage error, not a panic.
    let bare = Command::new(env!("CARGO_BIN_EXE_plot")).arg("--out").arg(&out).output().unwrap();
    assert_eq!(bare.status.code(), Some(2), "{}", String::from_utf8_lossy(&bare.stderr));
    std::fs::remove_dir_all(&out).ok();
}
