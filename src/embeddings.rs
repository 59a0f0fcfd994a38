//! What a trained tower is for: the embeddings of labelled images, used for a 2-D map (PCA),
//! nearest neighbours, k-NN classification and N-way one-shot classification.

use crate::model::DISTANCE_EPSILON;
use crate::pairs::Pair;
use crate::rng::SeededRng;

/// One embedding per image, row-major, with the image's class.
#[derive(Clone, Debug)]
pub struct Embeddings {
    pub dim: usize,
    values: Vec<f32>,
    pub labels: Vec<usize>,
}

impl Embeddings {
    pub fn new(dim: usize, values: Vec<f32>, labels: Vec<usize>) -> Self {
        assert_eq!(values.len(), dim * labels.len(), "one embedding per label");
        Self {
            dim,
            values,
            labels,
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn row(&self, index: usize) -> &[f32] {
        &self.values[index * self.dim..(index + 1) * self.dim]
    }

    /// The rows at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Embeddings {
        let values = indices.iter().flat_map(|&i| self.row(i)).copied().collect();
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        Embeddings::new(self.dim, values, labels)
    }

    /// The distance D of each pair of rows, as the model defines it (`euclidean_distance`):
    /// every image embedded once instead of once per pair it is in.
    pub fn pair_distances(&self, pairs: &[Pair]) -> Vec<f32> {
        pairs
            .iter()
            .map(|pair| {
                (squared_distance(self.row(pair.left), self.row(pair.right)) + DISTANCE_EPSILON)
                    .sqrt()
            })
            .collect()
    }

    /// The `k` rows nearest to `query`, nearest first, as (index, Euclidean distance).
    pub fn nearest(&self, query: &[f32], k: usize) -> Vec<(usize, f32)> {
        let mut all: Vec<(usize, f32)> = (0..self.len())
            .map(|i| (i, squared_distance(self.row(i), query)))
            .collect();
        let k = k.min(all.len());
        if k == 0 {
            return Vec::new();
        }
        all.select_nth_unstable_by(k - 1, |a, b| a.1.total_cmp(&b.1));
        all.truncate(k);
        all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        all.into_iter().map(|(i, d)| (i, d.sqrt())).collect()
    }

    /// The majority class among the `k` nearest rows; a tie goes to the class whose members
    /// are nearer in sum.
    pub fn knn_class(&self, query: &[f32], k: usize) -> Option<usize> {
        let neighbours = self.nearest(query, k);
        let classes = self.labels.iter().max().map_or(0, |&m| m + 1);
        let mut votes = vec![(0usize, 0.0f32); classes];
        for &(index, distance) in &neighbours {
            let vote = &mut votes[self.labels[index]];
            vote.0 += 1;
            vote.1 += distance;
        }
        (0..classes).filter(|&c| votes[c].0 > 0).max_by(|&a, &b| {
            votes[a]
                .0
                .cmp(&votes[b].0)
                .then(votes[b].1.total_cmp(&votes[a].1))
        })
    }
}

/// The pairs of rows where a model errs the most: the `count` closest pairs of different
/// classes and the `count` farthest of the same class, as (row, row, distance), worst first.
/// Every pair of rows is measured: this is where mislabelled and near-duplicate images show up.
pub fn hardest_pairs(embeddings: &Embeddings, count: usize) -> HardestPairs {
    let mut closest = WorstPairs::new(count);
    let mut farthest = WorstPairs::new(count);
    for left in 0..embeddings.len() {
        for right in left + 1..embeddings.len() {
            let squared = squared_distance(embeddings.row(left), embeddings.row(right));
            if embeddings.labels[left] == embeddings.labels[right] {
                farthest.offer(squared, (left, right, squared));
            } else {
                closest.offer(-squared, (left, right, squared));
            }
        }
    }
    HardestPairs {
        closest_dissimilar: closest.into_pairs(),
        farthest_similar: farthest.into_pairs(),
    }
}

/// The `count` pairs of highest badness seen, worst first.
struct WorstPairs {
    count: usize,
    kept: Vec<(f32, (usize, usize, f32))>,
}

impl WorstPairs {
    fn new(count: usize) -> Self {
        Self {
            count,
            kept: Vec::with_capacity(count + 1),
        }
    }

    fn offer(&mut self, badness: f32, pair: (usize, usize, f32)) {
        if self.kept.len() == self.count && self.kept.last().is_none_or(|w| w.0 >= badness) {
            return;
        }
        let at = self.kept.partition_point(|w| w.0 >= badness);
        self.kept.insert(at, (badness, pair));
        self.kept.truncate(self.count);
    }

