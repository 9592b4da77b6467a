//! The domain of the fenced write timestamp (protocol step P8):
//! [`write_timestamp`](crate::write_timestamp)`(epoch, offset) = epoch << 40 | offset`.
//!
//! Offsets must stay below 2^40 and epochs below 2^22 (the sign bit stays clear).
//! Outside that, timestamps would wrap or collide and a stale owner could win, so
//! the aggregator checks every claim's epoch and every flush's last offset at run
//! time and halts the partition instead of writing. (In debug builds
//! `write_timestamp` also asserts it.)
//!
//! The same arithmetic explains why a manual write must never carry a wall-clock
//! timestamp: `cqlsh` stamps writes with microseconds since 1970 (about 1.8·10^15
//! in 2026), which reads as epoch ≈ 1,600. No owner reaches that epoch for
//! years, so every later write to that row loses: the row is frozen for good. Fix
//! rows by deleting them `USING TIMESTAMP` below the current owner's, or recount.

/// Largest offset a fenced timestamp can carry.
pub const MAX_OFFSET: i64 = (1 << 40) - 1;
/// Largest epoch a fenced timestamp can carry.
pub const MAX_EPOCH: i64 = (1 << 22) - 1;

/// An epoch or offset outside the fenced timestamp's domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("epoch {epoch} or offset {offset} is outside the write timestamp's domain (epoch < 2^22, offset < 2^40)")]
pub struct OutOfDomain {
    pub epoch: i64,
    pub offset: i64,
}

/// Checks that `write_timestamp(epoch, offset)` is exact and ordered.
pub fn check_domain(epoch: i64, offset: i64) -> Result<(), OutOfDomain> {
    if (0..=MAX_EPOCH).contains(&epoch) && (-1..=MAX_OFFSET).contains(&offset) {
        Ok(())
    } else {
        Err(OutOfDomain { epoch, offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write_timestamp;

    #[test]
    fn the_domain_is_where_timestamps_order_by_epoch_then_offset() {
        assert!(check_domain(MAX_EPOCH, MAX_OFFSET).is_ok());
        assert!(check_domain(1, 0).is_ok());
        assert!(write_timestamp(MAX_EPOCH, MAX_OFFSET) > write_timestamp(MAX_EPOCH - 1, MAX_OFFSET));
        assert!(write_timestamp(MAX_EPOCH, MAX_OFFSET) > 0, "the sign bit stays clear");
        assert!(check_domain(MAX_EPOCH + 1, 0).is_err());
        assert!(check_domain(1, MAX_OFFSET + 1).is_err());
        assert!(check_domain(-1, 0).is_err());
    }

    #[test]
    fn a_wall_clock_timestamp_reads_as_a_far_future_epoch() {
        let cqlsh_micros: i64 = 1_780_000_000_000_000; // mid-2026
        assert!(cqlsh_micros >> 40 > 1_500, "epoch {}", cqlsh_micros >> 40);
    }
}
