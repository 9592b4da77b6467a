//! What is offered: which video (Zipf popularity), which user, which event type,
//! and when it happened; and when each request is due.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use uuid::Uuid;
use vcount_client::{Event, EventKind};

/// Picks videos with Zipf-distributed popularity (rank 1 most popular).
pub struct Popularity {
    videos: Vec<Uuid>,
    cdf: Vec<f64>,
    /// Share of picks that go to the most popular video, on top of the Zipf draw.
    hot: f64,
}

impl Popularity {
    pub fn new(n: usize, s: f64) -> Self {
        let videos: Vec<Uuid> = (0..n.max(1)).map(|_| Uuid::new_v4()).collect();
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (0..videos.len())
            .map(|k| {
                acc += 1.0 / ((k + 1) as f64).powf(s);
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Self { videos, cdf, hot: 0.0 }
    }

    /// One video (the most popular) takes `share` of all picks; the rest follow
    /// the Zipf draw (which may pick it too).
    pub fn with_hot_share(mut self, share: f64) -> Self {
        self.hot = share.clamp(0.0, 1.0);
        self
    }

    pub fn pick(&self, rng: &mut impl Rng) -> Uuid {
        if self.hot > 0.0 && rng.random::<f64>() < self.hot {
            return self.videos[0];
        }
        let u: f64 = rng.random();
        let i = self.cdf.partition_point(|&c| c < u).min(self.videos.len() - 1);
        self.videos[i]
    }

    /// `k` videos spread over the popularity ranks, the most popular first.
    pub fn sample(&self, k: usize) -> Vec<Uuid> {
        let n = self.videos.len();
        let k = k.min(n);
        (0..k).map(|i| self.videos[i * n / k.max(1)]).collect()
    }
}

/// Parses `view=90,like=5,share=5` (weights, any scale) or `view`.
pub fn parse_types(s: &str) -> Result<Vec<(EventKind, u32)>, String> {
    let types = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|part| {
            let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
            let t = name.trim().parse::<EventKind>().map_err(|e| e.to_string())?;
            let w: u32 = weight.trim().parse().map_err(|_| format!("bad weight in {part:?}"))?;
            Ok((t, w))
        })
        .collect::<Result<Vec<_>, String>>()?;
    if types.iter().map(|(_, w)| w).sum::<u32>() == 0 {
        return Err(format!("no event type with a positive weight in {s:?}"));
    }
    Ok(types)
}

pub fn format_types(types: &[(EventKind, u32)]) -> String {
    types.iter().map(|(t, w)| format!("{t}={w}")).collect::<Vec<_>>().join(",")
}

/// One acknowledged event, as the ledger keeps it.
#[derive(Clone, Copy, Debug)]
pub struct Record {
    pub video: Uuid,
    pub kind: EventKind,
    /// `occurredAt` when the harness chose it (ms); `None` when the server
    /// stamps the time (the body-less view endpoint, probes).
    pub at_ms: Option<i64>,
}

/// Generates events.
pub struct Workload {
    pub popularity: Popularity,
    users: Vec<Uuid>,
    types: Vec<(EventKind, u32)>,
    spread_ms: i64,
    late_share: f64,
}

/// Late events happened between these many milliseconds ago.
const LATE_MS: std::ops::Range<i64> = 3_600_000..86_400_000;

impl Workload {
    pub fn new(popularity: Popularity, users: usize, types: Vec<(EventKind, u32)>, spread_secs: i64) -> Self {
        let users = (0..users).map(|_| Uuid::new_v4()).collect();
        Self { popularity, users, types, spread_ms: spread_secs.max(0) * 1000, late_share: 0.0 }
    }

    /// This share of events happened 1 to 24 hours ago (late arrivals).
    pub fn with_late_share(mut self, share: f64) -> Self {
        self.late_share = share.clamp(0.0, 1.0);
        self
    }

    fn kind(&self, rng: &mut impl Rng) -> EventKind {
        let total: u32 = self.types.iter().map(|(_, w)| w).sum();
        let mut x = rng.random_range(0..total.max(1));
        for (t, w) in &self.types {
            if x < *w {
                return *t;
            }
            x -= w;
        }
        EventKind::View
    }

    /// A typed event for the events endpoints, `occurredAt` spread over the past.
    pub fn event(&self, rng: &mut impl Rng, now_ms: i64) -> (Event, Record) {
        let video = self.popularity.pick(rng);
        let kind = self.kind(rng);
        let late = self.late_share > 0.0 && rng.random::<f64>() < self.late_share;
        let ago = if late { rng.random_range(LATE_MS) } else { rng.random_range(0..self.spread_ms.max(1)) };
        let at_ms = now_ms - ago;
        let mut e = Event::new(video, kind)
            .occurred_at(DateTime::<Utc>::from_timestamp_millis(at_ms).expect("a time in range"));
        if !self.users.is_empty() {
            e = e.with_user(self.users[rng.random_range(0..self.users.len())]);
        }
        (e, Record { video, kind, at_ms: Some(at_ms) })
    }
}

/// When open-loop arrival `i` is due, for a rate ramping linearly from `from` to
/// `to` over `duration` (constant when equal).
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    from: f64,
    to: f64,
    secs: f64,
}

