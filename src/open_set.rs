//! "None of the above": every class as its prototype (the mean embedding of its examples), a
//! query recognised as the class of the nearest prototype, or called unknown when it is farther
//! than the operating distance from all of them. A classifier always answers some class; this
//! one can say it has never seen the thing. Also the rates a user chooses the distance by: how
//! often an unknown is accepted (FAR) and a known one rejected (FRR) as the distance moves, and
//! the equal error rate (EER) where the two meet.

use serde::{Deserialize, Serialize};

use crate::embeddings::Embeddings;

/// One prototype per class, by name: the classes the model was trained on and those enrolled
/// after from a few images, alike; all of one length, the embeddings'.
#[derive(Clone, Debug)]
pub struct Prototypes {
    pub names: Vec<String>,
    dim: usize,
    centres: Vec<f32>,
}

impl Prototypes {
    /// The mean embedding of each class of `embeddings` (labels index `class_names`) that has
    /// any, skipping the classes named in `except`.
    pub fn of_classes(embeddings: &Embeddings, class_names: &[String], except: &[String]) -> Self {
        let mut prototypes = Self {
            names: Vec::new(),
            dim: embeddings.dim,
            centres: Vec::new(),
        };
        for (class, name) in class_names.iter().enumerate() {
            if except.contains(name) {
                continue;
            }
            let rows: Vec<&[f32]> = (0..embeddings.len())
                .filter(|&i| embeddings.labels[i] == class)
                .map(|i| embeddings.row(i))
                .collect();
            prototypes
                .add(name, &rows)
                .expect("the rows of embeddings have their length");
        }
        prototypes
    }

