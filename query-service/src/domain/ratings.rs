//! Ratings as the catalog reads them.

use uuid::Uuid;

/// Sum and count of a video's current ratings (one per user).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub sum: i64,
    pub count: i64,
}

impl Totals {
    /// 0 when nobody has rated.
    pub fn average(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.sum as f64 / self.count as f64 }
    }
}

/// A user's rating of a video, from `ratings_by_user`.
#[derive(Clone, Copy, Debug)]
pub struct Rated {
    pub video: Uuid,
    pub rating: i32,
    pub updated_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_of_nothing_is_zero() {
        assert_eq!(Totals::default().average(), 0.0);
        assert_eq!(Totals { sum: 9, count: 2 }.average(), 4.5);
    }
}
