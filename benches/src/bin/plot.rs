//! `plot`: turns the step records of one `scripts/bench` run (a directory of
//! `*.json` written by `benchstep` and `aggbench`) into `throughput.png`,
//! `latency.png` and `latest.md` (the results table) in an output directory.
//!
//!   plot --input benches/results/2026-11-24T10-00 --out benches/results
//!
//! With `--curves FILE` it draws `scripts/bench-curves`' table (tab-separated, one
//! line per point) into `curves.png` instead: rows per event, Cassandra CPU per 1K
//! events and the rate achieved, against each knob the script swept.
//!
//! Text is drawn with a font compiled into the binary (DejaVu Sans Mono, in
//! `benches/assets/`), so rendering needs no fontconfig or system fonts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use benches::record::{Percentiles, Record};
use clap::Parser;
use plotters::prelude::*;
use plotters::style::FontStyle;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSansMono.ttf");

#[derive(Parser)]
#[command(about = "Render the table and plots of a benchmark run")]
struct Args {
    /// Directory with one JSON record per step.
    #[arg(long, required_unless_present = "curves", conflicts_with = "curves")]
    input: Option<PathBuf>,
    /// `scripts/bench-curves`' curves.tsv: draw curves.png from it instead.
    #[arg(long)]
    curves: Option<PathBuf>,
    /// The curves' title (default: the table's directory).
    #[arg(long, requires = "curves")]
    title: Option<String>,
    /// Where throughput.png, latency.png and latest.md (or curves.png) go.
    #[arg(long)]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    std::fs::create_dir_all(&a.out)?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| anyhow::anyhow!("the embedded font does not load"))?;
    if let Some(tsv) = &a.curves {
        let text = std::fs::read_to_string(tsv).with_context(|| format!("reading {}", tsv.display()))?;
        let dir = || std::path::absolute(tsv).ok()?.parent()?.file_name().map(|n| n.to_string_lossy().into_owned());
        let title = a.title.clone().or_else(dir).unwrap_or_default();
        let (points, above_idle) = parse_curves(&text)?;
        return curves_png(&points, above_idle, &a.out.join("curves.png"), &title);
    }
    let input = a.input.expect("clap requires --input without --curves");
    let records = load(&input)?;
    anyhow::ensure!(!records.is_empty(), "no step records (*.json) in {}", input.display());
    let title = input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    throughput_png(&records, &a.out.join("throughput.png"), &title)?;
    latency_png(&records, &a.out.join("latency.png"), &title)?;
    let table = markdown(&records, &title);
    std::fs::write(a.out.join("latest.md"), &table)?;
    print!("{table}");
    Ok(())
}

/// Every `*.json` record in the directory, in file-name order (the step order).
fn load(dir: &Path) -> anyhow::Result<Vec<Record>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p)?;
            serde_json::from_slice(&bytes).with_context(|| format!("{} is not a step record", p.display()))
        })
        .collect()
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// One colour per system, in order of first appearance.
fn color_of(records: &[Record], system: &str) -> RGBColor {
    let mut seen: Vec<&str> = Vec::new();
    for r in records {
        if !seen.contains(&r.system.as_str()) {
            seen.push(&r.system);
        }
    }
    COLORS[seen.iter().position(|s| *s == system).unwrap_or(0) % COLORS.len()]
}

/// Bounds of a log axis that holds every value with room for a label at the end.
fn log_bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.filter(|v| *v > 0.0).fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi == 0.0 {
        return (0.1, 10.0);
    }
    (10f64.powf((lo / 2.0).log10().floor()), 10f64.powf((hi * 3.0).log10().ceil()))
}

fn human(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{:.2}M", v / 1e6),
        v if v >= 1e4 => format!("{:.0}K", v / 1e3),
        v if v >= 1e3 => format!("{:.1}K", v / 1e3),
        v if v >= 10.0 => format!("{v:.0}"),
        v => format!("{v:.2}"),
    }
}

/// Labels that fit the left margin.
fn short(label: &str) -> String {
    const MAX: usize = 56;
    if label.chars().count() <= MAX {
        return label.to_owned();
    }
    let mut s: String = label.chars().take(MAX - 1).collect();
    s.push('…');
    s
}

