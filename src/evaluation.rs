//! Metrics over pair distances: accuracy at a threshold (the article's "dissimilar if D > 0.5"),
//! the threshold that is best on validation pairs, ROC AUC, and the distances themselves.

use serde::{Deserialize, Serialize};

/// The article's decision rule: a pair is called dissimilar when D > 0.5.
pub const ARTICLE_THRESHOLD: f32 = 0.5;

/// Fraction of pairs classified right by "dissimilar if D > threshold".
pub fn accuracy_at(distances: &[f32], dissimilar: &[bool], threshold: f32) -> f64 {
    assert_eq!(distances.len(), dissimilar.len());
    if distances.is_empty() {
        return 0.0;
    }
    let right = distances
        .iter()
        .zip(dissimilar)
        .filter(|&(&d, &y)| (d > threshold) == y)
        .count();
    right as f64 / distances.len() as f64
}

/// The threshold with the highest accuracy on these pairs, and that accuracy. Candidates lie
/// midway between consecutive sorted distances, so the threshold generalises rather than
/// sitting on one pair's distance.
pub fn best_threshold(distances: &[f32], dissimilar: &[bool]) -> (f32, f64) {
    let mut order: Vec<usize> = (0..distances.len()).collect();
    order.sort_by(|&a, &b| distances[a].total_cmp(&distances[b]));
    let total_dissimilar = dissimilar.iter().filter(|&&y| y).count();
    // Threshold below every distance: everything is called dissimilar.
    let mut right = total_dissimilar;
    let lowest = order.first().map_or(0.0, |&index| distances[index]);
    let mut best = (lowest - 1e-6, right);
    for (rank, &index) in order.iter().enumerate() {
        // Moving the threshold above this pair calls it similar.
        if dissimilar[index] {
            right -= 1;
        } else {
            right += 1;
        }
        let next = order.get(rank + 1).map(|&n| distances[n]);
        if next == Some(distances[index]) {
            continue; // ties move together
        }
        if right > best.1 {
            let threshold = match next {
                Some(next) => (distances[index] + next) / 2.0,
                None => distances[index] + 1e-6,
            };
            best = (threshold, right);
        }
    }
    let accuracy = if distances.is_empty() {
        0.0
    } else {
        best.1 as f64 / distances.len() as f64
    };
    (best.0, accuracy)
}

/// Area under the ROC curve of D as a score for "dissimilar": the probability that a random
/// dissimilar pair lies farther apart than a random similar pair (ties count half).
pub fn roc_auc(distances: &[f32], dissimilar: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..distances.len()).collect();
    order.sort_by(|&a, &b| distances[a].total_cmp(&distances[b]));
    let positives = dissimilar.iter().filter(|&&y| y).count() as f64;
    let negatives = distances.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return f64::NAN;
    }
    // Mann-Whitney U with average ranks for ties.
    let mut rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && distances[order[end + 1]] == distances[order[start]] {
            end += 1;
        }
        let average_rank = (start + end) as f64 / 2.0 + 1.0;
        for &index in &order[start..=end] {
            if dissimilar[index] {
                rank_sum += average_rank;
            }
        }
        start = end + 1;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// Points of the ROC curve (false-positive rate, true-positive rate) for drawing, from (0,0)
/// to (1,1), with at most `max_points` points.
pub fn roc_curve(distances: &[f32], dissimilar: &[bool], max_points: usize) -> Vec<(f64, f64)> {
    let mut order: Vec<usize> = (0..distances.len()).collect();
    // Highest distance first: lowering the threshold calls more pairs dissimilar.
    order.sort_by(|&a, &b| distances[b].total_cmp(&distances[a]));
    let positives = dissimilar.iter().filter(|&&y| y).count().max(1) as f64;
    let negatives = (distances.len() as f64 - positives).max(1.0);
    let step = (order.len() / max_points.max(2)).max(1);
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut curve = vec![(0.0, 0.0)];
    for (rank, &index) in order.iter().enumerate() {
        if dissimilar[index] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        if (rank + 1) % step == 0 || rank + 1 == order.len() {
            curve.push((fp / negatives, tp / positives));
        }
    }
    curve
}

