//! What the query service decides, apart from how it is asked (`api`) and where
//! the data lives (`store`): range planning and answers for the counts, and the
//! catalog's rules (ranking, search scoring, recommendation scoring, the day walk
//! of the latest list, YouTube URL parsing, moderation rules, field validation).
//!
//! Everything here is plain functions over values, with no I/O, so each rule is
//! unit-tested without a server. Validation answers a `Problem` naming the field:
//! the field name is part of the rule.

pub mod indexes;
pub mod moderation;
pub mod paging;
pub mod ranges;
pub mod ratings;
pub mod recommend;
pub mod search;
pub mod trending;
pub mod validate;
pub mod viewers;
pub mod youtube;
