//! What can go wrong with an event, in terms a caller can act on.

use std::time::Duration;

/// Why an event was not acknowledged.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Error {
    /// The gateway refused it (a 4xx other than 429, or one item of a batch). Not
    /// retried: the same request would be refused again.
    #[error("rejected ({status}){}: {detail}", field.as_deref().map(|f| format!(" field {f}")).unwrap_or_default())]
    Rejected { status: u16, field: Option<String>, detail: String },
    /// Every attempt the retry policy allowed failed with a retryable answer.
    /// The event may or may not have been counted; resending it with the same
    /// `eventId` within the dedup window is safe.
    #[error("gave up after {attempts} attempt(s): {last}")]
    GaveUp { attempts: u32, last: Failure },
    /// The circuit breaker is open, so no (further) request was sent.
    /// `attempts` were made before it refused.
    #[error("refused by the open circuit breaker after {attempts} attempt(s); retry in {retry_in:?}")]
    CircuitOpen { attempts: u32, retry_in: Duration },
    /// A 2xx whose body is not what the API promises, or a status the API never
    /// answers (1xx, 3xx). Not retried.
    #[error("unexpected answer: {0}")]
    Protocol(String),
    /// The batcher stopped before this event's batch was answered.
    #[error("the batcher has shut down")]
    Closed,
    #[error("invalid client configuration: {0}")]
    Config(String),
}

/// One failed attempt that is worth retrying.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Failure {
    /// 5xx or 429, with the server's `Retry-After` when it sent one.
    #[error("HTTP {status}")]
    Status { status: u16, retry_after: Option<Duration> },
    #[error("timed out")]
    Timeout,
    #[error("could not connect: {0}")]
    Connect(String),
    /// The connection broke after the request was (perhaps) sent: the answer is
    /// unknown, which is exactly the case event ids make safe to retry.
    #[error("connection lost: {0}")]
    Transport(String),
}

impl Failure {
    /// A short, bounded label: `status_503`, `timeout`, `connect`, `transport`.
    pub fn kind(&self) -> String {
        match self {
            Self::Status { status, .. } => format!("status_{status}"),
            Self::Timeout => "timeout".into(),
            Self::Connect(_) => "connect".into(),
            Self::Transport(_) => "transport".into(),
        }
    }
}

impl Error {
    pub fn is_rejected(&self) -> bool {
        matches!(self, Self::Rejected { .. })
    }

    /// A short, bounded label for counting errors by kind: `rejected_422`,
    /// `gave_up_status_503`, `gave_up_timeout`, `circuit_open`, ...
    pub fn kind(&self) -> String {
        match self {
            Self::Rejected { status, .. } => format!("rejected_{status}"),
            Self::GaveUp { last, .. } => format!("gave_up_{}", last.kind()),
            Self::CircuitOpen { .. } => "circuit_open".into(),
            Self::Protocol(_) => "protocol".into(),
            Self::Closed => "closed".into(),
            Self::Config(_) => "config".into(),
        }
    }
}
