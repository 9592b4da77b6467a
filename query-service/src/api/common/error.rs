//! The one place a store error becomes an answer. The cause goes to the log, never
//! into the answer: a 503 with `Retry-After` when Cassandra failed or answered
//! something unreadable, a 500 when stored data breaks an invariant (retrying
//! will not help).

use platform::http::Problem;

use crate::store::StoreError;

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::Request(_) | StoreError::Answer(_) => {
                tracing::error!(error = %e, "store request failed");
                Problem::unavailable("the store is not answering; retry later", 1)
            }
            StoreError::Inconsistent(_) => {
                tracing::error!(error = %e, "stored data is inconsistent");
                Problem::internal()
            }
        }
    }
}