/// Horizontal bars: events per second per step, log scale.
fn throughput_png(records: &[Record], path: &Path, title: &str) -> anyhow::Result<()> {
    let n = records.len();
    let root = BitMapBackend::new(path, (1400, 140 + 44 * n as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let (lo, hi) = log_bounds(records.iter().map(|r| r.achieved_per_sec));
    let labels: Vec<String> = records.iter().map(|r| short(&r.label())).collect();
    let mut chart = rows_chart(&root, &format!("Throughput, events/s (log scale) — {title}"), (lo, hi), &labels)?;
    for (i, r) in records.iter().enumerate() {
        let y = row_y(i, n);
        let v = r.achieved_per_sec.max(lo);
        let color = color_of(records, &r.system);
        chart.draw_series([Rectangle::new([(lo, y - 0.35), (v, y + 0.35)], color.filled())])?;
        let mut text = format!(" {}/s", human(r.achieved_per_sec));
        if let Some(o) = r.offered_per_sec {
            text.push_str(&format!(" (offered {})", human(o)));
        }
        chart.draw_series([Text::new(text, (v, y), value_style(14))])?;
    }
    root.present()?;
    Ok(())
}

/// Grouped horizontal bars: p50, p99 and p99.9 ingest latency per step, log scale.
fn latency_png(records: &[Record], path: &Path, title: &str) -> anyhow::Result<()> {
    let rows: Vec<(String, Percentiles)> = records
        .iter()
        .flat_map(|r| {
            let ingest = r.latency_ms.map(|l| (short(&r.label()), l));
            let read = r.read_latency_ms.map(|l| (short(&format!("{} (reads 1 h)", r.label())), l));
            let read_30d = r.read_latency_30d_ms.map(|l| (short(&format!("{} (reads 30 d)", r.label())), l));
            ingest.into_iter().chain(read).chain(read_30d)
        })
        .collect();
    let n = rows.len().max(1);
    let root = BitMapBackend::new(path, (1400, 160 + 60 * n as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let (lo, hi) = log_bounds(rows.iter().flat_map(|(_, l)| [l.p50, l.p99, l.p999]));
    let labels: Vec<&str> = rows.iter().map(|(l, _)| l.as_str()).collect();
    let mut chart = rows_chart(&root, &format!("Latency, ms (log scale) — {title}"), (lo, hi), &labels)?;
    let shades = [RGBColor(120, 180, 230), RGBColor(31, 119, 180), RGBColor(12, 45, 90)];
    let names = ["p50", "p99", "p99.9"];
    for (k, (name, shade)) in names.iter().zip(shades).enumerate() {
        let bars = rows.iter().enumerate().map(move |(i, (_, l))| {
            let v = [l.p50, l.p99, l.p999][k].max(lo);
            let y0 = row_y(i, n) + 0.14 - k as f64 * 0.24;
            Rectangle::new([(lo, y0), (v, y0 + 0.22)], shade.filled())
        });
        chart
            .draw_series(bars)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], shade.filled()));
        let values = rows.iter().enumerate().map(move |(i, (_, l))| {
            let v = [l.p50, l.p99, l.p999][k];
            let y0 = row_y(i, n) + 0.14 - k as f64 * 0.24;
            Text::new(format!(" {v:.1}"), (v.max(lo), y0 + 0.11), value_style(12))
        });
        chart.draw_series(values)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()?;
    root.present()?;
    Ok(())
}

/// Numbers at the end of a bar, vertically centred on it.
fn value_style(size: u32) -> TextStyle<'static> {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    TextStyle::from(("sans-serif", size)).pos(Pos::new(HPos::Left, VPos::Center))
}

/// Rows are drawn top-down in step order.
fn row_y(i: usize, n: usize) -> f64 {
    (n - 1 - i) as f64
}

type Area<'b> = DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>;
type RowsChart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<LogCoord<f64>, plotters::coord::types::RangedCoordf64>>;

/// A chart with one row per label (top-down), a log x axis over `(lo, hi)`, and
/// the row names right-aligned in the left margin.
fn rows_chart<'a, 'b, S: AsRef<str>>(
    root: &'a Area<'b>,
    caption: &str,
    (lo, hi): (f64, f64),
    labels: &[S],
) -> anyhow::Result<RowsChart<'a, 'b>> {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let n = labels.len().max(1);
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 24))
        .margin(16)
        .margin_right(70)
        .x_label_area_size(40)
        .y_label_area_size(520)
        .build_cartesian_2d((lo..hi).log_scale(), -0.5..n as f64 - 0.5)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_label_formatter(&|_| String::new())
        .x_label_formatter(&|x| human(*x))
        .label_style(("sans-serif", 15))
        .draw()?;
    let style = TextStyle::from(("sans-serif", 15)).pos(Pos::new(HPos::Right, VPos::Center));
    for (i, label) in labels.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(lo, row_y(i, labels.len())));
        root.draw(&Text::new(label.as_ref().to_owned(), (x - 8, y), style.clone()))?;
    }
    Ok(chart)
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "–".to_owned(), f)
}

