//! `GET /owner/held`: what this owner holds of a series and has not written yet,
//! for readers who want the count now (`counting::fresh` has the rule that makes
//! adding it to the rows exact, and why).
//!
//! On the operational port, which is private: the query services call it. The
//! answer is read from the owner between two messages of the poll loop; the loop
//! holds the owner for the whole of a blocking round (a claim's fenced round, a
//! revoke, shutdown), so an answer waits at most `held.wait_ms` and is then a 503:
//! the reader uses the rows alone, exact and a little older.

use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use counting::{EventTypes, SeriesKey};
use platform::http::{Problem, parse_uuid};
use serde::Deserialize;

use crate::metrics::HELD_ANSWERS;
use crate::owner::Owner;

struct HeldState {
    owner: Arc<Mutex<Owner>>,
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

/// The route, answering from the counts consumer's `owner`.
pub fn router(owner: Arc<Mutex<Owner>>, types: EventTypes, wait: Duration) -> Router {
    Router::new().route("/owner/held", get(held)).with_state(Arc::new(HeldState { owner, types, wait }))
}

async fn held(State(st): State<Arc<HeldState>>, query: Result<Query<HeldQuery>, QueryRejection>) -> Response {
    let answer = async {
        let Query(q) = query.map_err(|e| Problem::invalid("query", e.body_text()))?;
        let video_id = parse_uuid("video", &q.video)?;
        let kind = st.types.parse(&q.kind).map_err(|e| Problem::invalid("type", e))?;
        let key = SeriesKey { video_id, kind };
        let deadline = Instant::now() + st.wait;
        loop {
            // The guard must not live across the sleep (the future is `Send`).
            let busy = match st.owner.try_lock() {
                Ok(owner) => {
                    return owner
                        .held(q.partition, &key)
                        .ok_or_else(|| Problem::not_found(format!("partition {} is not counted here", q.partition)));
                }
                Err(TryLockError::WouldBlock) => Instant::now() >= deadline,
                Err(TryLockError::Poisoned(_)) => true,
            };
            if busy {
                return Err(Problem::unavailable("the owner is busy (a blocking round): read the rows", 1));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    match answer.await {
        Ok(held) => {
            HELD_ANSWERS.counter_with(&[("outcome", "held")]).increment(1);
            Json(held).into_response()
        }
        Err(p) => {
            let outcome = match p.status().as_u16() {
                404 => "not_owner",
                503 => "busy",
                _ => "invalid",
            };
            HELD_ANSWERS.counter_with(&[("outcome", outcome)]).increment(1);
            p.into_response()
        }
    }
}