impl Schedule {
    pub fn new(from: f64, to: f64, duration: Duration) -> Self {
        Self { from, to, secs: duration.as_secs_f64() }
    }

    /// Arrivals in the whole run: the area under the rate.
    pub fn total(&self) -> u64 {
        ((self.from + self.to) / 2.0 * self.secs).round() as u64
    }

    /// Solves `from·t + (to − from)·t²/(2T) = i` for `t`, in the form that stays
    /// exact when the ramp is flat.
    pub fn at(&self, i: u64) -> Duration {
        let (a, b, i) = ((self.to - self.from) / (2.0 * self.secs), self.from, i as f64);
        let t = 2.0 * i / (b + (b * b + 4.0 * a * i).max(0.0).sqrt());
        Duration::from_secs_f64(if t.is_finite() { t.max(0.0) } else { 0.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_schedule_is_evenly_spaced() {
        let s = Schedule::new(100.0, 100.0, Duration::from_secs(10));
        assert_eq!(s.total(), 1000);
        assert_eq!(s.at(0), Duration::ZERO);
        assert!((s.at(250).as_secs_f64() - 2.5).abs() < 1e-9);
    }

    #[test]
    fn a_ramp_offers_its_area_and_speeds_up() {
        let s = Schedule::new(10.0, 90.0, Duration::from_secs(10));
        assert_eq!(s.total(), 500);
        assert!((s.at(500).as_secs_f64() - 10.0).abs() < 1e-6, "the last arrival ends the run");
        let gap = |i| s.at(i + 1).as_secs_f64() - s.at(i).as_secs_f64();
        assert!((1.0 / gap(0) - 10.0).abs() < 0.5, "starts at 10/s: {}", 1.0 / gap(0));
        assert!((1.0 / gap(498) - 90.0).abs() < 2.0, "ends at 90/s: {}", 1.0 / gap(498));
        let down = Schedule::new(90.0, 10.0, Duration::from_secs(10));
        assert!((down.at(500).as_secs_f64() - 10.0).abs() < 1e-6);
        assert!(down.at(1) < s.at(1));
        let from_zero = Schedule::new(0.0, 100.0, Duration::from_secs(10));
        assert!((from_zero.at(500).as_secs_f64() - 10.0).abs() < 1e-6);
    }

    #[test]
    fn types_parse_with_weights() {
        assert_eq!(
            parse_types("view=90,like=5,share=5").unwrap(),
            [(EventKind::View, 90), (EventKind::Like, 5), (EventKind::Share, 5)]
        );
        assert_eq!(parse_types("view").unwrap(), [(EventKind::View, 1)]);
        assert!(parse_types("views=1").is_err());
        assert!(parse_types("view=0").is_err());
    }

    #[test]
    fn a_hot_video_takes_its_share_of_the_picks() {
        let p = Popularity::new(1000, 1.0).with_hot_share(0.5);
        let mut rng = rand::rng();
        let hot = (0..20_000).filter(|_| p.pick(&mut rng) == p.videos[0]).count() as f64 / 20_000.0;
        // 0.5 plus the Zipf draw's own share of rank 1 over 1,000 videos (about 13% of the other half).
        assert!((0.53..0.60).contains(&hot), "{hot}");
    }

    #[test]
    fn a_late_share_of_events_happened_hours_ago() {
        let w = Workload::new(Popularity::new(10, 1.0), 0, parse_types("view").unwrap(), 60).with_late_share(0.1);
        let (mut rng, now) = (rand::rng(), 1_000_000_000_000);
        let ages: Vec<i64> = (0..5000).map(|_| now - w.event(&mut rng, now).1.at_ms.unwrap()).collect();
        let late = ages.iter().filter(|&&a| a >= 3_600_000).count();
        assert!((350..650).contains(&late), "{late} late events of 5000");
        assert!(ages.iter().all(|&a| (0..60_000).contains(&a) || LATE_MS.contains(&a)));
    }

    #[test]
    fn event_types_follow_their_weights() {
        let w = Workload::new(Popularity::new(10, 1.0), 3, parse_types("view=3,like=1").unwrap(), 60);
        let mut rng = rand::rng();
        let now = 1_000_000_000_000;
        let events: Vec<_> = (0..4000).map(|_| w.event(&mut rng, now)).collect();
        let likes = events.iter().filter(|(_, r)| r.kind == EventKind::Like).count();
        assert!((800..1200).contains(&likes), "{likes} likes of 4000");
        assert!(
            events.iter().all(|(e, r)| e.user_id.is_some() && r.at_ms.is_some_and(|t| t <= now && t > now - 60_000))
        );
    }
}
