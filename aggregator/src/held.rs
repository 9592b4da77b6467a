//! `GET /owner/held`: what this owner holds of a series and has not written yet,
//! for readers who want the count now (`counting::fresh` has the rule that makes
//! adding it to the rows exact, and why).
//!
//! On the operational port, which is private: the query services call it. The
//! owner is the poll loop's, behind a mutex the loop takes for every message it
//! folds, so under load it is almost never free. A question is therefore left
//! at a [`Desk`] and the loop answers it between two messages, while it holds
//! the owner anyway (one atomic load per message when nobody asks); when the
//! loop is idle (waiting in `poll` without the owner) the handler takes the
//! owner and answers itself. Either way the answer is read under the owner's
//! lock, as the rule needs. Until 2026-12-02 the handler only tried the lock,
//! every millisecond: under load it waited for a gap between two messages, and
//! about 1% of reads ran out of `held.wait_ms` (README, Measured, "The owner
//! answers between two messages"). The loop holds the owner for the whole of a
//! blocking round (a claim's fenced round, a revoke, shutdown), so an answer
//! waits at most `held.wait_ms` and is then a 503: the reader uses the rows
//! alone, exact and a little older.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use counting::fresh::Held;
use counting::{EventTypes, SeriesKey};
use platform::http::{Problem, parse_uuid};
use serde::Deserialize;
use tokio::sync::oneshot;

use crate::metrics::{HELD_ANSWERS, HELD_WAIT};
use crate::owner::Owner;

/// One reader's question, waiting for whoever holds the owner next.
struct Ask {
    partition: i32,
    key: SeriesKey,
    reply: oneshot::Sender<Option<Held>>,
}

/// Where readers leave questions for the owner's holder. Bounded: at most
/// [`Desk::MAX_ASKS`] wait at once; more are answered 503 at once (the reader
/// uses the rows), so a storm of reads cannot grow it.
#[derive(Default)]
pub struct Desk {
    asks: Mutex<Vec<Ask>>,
    /// Set when `asks` may be non-empty: the loop's per-message check.
    waiting: AtomicBool,
}

impl Desk {
    pub const MAX_ASKS: usize = 4096;

    /// Leaves a question; `None` when the desk is full.
    fn leave(&self, partition: i32, key: SeriesKey) -> Option<oneshot::Receiver<Option<Held>>> {
        let (reply, rx) = oneshot::channel();
        let mut asks = self.asks.lock().unwrap_or_else(|e| e.into_inner());
        if asks.len() >= Self::MAX_ASKS {
            return None;
        }
        asks.push(Ask { partition, key, reply });
        self.waiting.store(true, Ordering::SeqCst);
        Some(rx)
    }

    /// Answers every question waiting, with `answer` (called by whoever holds the
    /// owner). One atomic load when nobody asked.
    pub fn serve(&self, answer: impl Fn(i32, &SeriesKey) -> Option<Held>) {
        if !self.waiting.load(Ordering::SeqCst) {
            return;
        }
        let asks = {
            let mut asks = self.asks.lock().unwrap_or_else(|e| e.into_inner());
            self.waiting.store(false, Ordering::SeqCst);
            std::mem::take(&mut *asks)
        };
        for ask in asks {
            // A reader that gave up has dropped its receiver: nothing to do.
            let _ = ask.reply.send(answer(ask.partition, &ask.key));
        }
    }
}

/// Why there is no answer.
#[derive(Debug, PartialEq, Eq)]
enum NoAnswer {
    /// The owner was not free and its holder did not answer within the wait.
    Busy,
    /// This owner does not count the partition.
    NotOwner,
}

/// Asks `desk` for `key` of `partition`, answering it itself whenever `state`
/// is free, for at most `wait`. Generic over the state so it can be tested
/// without an owner.
async fn ask<T>(
    desk: &Desk,
    state: &Mutex<T>,
    answer: impl Fn(&T, i32, &SeriesKey) -> Option<Held>,
    partition: i32,
    key: SeriesKey,
    wait: Duration,
) -> Result<Held, NoAnswer> {
    let deadline = Instant::now() + wait;
    let Some(mut reply) = desk.leave(partition, key) else { return Err(NoAnswer::Busy) };
    loop {
        // The loop may have let go of the owner to wait in `poll` just before the
        // question was left (it looks at the desk only while it holds the owner):
        // take the owner then and answer what waits, this question included.
        match state.try_lock() {
            Ok(s) => desk.serve(|p, k| answer(&s, p, k)),
            Err(TryLockError::Poisoned(_)) => return Err(NoAnswer::Busy),
            Err(TryLockError::WouldBlock) => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left.min(Duration::from_millis(2)), &mut reply).await {
            Ok(Ok(held)) => return held.ok_or(NoAnswer::NotOwner),
            Ok(Err(_)) => return Err(NoAnswer::Busy),
            Err(_) if left.is_zero() => return Err(NoAnswer::Busy),
            Err(_) => {}
        }
    }
}