/// The results table, plus what each step's CPU figure is made of.
fn markdown(records: &[Record], title: &str) -> String {
    let mut s = format!("## Benchmark run {title}\n\n");
    s.push_str(
        "| system | mode | driver | offered/s | achieved/s | p50 ms | p99 ms | p99.9 ms | CPU s per 1K events | \
         DB writes per event | exactness (lost / double) |\n",
    );
    s.push_str("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n");
    for r in records {
        let l = r.latency_ms;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.system,
            r.mode,
            r.driver(),
            opt(r.offered_per_sec, human),
            human(r.achieved_per_sec),
            opt(l.map(|l| l.p50), |v| format!("{v:.2}")),
            opt(l.map(|l| l.p99), |v| format!("{v:.2}")),
            opt(l.map(|l| l.p999), |v| format!("{v:.2}")),
            opt(r.cpu_per_1k(), |v| format!("{v:.3}")),
            opt(r.writes_per_event(), |v| format!("{v:.4}")),
            r.exactness.map_or_else(|| "not checked".to_owned(), |e| format!("{} / {}", e.lost, e.double_counted)),
        );
    }
    let reads: Vec<&Record> = records.iter().filter(|r| r.read_latency_ms.is_some()).collect();
    if !reads.is_empty() {
        s.push_str(
            "\nRead latency during ingest (ms):\n\n| step | range | p50 | p99 | p99.9 |\n| --- | --- | ---: | ---: | ---: |\n",
        );
        for r in reads {
            for (range, l) in [("1 h", r.read_latency_ms), ("30 d", r.read_latency_30d_ms)] {
                let Some(l) = l else { continue };
                let _ = writeln!(s, "| {} | {range} | {:.2} | {:.2} | {:.2} |", r.label(), l.p50, l.p99, l.p999);
            }
        }
    }
    s.push_str("\nCPU seconds by process over each step's window (system under test; the load generator apart):\n\n");
    s.push_str(
        "| step | events | window s | CPU by process | driver CPU s | driver CPU s per 1K events | \
         DB reads per event | consumer lag: peak, slope/s over the last 60 s | notes |\n",
    );
    s.push_str("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |\n");
    for r in records {
        let procs: Vec<String> = r.cpu_secs.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} | {} | {} | {} | {} | {} | {} |",
            r.label(),
            r.events,
            r.window_secs,
            procs.join(", "),
            opt(r.cpu_secs_other.get(r.driver()).copied(), |v| format!("{} {v:.2}", r.driver())),
            opt(r.driver_cpu_per_1k(), |v| format!("{v:.3}")),
            opt(r.db_reads.filter(|_| r.events > 0).map(|d| d as f64 / r.events as f64), |v| format!("{v:.4}")),
            r.lag.map_or_else(|| "–".to_owned(), |l| format!("{}, {:+.0}", human(l.max), l.slope_per_sec)),
            r.notes,
        );
    }
    s
}

/// One point of `scripts/bench-curves`: the knob swept, its value, and the figures drawn.
#[derive(Debug, PartialEq)]
struct CurvePoint {
    sweep: String,
    x: f64,
    /// Rows per event, Cassandra CPU-s per 1K events (above its idle use where the
    /// table has that), achieved events/s (None: not measured).
    y: [Option<f64>; 3],
}

const CURVE_COLUMNS: [&str; 3] = ["rows/event", "Cassandra CPU-s/1K events", "achieved/s"];
const ABOVE_IDLE: &str = "above idle";

