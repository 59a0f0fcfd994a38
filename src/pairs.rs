//! Balanced pairs for training and evaluation: for each image one similar partner (same class,
//! another image) and one dissimilar partner (truly from a different class), shuffled, seeded,
//! and new every epoch.

use crate::rng::SeededRng;

/// Two image indices and whether they are of different classes (y = 1 in the loss).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair {
    pub left: usize,
    pub right: usize,
    pub dissimilar: bool,
}

/// Why a set cannot make both kinds of pair; the message says what to add.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PairError {
    NoImages,
    OneClass { class_name: String },
    NoClassWithTwoImages,
}

impl std::fmt::Display for PairError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PairError::NoImages => write!(f, "there are no images: add at least two classes"),
            PairError::OneClass { class_name } => write!(
                f,
                "all images are of one class ({class_name}): add images of at least one other \
                 class, or there is nothing to tell apart"
            ),
            PairError::NoClassWithTwoImages => write!(
                f,
                "every class has a single image: add a second image to at least one class, so \
                 there are similar pairs to learn from"
            ),
        }
    }
}

impl std::error::Error for PairError {}

pub struct PairSampler {
    labels: Vec<usize>,
    /// Image indices of each class.
    members: Vec<Vec<usize>>,
    /// Classes with two or more images: the only ones that can give a similar pair.
    pairable_classes: Vec<usize>,
    seed: u64,
}

impl PairSampler {
    /// `labels[i]` is the class of image `i`; `class_names` names every class, used or not.
    pub fn new(labels: &[usize], class_names: &[String]) -> Result<Self, PairError> {
        Self::with_seed(labels, class_names, 0)
    }

    pub fn with_seed(
        labels: &[usize],
        class_names: &[String],
        seed: u64,
    ) -> Result<Self, PairError> {
        let mut members = vec![Vec::new(); class_names.len()];
        for (index, &label) in labels.iter().enumerate() {
            members[label].push(index);
        }
        let used: Vec<usize> = (0..members.len())
            .filter(|&c| !members[c].is_empty())
            .collect();
        match used.as_slice() {
            [] => return Err(PairError::NoImages),
            [only] => {
                return Err(PairError::OneClass {
                    class_name: class_names[*only].clone(),
                });
            }
            _ => {}
        }
        let pairable_classes: Vec<usize> = used
            .iter()
            .copied()
            .filter(|&c| members[c].len() >= 2)
            .collect();
        if pairable_classes.is_empty() {
            return Err(PairError::NoClassWithTwoImages);
        }
        Ok(Self {
            labels: labels.to_vec(),
            members,
            pairable_classes,
            seed,
        })
    }

    /// The pairs of one epoch: `2 * images`, half similar and half dissimilar, shuffled. The
    /// same seed and epoch give the same pairs.
    pub fn epoch_pairs(&self, epoch: usize) -> Vec<Pair> {
        let mut rng =
            SeededRng::new(self.seed ^ (epoch as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93));
        let mut pairs = Vec::with_capacity(2 * self.labels.len());
        for (left, &class) in self.labels.iter().enumerate() {
            pairs.push(self.similar_pair(left, class, &mut rng));
            pairs.push(self.dissimilar_pair(left, class, &mut rng));
        }
        rng.shuffle(&mut pairs);
        pairs
    }

    fn similar_pair(&self, left: usize, class: usize, rng: &mut SeededRng) -> Pair {
        // An image alone in its class has no similar partner; to keep the pairs balanced it
        // lends its turn to an image of a class that has one.
        let (left, class) = if self.members[class].len() >= 2 {
            (left, class)
        } else {
            let class = self.pairable_classes[rng.below(self.pairable_classes.len())];
            (
                self.members[class][rng.below(self.members[class].len())],
                class,
            )
        };
        let peers = &self.members[class];
        // Draw among the other members: skip over `left`'s own position.
        let mut right = peers[rng.below(peers.len() - 1)];
        if right == left {
            right = *peers.last().unwrap();
        }
        Pair {
            left,
            right,
            dissimilar: false,
        }
    }

    fn dissimilar_pair(&self, left: usize, class: usize, rng: &mut SeededRng) -> Pair {
        // Any image outside the class, uniformly: draw among the others and skip the class's run.
        let others = self.labels.len() - self.members[class].len();
        let mut pick = rng.below(others);
        let mut right = 0;
        for (other_class, peers) in self.members.iter().enumerate() {
            if other_class == class {
                continue;
            }
            if pick < peers.len() {
                right = peers[pick];
                break;
            }
            pick -= peers.len();
        }
        Pair {
            left,
            right,
            dissimilar: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|c| format!("class{c}")).collect()
    }

    fn uneven_labels() -> Vec<usize> {
        // 3 classes of 5, 2 and 1 images, interleaved; class 3 is named but empty.
        vec![0, 1, 0, 2, 0, 1, 0, 0]
    }

    #[test]
    fn pairs_are_balanced_and_truthful() {
        let labels = uneven_labels();
        let sampler = PairSampler::with_seed(&labels, &names(4), 3).unwrap();
        for epoch in 0..20 {
            let pairs = sampler.epoch_pairs(epoch);
            assert_eq!(pairs.len(), 2 * labels.len());
            let dissimilar = pairs.iter().filter(|p| p.dissimilar).count();
            assert_eq!(dissimilar, labels.len());
            for pair in &pairs {
                if pair.dissimilar {
                    assert_ne!(labels[pair.left], labels[pair.right], "{pair:?}");
                } else {
                    assert_eq!(labels[pair.left], labels[pair.right], "{pair:?}");
                    assert_ne!(pair.left, pair.right, "{pair:?}");
                }
            }
        }
    }

    #[test]
    fn every_image_of_another_class_can_be_a_dissimilar_partner() {
        let labels = uneven_labels();
        let sampler = PairSampler::with_seed(&labels, &names(4), 1).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for epoch in 0..50 {
            for pair in sampler.epoch_pairs(epoch) {
                if pair.dissimilar && pair.left == 0 {
                    seen.insert(pair.right);
                }
            }
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![1, 3, 5]);
    }

    #[test]
    fn same_seed_same_pairs_new_pairs_each_epoch() {
        let labels: Vec<usize> = (0..200).map(|i| i % 4).collect();
        let a = PairSampler::with_seed(&labels, &names(4), 9).unwrap();
        let b = PairSampler::with_seed(&labels, &names(4), 9).unwrap();
        let c = PairSampler::with_seed(&labels, &names(4), 10).unwrap();
        assert_eq!(a.epoch_pairs(2), b.epoch_pairs(2));
        assert_ne!(a.epoch_pairs(2), a.epoch_pairs(3));
        assert_ne!(a.epoch_pairs(2), c.epoch_pairs(2));
    }

    #[test]
    fn sets_that_cannot_make_both_kinds_are_refused() {
        assert_eq!(
            PairSampler::new(&[], &names(2)).err(),
            Some(PairError::NoImages)
        );
        let one_class = PairSampler::new(&[1, 1, 1], &names(2)).err().unwrap();
        assert_eq!(
            one_class,
            PairError::OneClass {
                class_name: "class1".into()
            }
        );
        assert!(
            one_class
                .to_string()
                .contains("add images of at least one other class")
        );
        let singletons = PairSampler::new(&[0, 1, 2], &names(3)).err().unwrap();
        assert_eq!(singletons, PairError::NoClassWithTwoImages);
        assert!(singletons.to_string().contains("add a second image"));
        // The smallest set that works: one class of two, one of one.
        assert!(PairSampler::new(&[0, 0, 1], &names(2)).is_ok());
    }
}