struct HeldState {
    owner: Arc<Mutex<Owner>>,
    desk: Arc<Desk>,
    types: EventTypes,
    wait: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeldQuery {
    partition: i32,
    video: String,
    #[serde(rename = "type")]
    kind: String,
}

/// The route, answering from the counts consumer's `owner` through its `desk`.
pub fn router(owner: Arc<Mutex<Owner>>, desk: Arc<Desk>, types: EventTypes, wait: Duration) -> Router {
    Router::new().route("/owner/held", get(held)).with_state(Arc::new(HeldState { owner, desk, types, wait }))
}

async fn held(State(st): State<Arc<HeldState>>, query: Result<Query<HeldQuery>, QueryRejection>) -> Response {
    let started = Instant::now();
    let answer = async {
        let Query(q) = query.map_err(|e| Problem::invalid("query", e.body_text()))?;
        let video_id = parse_uuid("video", &q.video)?;
        let kind = st.types.parse(&q.kind).map_err(|e| Problem::invalid("type", e))?;
        let key = SeriesKey { video_id, kind };
        ask(&st.desk, &st.owner, |o: &Owner, p, k| o.held(p, k), q.partition, key, st.wait).await.map_err(|e| match e {
            NoAnswer::NotOwner => Problem::not_found(format!("partition {} is not counted here", q.partition)),
            NoAnswer::Busy => Problem::unavailable("the owner is busy (a blocking round): read the rows", 1),
        })
    };
    let result = answer.await;
    let outcome = match &result {
        Ok(_) => "held",
        Err(p) => match p.status().as_u16() {
            404 => "not_owner",
            503 => "busy",
            _ => "invalid",
        },
    };
    HELD_ANSWERS.counter_with(&[("outcome", outcome)]).increment(1);
    if outcome != "invalid" {
        HELD_WAIT.histogram().record(started.elapsed().as_secs_f64());
    }
    match result {
        Ok(held) => Json(held).into_response(),
        Err(p) => p.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use counting::EventKind;
    use std::sync::mpsc;
    use uuid::Uuid;

    fn key() -> SeriesKey {
        SeriesKey { video_id: Uuid::from_u128(7), kind: EventKind::View }
    }

    /// What the fake owner answers: its epoch, and nothing for partition 9.
    fn answer(epoch: &i64, p: i32, _: &SeriesKey) -> Option<Held> {
        (p != 9).then_some(Held { ready: true, epoch: *epoch, consumed: 41, pending: None, in_flight: None })
    }

    /// A holder that never lets go of the owner but serves the desk between its
    /// "messages": the question is answered by the holder, well inside the wait.
    /// (Trying the lock alone, as before, could only answer 503 here.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_holder_answers_between_messages() {
        let desk = Arc::new(Desk::default());
        let state = Arc::new(Mutex::new(5_i64));
        let (held_tx, held_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let holder = {
            let (desk, state) = (desk.clone(), state.clone());
            std::thread::spawn(move || {
                let s = state.lock().unwrap();
                held_tx.send(()).unwrap();
                while stop_rx.try_recv().is_err() {
                    std::thread::sleep(Duration::from_micros(200)); // a message folded
                    desk.serve(|p, k| answer(&s, p, k));
                }
            })
        };
        held_rx.recv().unwrap();
        let started = Instant::now();
        let got = ask(&desk, &state, answer, 3, key(), Duration::from_secs(5)).await;
        assert_eq!(got.map(|h| (h.epoch, h.consumed)), Ok((5, 41)));
        assert!(started.elapsed() < Duration::from_secs(1), "answered in {:?}", started.elapsed());
        assert_eq!(ask(&desk, &state, answer, 9, key(), Duration::from_secs(5)).await, Err(NoAnswer::NotOwner));
        stop_tx.send(()).unwrap();
        holder.join().unwrap();
    }

    /// An idle loop (the owner free, nobody serving the desk): the handler takes
    /// the owner and answers itself, and leaves the desk empty.
    #[tokio::test]
    async fn a_free_owner_is_answered_at_once() {
        let desk = Desk::default();
        let state = Mutex::new(8_i64);
        let got = ask(&desk, &state, answer, 1, key(), Duration::from_millis(50)).await;
        assert_eq!(got.map(|h| h.epoch), Ok(8));
        assert!(desk.asks.lock().unwrap().is_empty());
        assert!(!desk.waiting.load(Ordering::SeqCst));
    }

    /// A blocking round: the owner held and the desk not served. The answer is
    /// 503 once the wait has passed, not sooner and not much later.
    #[tokio::test]
    #[expect(clippy::await_holding_lock, reason = "the test holds the owner on purpose: a blocking round")]
    async fn a_blocking_round_is_busy_after_the_wait() {
        let desk = Desk::default();
        let state = Mutex::new(1_i64);
        let guard = state.lock().unwrap();
        let started = Instant::now();
        let got = ask(&desk, &state, answer, 1, key(), Duration::from_millis(30)).await;
        assert_eq!(got, Err(NoAnswer::Busy));
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(30) && took < Duration::from_secs(2), "took {took:?}");
        drop(guard);
        // The question left behind is answered (to nobody) at the next serve.
        desk.serve(|p, k| answer(&1, p, k));
        assert!(desk.asks.lock().unwrap().is_empty());
    }

    /// A full desk refuses at once instead of growing.
    #[tokio::test]
    #[expect(clippy::await_holding_lock, reason = "the test holds the owner on purpose: a blocking round")]
    async fn a_full_desk_refuses() {
        let desk = Desk::default();
        let state = Mutex::new(1_i64);
        let guard = state.lock().unwrap();
        let waiting: Vec<_> = (0..Desk::MAX_ASKS).map(|_| desk.leave(1, key()).expect("room")).collect();
        let started = Instant::now();
        assert_eq!(ask(&desk, &state, answer, 1, key(), Duration::from_secs(5)).await, Err(NoAnswer::Busy));
        assert!(started.elapsed() < Duration::from_secs(1));
        drop(guard);
        desk.serve(|p, k| answer(&2, p, k));
        for mut rx in waiting {
            assert_eq!(rx.try_recv().expect("answered").map(|h| h.epoch), Some(2));
        }
    }
}