/// The tab-separated table: a header naming the columns, then one line per point;
/// and whether Cassandra's figure is its CPU above idle (the table has that column).
fn parse_curves(text: &str) -> anyhow::Result<(Vec<CurvePoint>, bool)> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().context("an empty curves table")?.split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).with_context(|| format!("no column {name:?}"));
    let (sweep, x) = (col("sweep")?, col("x")?);
    let rows = col(CURVE_COLUMNS[0])?;
    // Cassandra's CPU above its idle use where the table has it (scripts/bench-curves measures both).
    let above_idle = col(ABOVE_IDLE).ok();
    let cassandra = above_idle.map_or_else(|| col(CURVE_COLUMNS[1]), Ok)?;
    let ys = [rows, cassandra, col(CURVE_COLUMNS[2])?];
    let points = lines
        .enumerate()
        .map(|(i, line)| {
            let f: Vec<&str> = line.split('\t').collect();
            let field = |c: usize| f.get(c).copied().with_context(|| format!("line {}: too few fields", i + 2));
            let x = field(x)?.parse().with_context(|| format!("line {}: x is not a number", i + 2))?;
            let mut y = [None; 3];
            for (slot, c) in y.iter_mut().zip(ys) {
                *slot = field(c)?.parse().ok();
            }
            Ok(CurvePoint { sweep: field(sweep)?.to_owned(), x, y })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((points, above_idle.is_some()))
}

/// What a sweep's x axis is, and whether it is drawn on a log scale.
fn sweep_axis(sweep: &str) -> (&str, bool) {
    match sweep {
        "rate" => ("offered single views/s", true),
        "videos" => ("distinct videos (catalog)", true),
        "zipf" => ("Zipf exponent", false),
        "late" => ("share of events 1-24 h late", false),
        "hot" => ("share of traffic to one video", false),
        other => (other, false),
    }
}

/// One row of panels per sweep (in the table's order), one column per figure.
fn curves_png(points: &[CurvePoint], above_idle: bool, path: &Path, title: &str) -> anyhow::Result<()> {
    let mut sweeps: Vec<&str> = Vec::new();
    for p in points {
        if !sweeps.contains(&p.sweep.as_str()) {
            sweeps.push(&p.sweep);
        }
    }
    anyhow::ensure!(!sweeps.is_empty(), "no points in the curves table");
    let root = BitMapBackend::new(path, (1500, 60 + 300 * sweeps.len() as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, body) = root.split_vertically(60);
    top.titled(&format!("How cost grows, end to end — {title}"), ("sans-serif", 24))?;
    let panels = body.split_evenly((sweeps.len(), CURVE_COLUMNS.len()));
    for (row, sweep) in sweeps.iter().enumerate() {
        let (axis, log) = sweep_axis(sweep);
        // A log axis is drawn as log10 of the value, labelled with the value.
        let at = |x: f64| if log { x.max(1e-9).log10() } else { x };
        let mut ours: Vec<&CurvePoint> = points.iter().filter(|p| p.sweep == *sweep).collect();
        ours.sort_by(|a, b| a.x.total_cmp(&b.x));
        let (x0, x1) = ours.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(at(p.x)), hi.max(at(p.x))));
        let pad = ((x1 - x0) * 0.08).max(0.05);
        let cassandra = if above_idle { "Cassandra CPU-s/1K events above idle" } else { CURVE_COLUMNS[1] };
        let names = [CURVE_COLUMNS[0], cassandra, CURVE_COLUMNS[2]];
        for (k, name) in names.iter().enumerate() {
            let area = &panels[row * CURVE_COLUMNS.len() + k];
            let series: Vec<(f64, f64)> = ours.iter().filter_map(|p| p.y[k].map(|y| (at(p.x), y))).collect();
            let ymax = series.iter().map(|(_, y)| *y).fold(0.0f64, f64::max).max(1e-9) * 1.25;
            let mut chart = ChartBuilder::on(area)
                .caption(format!("{name} vs {axis}"), ("sans-serif", 15))
                .margin(10)
                .x_label_area_size(28)
                .y_label_area_size(64)
                .build_cartesian_2d(x0 - pad..x1 + pad, 0.0..ymax)?;
            chart
                .configure_mesh()
                .x_labels(6)
                .y_labels(6)
                .x_label_formatter(&|x| if log { human(10f64.powf(*x)) } else { format!("{x:.2}") })
                .y_label_formatter(&|y| human(*y))
                .label_style(("sans-serif", 12))
                .draw()?;
            let color = COLORS[k % COLORS.len()];
            chart.draw_series([PathElement::new(series.clone(), color.stroke_width(2))])?;
            chart.draw_series(series.iter().map(|&(x, y)| Circle::new((x, y), 4, color.filled())))?;
            chart.draw_series(series.iter().map(|&(x, y)| {
                Text::new(
                    format!(" {}", if y < 10.0 { format!("{y:.3}") } else { human(y) }),
                    (x, y),
                    ("sans-serif", 12),
                )
            }))?;
        }
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_curves_table_reads_by_column_name_and_keeps_unmeasured_figures_empty() {
        let text = "sweep\tx\toffered/s\tachieved/s\trows/event\tCassandra CPU-s/1K events\n\
                    rate\t1000\t1000\t998\t0.25\t0.031\n\
                    late\t0.1\t4000\t3990\t-\t0.05\n";
        let (points, above_idle) = parse_curves(text).unwrap();
        assert!(!above_idle);
        assert_eq!(
            points,
            [
                CurvePoint { sweep: "rate".into(), x: 1000.0, y: [Some(0.25), Some(0.031), Some(998.0)] },
                CurvePoint { sweep: "late".into(), x: 0.1, y: [None, Some(0.05), Some(3990.0)] },
            ]
        );
        let with_idle = "sweep\tx\tachieved/s\trows/event\tCassandra CPU-s/1K events\tabove idle\nrate\t1000\t998\t0.25\t0.6\t0.05\n";
        let (points, above_idle) = parse_curves(with_idle).unwrap();
        assert!(above_idle);
        assert_eq!(points[0].y, [Some(0.25), Some(0.05), Some(998.0)]);
        assert!(parse_curves("sweep\tx\n").unwrap_err().to_string().contains("rows/event"));
        assert!(parse_curves("").is_err());
    }
}