    /// Adds the class `name` as the mean of `rows` (nothing when there are none). Refuses rows
    /// of another length than the prototypes': no distance to them could be measured, and
    /// every prototype after them would be cut in the wrong place.
    pub fn add(&mut self, name: &str, rows: &[&[f32]]) -> Result<(), String> {
        if let Some(row) = rows.iter().find(|row| row.len() != self.dim) {
            return Err(format!(
                "the class {name:?} has an embedding of {} values, not {}",
                row.len(),
                self.dim
            ));
        }
        if rows.is_empty() {
            return Ok(());
        }
        let mut mean = vec![0.0; self.dim];
        for row in rows {
            for (sum, value) in mean.iter_mut().zip(*row) {
                *sum += value / rows.len() as f32;
            }
        }
        self.names.push(name.to_string());
        self.centres.extend(mean);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The nearest prototype to `query` other than `except`'s, as (its index, distance).
    pub fn nearest(&self, query: &[f32], except: Option<&str>) -> Option<(usize, f32)> {
        self.centres
            .chunks(self.dim.max(1))
            .enumerate()
            .filter(|&(index, _)| except != Some(self.names[index].as_str()))
            .map(|(index, centre)| {
                let squared: f32 = centre
                    .iter()
                    .zip(query)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum();
                (index, squared.sqrt())
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// What a query is: its nearest class, or none of them past `unknown_distance`.
    pub fn recognise(&self, query: &[f32], unknown_distance: f32) -> Option<Recognition> {
        self.nearest(query, None)
            .map(|(index, distance)| Recognition {
                class_name: (distance <= unknown_distance).then(|| self.names[index].clone()),
                nearest_class: self.names[index].clone(),
                distance,
                unknown_distance,
            })
    }
}

/// The answer for one query.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Recognition {
    /// The class it is recognised as; None: none of the above.
    pub class_name: Option<String>,
    pub nearest_class: String,
    /// To the nearest class's prototype.
    pub distance: f32,
    pub unknown_distance: f32,
}

/// The distances a curve is drawn from: each known query's distance to its nearest prototype
/// and whether that is its own class, and each unknown query's distance to its nearest one.
#[derive(Clone, Debug, Default)]
pub struct OpenSetScores {
    pub known: Vec<(f32, bool)>,
    pub unknown: Vec<f32>,
}

/// The rates at one operating distance: a query nearer than it (or at it) to a prototype is
/// accepted as that class.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct OperatingPoint {
    pub distance: f32,
    /// Unknown queries accepted as some class (false accepts).
    pub far: f64,
    /// Known queries called unknown (false rejects).
    pub frr: f64,
    /// Known queries accepted as their own class.
    pub recognised: f64,
}

impl OpenSetScores {
    pub fn at(&self, distance: f32) -> OperatingPoint {
        let share = |count: usize, of: usize| count as f64 / of.max(1) as f64;
        let accepted = |d: f32| d <= distance;
        OperatingPoint {
            distance,
            far: share(
                self.unknown.iter().filter(|&&d| accepted(d)).count(),
                self.unknown.len(),
            ),
            frr: share(
                self.known.iter().filter(|&&(d, _)| !accepted(d)).count(),
                self.known.len(),
            ),
            recognised: share(
                self.known
                    .iter()
                    .filter(|&&(d, right)| right && accepted(d))
                    .count(),
                self.known.len(),
            ),
        }
    }

    /// Known queries whose nearest prototype is their own class, with no distance limit.
    pub fn closed_set_accuracy(&self) -> f64 {
        let right = self.known.iter().filter(|&&(_, right)| right).count();
        right as f64 / self.known.len().max(1) as f64
    }

    /// The shortest distance that rejects at most `share` of the known queries: how a default is
    /// chosen where no unknowns are at hand. None without known queries.
    pub fn distance_rejecting(&self, share: f64) -> Option<f32> {
        let mut distances: Vec<f32> = self.known.iter().map(|&(d, _)| d).collect();
        distances.sort_by(f32::total_cmp);
        let kept = ((1.0 - share) * distances.len() as f64).ceil() as usize;
        distances.get(kept.max(1) - 1).copied()
    }

    /// The rates at every distance a query lies at, thinned to about `max_points` (the EER's
    /// point always kept), and the EER's point: where FAR and FRR are nearest, the EER being
    /// their mean there. None without both known and unknown queries.
    pub fn curve(&self, max_points: usize) -> Option<(Vec<OperatingPoint>, OperatingPoint)> {
        if self.known.is_empty() || self.unknown.is_empty() {
            return None;
        }
        let mut distances: Vec<f32> = self
            .known
            .iter()
            .map(|&(d, _)| d)
            .chain(self.unknown.iter().copied())
            .collect();
        distances.sort_by(f32::total_cmp);
        distances.dedup();
        let all: Vec<OperatingPoint> = distances.iter().map(|&d| self.at(d)).collect();
        let equal = *all
            .iter()
            .min_by(|a, b| (a.far - a.frr).abs().total_cmp(&(b.far - b.frr).abs()))
            .expect("some distance");
        let stride = all.len().div_ceil(max_points.max(1));
        let mut points: Vec<OperatingPoint> = all.iter().step_by(stride).copied().collect();
        if !points.contains(&equal) {
            points.push(equal);
            points.sort_by(|a, b| a.distance.total_cmp(&b.distance));
        }
        Some((points, equal))
    }
}

/// Scores for when no class is unknown: each row is a known query of its own class (labels
/// index `class_names`), and also an unknown one as if its class were missing (its distance to
/// the nearest other prototype). Rows of classes without a prototype are left out.
pub fn leave_one_class_out(
    prototypes: &Prototypes,
    embeddings: &Embeddings,
    class_names: &[String],
) -> OpenSetScores {
    let mut scores = OpenSetScores::default();
    for row in 0..embeddings.len() {
        let class = class_names[embeddings.labels[row]].as_str();
        if !prototypes.names.iter().any(|name| name == class) {
            continue;
        }
        let query = embeddings.row(row);
        let (Some((nearest, distance)), Some((_, other))) = (
            prototypes.nearest(query, None),
            prototypes.nearest(query, Some(class)),
        ) else {
            continue;
        };
        scores
            .known
            .push((distance, prototypes.names[nearest] == class));
        scores.unknown.push(other);
    }
    scores
}

/// The equal error rate at its point.
pub fn equal_error_rate(point: &OperatingPoint) -> f64 {
    (point.far + point.frr) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores() -> OpenSetScores {
        OpenSetScores {
            known: vec![(0.1, true), (0.2, true), (0.3, false), (0.6, true)],
            unknown: vec![0.25, 0.5, 0.7, 0.8],
        }
    }

    #[test]
    fn rates_at_a_distance_count_accepts_and_rejects_by_hand() {
        // At 0.3: 0.6 of the known is rejected (FRR 1/4); 0.25 of the unknown accepted (FAR
        // 1/4); 0.1 and 0.2 are accepted as their own class, 0.3 as another (recognised 2/4).
        let point = scores().at(0.3);
        assert_eq!((point.far, point.frr, point.recognised), (0.25, 0.25, 0.5));
        let tight = scores().at(0.15);
        assert_eq!((tight.far, tight.frr, tight.recognised), (0.0, 0.75, 0.25));
        let loose = scores().at(1.0);
        assert_eq!((loose.far, loose.frr, loose.recognised), (1.0, 0.0, 0.75));
        assert_eq!(scores().closed_set_accuracy(), 0.75);
        // Rejecting at most a quarter of the four known: 0.3 keeps three.
        assert_eq!(scores().distance_rejecting(0.25), Some(0.3));
        assert_eq!(scores().distance_rejecting(0.0), Some(0.6));
        assert_eq!(scores().distance_rejecting(0.1), Some(0.6));
    }

    #[test]
    fn the_equal_error_rate_is_where_false_accepts_meet_false_rejects() {
        // Distances 0.1 .. 0.8: FAR rises 0,0,.25,.25,.5,.5,.75,1 and FRR falls
        // .75,.5,.5,.25,.25,0,0,0; they meet only at 0.3, at 0.25 each.
        let (points, equal) = scores().curve(100).unwrap();
        assert_eq!(points.len(), 8);
        assert_eq!(equal.distance, 0.3);
        assert_eq!(equal_error_rate(&equal), 0.25);
        // Thinned, the EER's point stays on the curve.
        let (few, same) = scores().curve(3).unwrap();
        assert!(few.len() <= 4 && few.contains(&same), "{few:?}");
        assert!(few.windows(2).all(|w| w[0].distance < w[1].distance));
        assert!(OpenSetScores::default().curve(10).is_none());
    }

    #[test]
    fn prototypes_are_class_means_and_far_queries_are_none_of_them() {
        let names = vec!["a".to_string(), "b".into(), "held".into()];
        let embeddings = Embeddings::new(
            2,
            vec![0.0, 0.0, 2.0, 0.0, 10.0, 10.0, 12.0, 10.0, 50.0, 50.0],
            vec![0, 0, 1, 1, 2],
        );
        let mut prototypes = Prototypes::of_classes(&embeddings, &names, &["held".into()]);
        assert_eq!(prototypes.names, ["a", "b"]);
        // "a" is centred on (1, 0): a query at (1, 3) is 3 away.
        let near = prototypes.recognise(&[1.0, 3.0], 4.0).unwrap();
        assert_eq!(near.class_name.as_deref(), Some("a"));
        assert_eq!(near.distance, 3.0);
        let far = prototypes.recognise(&[1.0, 3.0], 2.0).unwrap();
        assert_eq!((far.class_name, far.nearest_class.as_str()), (None, "a"));
        assert_eq!(prototypes.nearest(&[1.0, 3.0], Some("a")).unwrap().0, 1);
        // Enrolled from two images: its mean.
        prototypes
            .add("new", &[&[40.0, 40.0], &[42.0, 40.0]])
            .unwrap();
        assert_eq!(prototypes.nearest(&[41.0, 44.0], None), Some((2, 4.0)));

        // Left out in turn: (0, 0) is 1 from "a" and 14.87 from "b" (at (11, 10)); the image of
        // the class without a prototype is skipped.
        let scores = leave_one_class_out(&prototypes, &embeddings, &names);
        assert_eq!(scores.known.len(), 4);
        assert_eq!(scores.known[0], (1.0, true));
        assert!((scores.unknown[0] - 221f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn a_class_of_another_length_than_the_prototypes_is_refused() {
        let names = vec!["a".to_string(), "b".into()];
        let embeddings = Embeddings::new(2, vec![0.0, 0.0, 2.0, 2.0], vec![0, 1]);
        let mut prototypes = Prototypes::of_classes(&embeddings, &names, &[]);
        let refused = prototypes.add("short", &[&[1.0]]).unwrap_err();
        assert_eq!(
            refused,
            "the class \"short\" has an embedding of 1 values, not 2"
        );
        assert!(
            prototypes
                .add("long", &[&[1.0, 2.0], &[1.0, 2.0, 3.0]])
                .is_err()
        );
        assert_eq!(prototypes.names, ["a", "b"]);
        assert_eq!(prototypes.nearest(&[2.0, 2.0], None), Some((1, 0.0)));
    }
}