/// What a finished run reports on its test pairs.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Evaluation {
    /// Accuracy with the article's rule, D > 0.5 means dissimilar.
    pub test_acc: f64,
    /// Threshold chosen on the validation pairs (or the training pairs, when there were none).
    pub best_threshold: f32,
    /// Test accuracy at `best_threshold`.
    pub test_acc_best: f64,
    pub auc: f64,
    pub roc: Vec<(f64, f64)>,
    pub similar_distances: Vec<f32>,
    pub dissimilar_distances: Vec<f32>,
}

impl Evaluation {
    /// The threshold is picked on validation pairs, never on the test pairs it is judged on.
    pub fn new(
        validation: (&[f32], &[bool]),
        test_distances: &[f32],
        test_dissimilar: &[bool],
    ) -> Self {
        let (best_threshold, _) = best_threshold(validation.0, validation.1);
        Self::at_threshold(best_threshold, test_distances, test_dissimilar)
    }

    /// The test figures of a model whose threshold is already chosen (one read from a model
    /// file, chosen when it was trained).
    pub fn at_threshold(threshold: f32, test_distances: &[f32], test_dissimilar: &[bool]) -> Self {
        let split = |want: bool| {
            test_distances
                .iter()
                .zip(test_dissimilar)
                .filter(|&(_, &y)| y == want)
                .map(|(&d, _)| d)
                .collect()
        };
        Self {
            test_acc: accuracy_at(test_distances, test_dissimilar, ARTICLE_THRESHOLD),
            best_threshold: threshold,
            test_acc_best: accuracy_at(test_distances, test_dissimilar, threshold),
            auc: roc_auc(test_distances, test_dissimilar),
            roc: roc_curve(test_distances, test_dissimilar, 200),
            similar_distances: split(false),
            dissimilar_distances: split(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: [f32; 6] = [0.1, 0.2, 0.4, 0.6, 0.7, 0.9];
    const Y: [bool; 6] = [false, false, true, false, true, true];

    #[test]
    fn accuracy_counts_dissimilar_above_the_threshold() {
        // At 0.5: predictions F F F T T T; wrong are 0.4 (dissimilar) and 0.6 (similar).
        assert!((accuracy_at(&D, &Y, 0.5) - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(accuracy_at(&D, &Y, 0.0), 0.5);
    }

    #[test]
    fn best_threshold_finds_the_best_cut_midway() {
        // Cut between 0.2 and 0.4 -> 5/6 (only 0.6 wrong); same as between 0.6 and 0.7 (only
        // 0.4 wrong). The first one found wins.
        let (threshold, accuracy) = best_threshold(&D, &Y);
        assert!((threshold - 0.3).abs() < 1e-6, "{threshold}");
        assert!((accuracy - 5.0 / 6.0).abs() < 1e-12);
        let separable = best_threshold(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]);
        assert_eq!(separable, (0.5, 1.0));
    }

    #[test]
    fn auc_by_hand() {
        // Dissimilar {0.4, 0.7, 0.9} vs similar {0.1, 0.2, 0.6}: of the 9 comparisons the
        // dissimilar pair is farther in 8 (0.4 < 0.6 is the one loss).
        assert!((roc_auc(&D, &Y) - 8.0 / 9.0).abs() < 1e-12);
        // Ties count half; perfect separation is 1.
        assert_eq!(roc_auc(&[0.5, 0.5], &[false, true]), 0.5);
        assert_eq!(roc_auc(&[0.1, 0.9], &[false, true]), 1.0);
    }

    #[test]
    fn roc_curve_runs_from_origin_to_one() {
        let curve = roc_curve(&D, &Y, 100);
        assert_eq!(curve.first(), Some(&(0.0, 0.0)));
        assert_eq!(curve.last(), Some(&(1.0, 1.0)));
        assert!(
            curve
                .windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1)
        );
    }

    #[test]
    fn evaluation_takes_its_threshold_from_validation() {
        let eval = Evaluation::new((&[0.1, 0.9], &[false, true]), &D, &Y);
        assert_eq!(eval.best_threshold, 0.5);
        assert_eq!(eval.test_acc_best, eval.test_acc);
        assert_eq!(eval.similar_distances, vec![0.1, 0.2, 0.6]);
        assert_eq!(eval.dissimilar_distances, vec![0.4, 0.7, 0.9]);
    }
}