    /// With Euclidean distances instead of squared ones.
    fn into_pairs(self) -> Vec<(usize, usize, f32)> {
        self.kept
            .into_iter()
            .map(|(_, (left, right, squared))| (left, right, squared.sqrt()))
            .collect()
    }
}

pub struct HardestPairs {
    pub closest_dissimilar: Vec<(usize, usize, f32)>,
    pub farthest_similar: Vec<(usize, usize, f32)>,
}

fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Share of `queries` whose k-NN class among `reference` is their own.
pub fn knn_accuracy(reference: &Embeddings, queries: &Embeddings, k: usize) -> f64 {
    let right = (0..queries.len())
        .filter(|&i| reference.knn_class(queries.row(i), k) == Some(queries.labels[i]))
        .count();
    right as f64 / queries.len().max(1) as f64
}

/// N-way one-shot classification: for each query, one random reference image of every class
/// (N = the classes present) is the whole support set, and the nearest one names the class.
/// Returns the accuracy and N.
pub fn one_shot_accuracy(reference: &Embeddings, queries: &Embeddings, seed: u64) -> (f64, usize) {
    let classes = reference.labels.iter().max().map_or(0, |&m| m + 1);
    let members: Vec<Vec<usize>> = (0..classes)
        .map(|c| {
            (0..reference.len())
                .filter(|&i| reference.labels[i] == c)
                .collect()
        })
        .collect();
    let present: Vec<usize> = (0..classes).filter(|&c| !members[c].is_empty()).collect();
    let mut rng = SeededRng::new(seed);
    let right = (0..queries.len())
        .filter(|&q| {
            let support: Vec<(usize, f32)> = present
                .iter()
                .map(|&c| {
                    let example = members[c][rng.below(members[c].len())];
                    (c, squared_distance(reference.row(example), queries.row(q)))
                })
                .collect();
            let predicted = support
                .iter()
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|s| s.0);
            predicted == Some(queries.labels[q])
        })
        .count();
    (right as f64 / queries.len().max(1) as f64, present.len())
}

/// The mean and first two principal components of some embeddings (power iteration with
/// deflation on the covariance, which is `dim x dim`, so the cost does not grow with the rows);
/// other embeddings (the same images after an earlier epoch) projected on them share the map's
/// axes.
pub struct Pca2 {
    mean: Vec<f64>,
    axes: [Vec<f64>; 2],
}

impl Pca2 {
    pub fn fit(embeddings: &Embeddings) -> Self {
        let (n, dim) = (embeddings.len(), embeddings.dim);
        let mut mean = vec![0.0f64; dim];
        for i in 0..n {
            for (m, &x) in mean.iter_mut().zip(embeddings.row(i)) {
                *m += f64::from(x) / n as f64;
            }
        }
        let mut covariance = vec![0.0f64; dim * dim];
        for i in 0..n {
            let row: Vec<f64> = centred(embeddings.row(i), &mean).collect();
            for a in 0..dim {
                if row[a] == 0.0 {
                    continue;
                }
                for b in 0..dim {
                    covariance[a * dim + b] += row[a] * row[b];
                }
            }
        }
        let first = principal_axis(&covariance, dim, None);
        let second = principal_axis(&covariance, dim, Some(&first));
        Self {
            mean,
            axes: [first, second],
        }
    }

    pub fn project(&self, embeddings: &Embeddings) -> Vec<[f32; 2]> {
        (0..embeddings.len())
            .map(|i| {
                let row: Vec<f64> = centred(embeddings.row(i), &self.mean).collect();
                self.axes
                    .each_ref()
                    .map(|axis| row.iter().zip(axis).map(|(x, a)| x * a).sum::<f64>() as f32)
            })
            .collect()
    }
}

fn centred<'a>(row: &'a [f32], mean: &'a [f64]) -> impl Iterator<Item = f64> + 'a {
    row.iter().zip(mean).map(|(&x, m)| f64::from(x) - m)
}

