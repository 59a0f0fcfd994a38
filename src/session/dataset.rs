//! The data of a session and every policy about which images each figure is measured on: the
//! train/test split, the test pairs (drawn once, so every "test" figure uses the same ones), and
//! the samples the analysis classifies.

use super::messages::{ClassSummary, DatasetSummary};
use super::thumbnails::thumbnail;
use crate::data::ImageSet;
use crate::data::mnist::mnist_train_test;
use crate::pairs::{Pair, PairError, PairSampler};
use crate::rng::SeededRng;

/// Test images held out of the built-in digits (the article's 8,000 / 2,000 split).
pub const MNIST_TEST_IMAGES: usize = 2000;
/// Fraction of each class of uploaded images held out for the test.
pub const UPLOAD_TEST_SPLIT: f64 = 0.2;
/// Seed of the train/test split, of the test pairs and of the analysis samples: fixed, so runs
/// with different training seeds (and the page and the command line) are tested alike.
pub const SPLIT_SEED: u64 = 1;
const THUMBNAILS_PER_CLASS: usize = 4;

/// Training and test images, and the test pairs every test figure is measured on.
pub struct Dataset {
    /// For people: "MNIST digits", "your images (120 files)".
    pub name: String,
    pub train: ImageSet,
    pub test: ImageSet,
    /// Drawn once from the test images; the error says why there are none (a test part of one
    /// class, or of single images), and then no pair figure is shown.
    pub test_pairs: Result<Vec<Pair>, PairError>,
}

impl Dataset {
    pub fn new(name: String, train: ImageSet, test: ImageSet) -> Self {
        let test_pairs = PairSampler::with_seed(test.labels(), &test.class_names, SPLIT_SEED)
            .map(|sampler| sampler.epoch_pairs(0));
        Self {
            name,
            train,
            test,
            test_pairs,
        }
    }

    /// The built-in digits, split 8,000 / 2,000; `train_images` and `test_images` keep a
    /// stratified sample of each part, for quick runs.
    pub fn mnist(
        digits: &ImageSet,
        train_images: Option<usize>,
        test_images: Option<usize>,
    ) -> Self {
        let (train, test) = mnist_train_test(digits, MNIST_TEST_IMAGES, SPLIT_SEED);
        Self::new(
            "MNIST digits".into(),
            stratified_sample(train, train_images),
            stratified_sample(test, test_images),
        )
    }

    /// The user's images, 20 % of each class held out for the test.
    pub fn uploaded(set: ImageSet, files: usize) -> Self {
        let (train, test) = set.split(UPLOAD_TEST_SPLIT, SPLIT_SEED);
        Self::new(format!("your images ({files} files)"), train, test)
    }

    /// The test pairs of a model trained without the `held_out` classes: those with no image
    /// of them (all of them when none is held out); None when the test part cannot pair.
    pub fn trained_test_pairs(&self, held_out: &[String]) -> Option<Vec<Pair>> {
        let pairs = self.test_pairs.as_ref().ok()?;
        let held = |i: usize| held_out.contains(&self.test.class_names[self.test.labels()[i]]);
        Some(
            pairs
                .iter()
                .filter(|pair| !held(pair.left) && !held(pair.right))
                .copied()
                .collect(),
        )
    }

    /// Why there are no test pair figures, when there are none.
    pub fn no_test_pairs_reason(&self) -> Option<String> {
        let err = self.test_pairs.as_ref().err()?;
        Some(format!(
            "the test part ({} of the images, held out of training) cannot make both kinds of \
             pair ({err}), so no test pair figures are shown: add more images to each class",
            self.test.len()
        ))
    }

    /// What the front ends show of the data.
    pub fn summary(&self, file_errors: Vec<String>, file_notes: Vec<String>) -> DatasetSummary {
        let whole_labels: Vec<usize> = self
            .train
            .labels()
            .iter()
            .chain(self.test.labels())
            .copied()
            .collect();
        let problem = PairSampler::new(&whole_labels, &self.train.class_names)
            .err()
            .map(|err| err.to_string());
        let (train_counts, test_counts) = (self.train.class_counts(), self.test.class_counts());
        let classes = self
            .train
            .class_names
            .iter()
            .enumerate()
            .map(|(class, name)| ClassSummary {
                name: name.clone(),
                count: train_counts[class] + test_counts[class],
                thumbnails: (0..self.train.len())
                    .filter(|&i| self.train.labels()[i] == class)
                    .take(THUMBNAILS_PER_CLASS)
                    .map(|i| thumbnail(&self.train, i))
                    .collect(),
            })
            .collect();
        let shape = self.train.shape;
        DatasetSummary {
            name: self.name.clone(),
            channels: shape.channels,
            height: shape.height,
            width: shape.width,
            train_images: self.train.len(),
            test_images: self.test.len(),
            test_pairs: self.test_pairs.as_ref().map_or(0, Vec::len),
            classes,
            file_errors,
            file_notes,
            problem,
        }
    }
}

/// About `wanted` images of `set`, each class in its share; the whole set when None or larger.
pub fn stratified_sample(set: ImageSet, wanted: Option<usize>) -> ImageSet {
    match wanted {
        Some(wanted) if wanted < set.len() => {
            set.split(wanted as f64 / set.len() as f64, SPLIT_SEED).1
        }
        _ => set,
    }
}

/// Up to `wanted` of the indices `0..len`, in a seeded random order.
pub fn sample_indices(len: usize, wanted: usize) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..len).collect();
    SeededRng::new(SPLIT_SEED).shuffle(&mut indices);
    indices.truncate(wanted);
    indices
}
