//! Fault injection for the kill and pause tests (`flush.fault_pause_at`,
//! `flush.fault_pause_ms`): every flush sleeps at a chosen point, and says so in
//! the log, so a test can SIGKILL or SIGSTOP the process exactly there instead of
//! hoping to land in a flush by chance. Off (empty) by default.
//!
//! - `before_mark`: the flush has taken its plans, before P5 (each round beside
//!   the poll loop pauses; a blocking flush pauses once). A process stopped here
//!   and woken after a successor claimed the partition must be refused at P5.
//! - `mid_write`: the first write request of the flush has landed (P8), the rest
//!   wait (for the rounds beside the poll loop, `flush::start_rounds` says what
//!   one flush is). A process killed here leaves a flush in doubt with some rows written;
//!   one stopped here writes the rest late, after its successor.
//! - `mid_viewers`: a viewer sketch of the flush has been read and unioned, not
//!   written (once per flush). A process stopped here and woken after its
//!   successor wrote that sketch writes an older union, late, and must lose.
//! - `after_viewers`: a round's viewer sketches and who-viewed rows have landed
//!   (only in rounds that carry signed-in views; with its copies and activities,
//!   before its series' last batches, which hold the all-time rows), and nothing
//!   is committed. A process
//!   killed here leaves a round whose sketches hold it entirely and whose floors
//!   do not; its successor replays it and unions the same viewers again.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::config::FlushConfig;

pub const BEFORE_MARK: &str = "before_mark";
pub const MID_WRITE: &str = "mid_write";
pub const MID_VIEWERS: &str = "mid_viewers";
pub const AFTER_VIEWERS: &str = "after_viewers";

fn armed(cfg: &FlushConfig, point: &str) -> bool {
    cfg.fault_pause_ms > 0 && cfg.fault_pause_at == point
}

/// At `before_mark`: sleeps the round (or the poll thread's blocking flush)
/// before its `mark_attempted`.
pub async fn pause_before_mark(cfg: &FlushConfig) {
    pause(cfg, BEFORE_MARK, None, "before mark_attempted").await;
}

/// At an armed async `point`: sleeps the task for `fault_pause_ms`, saying so in
/// the log; with `once`, only the first time per flush (`once` is reset when a
/// flush starts).
async fn pause(cfg: &FlushConfig, point: &str, once: Option<&AtomicBool>, what: &str) {
    if !armed(cfg, point) || once.is_some_and(|paused| paused.swap(true, Ordering::SeqCst)) {
        return;
    }
    tracing::warn!(ms = cfg.fault_pause_ms, "fault injection: pausing {what}");
    tokio::time::sleep(Duration::from_millis(cfg.fault_pause_ms)).await;
    tracing::warn!("fault injection: pause over");
}

/// Re-arms the once-per-flush points (`mid_write`, `mid_viewers`) as a round
/// starts: when no round was in flight (`idle`, a new flush), or when the last
/// re-arm is three pauses old. Without the second, partitions whose rounds
/// overlap without a gap (the fault tests' one permit makes rounds queue) would
/// never be a new flush again, and never pause again.
pub fn rearm(cfg: &FlushConfig, paused: &AtomicBool, idle: bool) {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    if cfg.fault_pause_ms == 0 {
        return;
    }
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let gap = Duration::from_millis(cfg.fault_pause_ms.saturating_mul(3));
    if idle || last.is_none_or(|t| t.elapsed() >= gap) {
        *last = Some(Instant::now());
        paused.store(false, Ordering::SeqCst);
    }
}

/// At `mid_write`: sleeps once per flush, after the first write request landed.
pub async fn pause_after_write(cfg: &FlushConfig, paused: &AtomicBool) {
    pause(cfg, MID_WRITE, Some(paused), "mid-flush, after the first write").await;
}

/// At `after_viewers`: sleeps after a flush's viewer writes landed, before the commit.
pub async fn pause_after_viewers(cfg: &FlushConfig) {
    pause(cfg, AFTER_VIEWERS, None, "after the viewer writes, before the commit").await;
}

/// At `mid_viewers`: sleeps once per flush, between reading a viewer sketch and
/// writing the union back.
pub async fn pause_mid_viewers(cfg: &FlushConfig, paused: &AtomicBool) {
    pause(cfg, MID_VIEWERS, Some(paused), "between a sketch's read and its write").await;
}
