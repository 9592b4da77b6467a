//! Related videos and recommendations, both from shared tags.
//!
//! * Related to a video: the other videos carrying any of its tags (the newest
//!   [`PER_TAG`] of each tag), scored by how many tags they share with it; ties go
//!   to more views, then to the newer video. Views are read for at most
//!   [`MAX_VIEW_READS`] candidates (the best scored, newest first): beyond them a
//!   tie is broken by age alone, so one request costs at most that many reads.
//! * For you: the signed-in user's interests are the tags of their uploads (the
//!   newest [`MAX_SOURCES`]) and of the videos they rated 3 or more (the
//!   [`MAX_SOURCES`] most recently rated), each tag weighted by how many of those
//!   videos carry it; the [`MAX_INTERESTS`] heaviest tags are kept. Candidates are the
//!   newest [`PER_TAG`] videos of each interest, scored by the summed weights of the
//!   interests they carry, newest first among equals. Everything the user uploaded
//!   (the newest [`MAX_SOURCES`]) or rated (the first [`MAX_RATED_READ`] ratings read)
//!   is left out. With no candidates at all (no activity, no tags, or nothing else
//!   shares them) the answer is the latest videos.
//!
//! Every read is bounded: at most 20 tags × [`PER_TAG`] candidates, [`MAX_SOURCES`]
//! uploads, [`MAX_RATED_READ`] ratings, [`MAX_VIEW_READS`] view counts.

use std::collections::{BTreeSet, HashMap, HashSet};

use uuid::Uuid;

/// Candidates read per tag: the tag's newest videos.
pub const PER_TAG: usize = 100;
/// Uploads, and rated videos, whose tags make up a user's interests.
pub const MAX_SOURCES: usize = 100;
/// Interest tags kept per user.
pub const MAX_INTERESTS: usize = 20;
/// A rating of at least this counts as liking the video.
pub const LIKED: i32 = 3;
/// Ratings of a user read for their interests (video id order).
pub const MAX_RATED_READ: usize = 1000;
/// View counts read to break ties among related videos.
pub const MAX_VIEW_READS: usize = 100;
pub const DEFAULT_RELATED: u32 = 5;
pub const MAX_RELATED: u32 = 20;

/// Sums `weight` over the tags each candidate carries. `heads[i]` are the videos of
/// the tag weighing `weights[i]`; ids in `excluded` are no candidates.
pub fn score(heads: &[Vec<Uuid>], weights: &[u64], excluded: &HashSet<Uuid>) -> HashMap<Uuid, u64> {
    let mut scores = HashMap::new();
    for (head, w) in heads.iter().zip(weights) {
        for id in head.iter().filter(|id| !excluded.contains(id)) {
            *scores.entry(*id).or_insert(0) += w;
        }
    }
    scores
}

/// Highest score first, then newest (largest UUIDv7) first.
pub fn by_score(scores: &HashMap<Uuid, u64>) -> Vec<(Uuid, u64)> {
    let mut ranked: Vec<(Uuid, u64)> = scores.iter().map(|(id, s)| (*id, *s)).collect();
    ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
    ranked
}

/// The `n` heaviest tags (ties alphabetical) with their weights.
pub fn interests(tag_sets: &[BTreeSet<String>], n: usize) -> Vec<(String, u64)> {
    let mut weights: HashMap<&str, u64> = HashMap::new();
    for tag in tag_sets.iter().flatten() {
        *weights.entry(tag).or_insert(0) += 1;
    }
    let mut ranked: Vec<(String, u64)> = weights.into_iter().map(|(t, w)| (t.to_owned(), w)).collect();
    ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(n);
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn scores_sum_weights_and_skip_the_excluded() {
        let heads = vec![vec![id(1), id(2), id(3)], vec![id(2), id(4)], vec![id(3)]];
        let s = score(&heads, &[2, 1, 5], &HashSet::from([id(1)]));
        assert_eq!(s, HashMap::from([(id(2), 3), (id(3), 7), (id(4), 1)]));
        assert_eq!(by_score(&s), vec![(id(3), 7), (id(2), 3), (id(4), 1)]);
        // Equal scores: the newer (larger) id first.
        let tie = score(&[vec![id(1), id(9)]], &[1], &HashSet::new());
        assert_eq!(by_score(&tie), vec![(id(9), 1), (id(1), 1)]);
    }

    #[test]
    fn interests_weigh_tags_by_how_many_videos_carry_them() {
        let set = |tags: &[&str]| tags.iter().map(|t| t.to_string()).collect::<BTreeSet<_>>();
        let sets = vec![set(&["rust", "web"]), set(&["rust"]), set(&["cats", "web"]), set(&["dogs"])];
        assert_eq!(interests(&sets, 3), vec![("rust".to_owned(), 2), ("web".to_owned(), 2), ("cats".to_owned(), 1)]);
        assert!(interests(&[], 3).is_empty());
    }
}