/// The dominant eigenvector of a symmetric matrix, orthogonal to `exclude` when given.
fn principal_axis(matrix: &[f64], dim: usize, exclude: Option<&[f64]>) -> Vec<f64> {
    // A fixed, not axis-aligned start, so the result is the same every time.
    let mut v: Vec<f64> = (0..dim).map(|i| 1.0 + (i as f64 * 0.618).fract()).collect();
    for _ in 0..200 {
        if let Some(u) = exclude {
            let along: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(u).for_each(|(a, b)| *a -= along * b);
        }
        let next: Vec<f64> = (0..dim)
            .map(|r| (0..dim).map(|c| matrix[r * dim + c] * v[c]).sum())
            .collect();
        let norm = next.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm < 1e-30 {
            return vec![0.0; dim]; // no spread left along any other axis
        }
        v = next.into_iter().map(|x| x / norm).collect();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardest_pairs_are_the_closest_of_different_classes_and_farthest_of_one() {
        // On a line: class 0 at 0, 1 and 9; class 1 at 3 and 8.
        let embeddings = Embeddings::new(1, vec![0.0, 1.0, 9.0, 3.0, 8.0], vec![0, 0, 0, 1, 1]);
        let hardest = hardest_pairs(&embeddings, 2);
        // Different classes: 9-8 (1), 1-3 (2), then 0-3 (3).
        assert_eq!(hardest.closest_dissimilar, [(2, 4, 1.0), (1, 3, 2.0)]);
        // Same class: 0-9 (9), 1-9 (8), then 3-8 (5).
        assert_eq!(hardest.farthest_similar, [(0, 2, 9.0), (1, 2, 8.0)]);
    }

    /// Two tight classes in 3-D: class 0 near the origin, class 1 near (10, 0, 0).
    fn two_clusters() -> Embeddings {
        let values = vec![
            0.0, 0.1, 0.0, //
            0.1, 0.0, 0.0, //
            0.0, 0.0, 0.1, //
            10.0, 0.1, 0.0, //
            10.1, 0.0, 0.0, //
            9.9, 0.0, 0.1, //
        ];
        Embeddings::new(3, values, vec![0, 0, 0, 1, 1, 1])
    }

    #[test]
    fn nearest_neighbours_by_hand() {
        let set = two_clusters();
        let found = set.nearest(&[9.0, 0.0, 0.0], 2);
        assert_eq!(found.iter().map(|f| f.0).collect::<Vec<_>>(), [5, 3]);
        assert!((found[0].1 - (0.9f32 * 0.9 + 0.01).sqrt()).abs() < 1e-6);
        assert_eq!(set.nearest(&[0.0; 3], 100).len(), 6);
        let pair = |left, right| Pair {
            left,
            right,
            dissimilar: false,
        };
        let d = set.pair_distances(&[pair(0, 0), pair(0, 3)]);
        assert!((d[0] - DISTANCE_EPSILON.sqrt()).abs() < 1e-7);
        assert!((d[1] - (100.0f32 + DISTANCE_EPSILON).sqrt()).abs() < 1e-5);
        assert_eq!(set.knn_class(&[8.0, 0.0, 0.0], 3), Some(1));
        // k = 6 takes every row: a 3-3 tie, won by the nearer class.
        assert_eq!(set.knn_class(&[1.0, 0.0, 0.0], 6), Some(0));
    }

    #[test]
    fn separated_classes_are_classified_perfectly_and_swapped_labels_are_not() {
        let set = two_clusters();
        assert_eq!(knn_accuracy(&set, &set, 1), 1.0);
        assert_eq!(one_shot_accuracy(&set, &set, 7), (1.0, 2));
        let swapped = Embeddings::new(3, set.values.clone(), vec![1, 1, 1, 0, 0, 0]);
        assert_eq!(knn_accuracy(&set, &swapped, 3), 0.0);
    }

    #[test]
    fn pca_puts_the_widest_spread_on_the_first_axis() {
        // Points along the line y = 2x in 3-D, plus ±0.1 along z, uncorrelated with the line
        // (+ - - + in every run of four).
        let mut values = Vec::new();
        for i in 0..20 {
            let t = i as f32 - 10.0;
            let z = if i % 4 == 0 || i % 4 == 3 { 0.1 } else { -0.1 };
            values.extend_from_slice(&[t, 2.0 * t, z]);
        }
        let line = Embeddings::new(3, values.clone(), vec![0; 20]);
        let pca = Pca2::fit(&line);
        let points = pca.project(&line);
        let spread = |axis: usize| points.iter().map(|p| p[axis] * p[axis]).sum::<f32>() / 20.0;
        // The first axis carries the line's variance (t² · 5 on average, 33.25 · 5), the second
        // only the ±0.1 along z.
        assert!((spread(0) - 166.25).abs() < 0.01, "{}", spread(0));
        assert!((spread(1) - 0.01).abs() < 1e-4, "{}", spread(1));
        // Distances along the line are kept: neighbours are sqrt(5) apart.
        assert!(((points[1][0] - points[0][0]).abs() - 5f32.sqrt()).abs() < 1e-4);
        // Other rows on the same axes: the line moved by one step along itself moves each point
        // by sqrt(5) along the first axis and not at all along the second.
        let moved: Vec<f32> = values
            .chunks(3)
            .flat_map(|p| [p[0] + 1.0, p[1] + 2.0, p[2]])
            .collect();
        let shifted = pca.project(&Embeddings::new(3, moved, vec![0; 20]));
        for (before, after) in points.iter().zip(&shifted) {
            assert!(((after[0] - before[0]).abs() - 5f32.sqrt()).abs() < 1e-4);
            assert!((after[1] - before[1]).abs() < 1e-4);
        }
    }
}
