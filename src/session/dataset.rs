//! The data of a session and every policy about which images each figure is measured on: the
//! train/test split (by each image's key: [`crate::data::split`]), the test part a model is
//! measured on (without the images it trained on, its test pairs balanced over the classes it
//! was trained on), and the samples the analysis classifies.

use std::collections::HashMap;

use super::messages::{ClassSummary, DatasetSummary};
use super::thumbnails::thumbnail;
use crate::data::ImageSet;
use crate::data::mnist::mnist_train_test;
use crate::model_file::SeenImages;
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
/// Images named in the warnings about copies under two classes, at most.
const DUPLICATES_NAMED: usize = 20;

/// Training and test images.
pub struct Dataset {
    /// For people: "MNIST digits", "your images (120 files)".
    pub name: String,
    pub train: ImageSet,
    pub test: ImageSet,
}

/// The test images a model is measured on, and the test pairs every pair figure uses.
#[derive(Clone)]
pub struct TestPart {
    /// The data's test images, less those the model trained or validated on.
    pub images: ImageSet,
    /// How many test images the model had seen and were left out; None when the model does not
    /// say what it saw (a file of an earlier version), so nothing could be left out.
    pub seen_left_out: Option<usize>,
    /// Drawn from the images of the classes the model was trained on, one similar and one
    /// dissimilar partner for each (so half of them similar), indexing `images`; the error says
    /// why there are none, and then no pair figure is shown.
    pub pairs: Result<Vec<Pair>, PairError>,
}

impl TestPart {
    pub fn pair_count(&self) -> usize {
        self.pairs.as_ref().map_or(0, Vec::len)
    }

    pub fn similar_pairs(&self) -> usize {
        self.pairs.as_ref().map_or(0, |pairs| {
            pairs.iter().filter(|pair| !pair.dissimilar).count()
        })
    }

    /// Why there are no test pair figures, when there are none.
    pub fn no_pairs_reason(&self) -> Option<String> {
        let err = self.pairs.as_ref().err()?;
        let seen = match self.seen_left_out {
            Some(left_out) if left_out > 0 => {
                format!(", after the {left_out} the model trained on were left out")
            }
            _ => String::new(),
        };
        Some(format!(
            "the test part ({} of the images, held out of training{seen}) cannot make both \
             kinds of pair ({err}), so no test pair figures are shown: add more images to each \
             class",
            self.images.len()
        ))
    }
}

impl Dataset {
    pub fn new(name: String, train: ImageSet, test: ImageSet) -> Self {
        Self { name, train, test }
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

    /// What a model trained on this data without the `held_out` classes sees: the training
    /// part of the trained classes (its training and validation images).
    pub fn training_images(&self, held_out: &[String]) -> SeenImages {
        SeenImages::of(&self.train.without_classes(held_out))
    }

    /// The test part for a model that saw `seen` (None: it does not say) and was trained
    /// without the `held_out` classes.
    pub fn test_part(&self, seen: Option<&SeenImages>, held_out: &[String]) -> TestPart {
        let unseen: Vec<usize> = (0..self.test.len())
            .filter(|&i| seen.is_none_or(|seen| !seen.contains(self.test.origins()[i].key)))
            .collect();
        let images = self.test.subset(&unseen);
        let trained: Vec<usize> = (0..images.len())
            .filter(|&i| !held_out.contains(&images.class_names[images.labels()[i]]))
            .collect();
        let trained_images = images.subset(&trained);
        let pairs = PairSampler::with_seed(
            trained_images.labels(),
            &trained_images.class_names,
            SPLIT_SEED,
        )
        .map(|sampler| {
            sampler
                .epoch_pairs(0)
                .into_iter()
                .map(|pair| Pair {
                    left: trained[pair.left],
                    right: trained[pair.right],
                    dissimilar: pair.dissimilar,
                })
                .collect()
        });
        TestPart {
            seen_left_out: seen.map(|_| self.test.len() - images.len()),
            images,
            pairs,
        }
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
            train_groups: self.train.groups(),
            test_groups: self.test.groups(),
            test_pairs: self.test_part(None, &[]).pair_count(),
            classes,
            file_errors,
            file_notes,
            duplicates: self.copies_under_two_classes(),
            problem,
        }
    }

    /// A warning for each image that sits under two classes or more (the same pixels, in files
    /// of any names): the user decides which class it belongs to.
    fn copies_under_two_classes(&self) -> Vec<String> {
        let mut by_key: HashMap<_, Vec<(&ImageSet, usize)>> = HashMap::new();
        for set in [&self.train, &self.test] {
            for (index, origin) in set.origins().iter().enumerate() {
                by_key.entry(origin.key).or_default().push((set, index));
            }
        }
        let name = |(set, index): (&ImageSet, usize)| {
            let class = &set.class_names[set.labels()[index]];
            match &set.origins()[index].file_name {
                Some(file) => format!("{file} ({class})"),
                None => format!("an image of {class}"),
            }
        };
        let mut warnings: Vec<String> = by_key
            .into_values()
            .filter(|images| {
                let label = |&(set, index): &(&ImageSet, usize)| set.labels()[index];
                images.iter().any(|image| label(image) != label(&images[0]))
            })
            .map(|images| {
                let names: Vec<String> = images.into_iter().map(name).collect();
                format!(
                    "{} are the same image under different classes: it counts as each of them \
                     (delete the copies that are wrong)",
                    names.join(" and ")
                )
            })
            .collect();
        warnings.sort();
        if warnings.len() > DUPLICATES_NAMED {
            let more = warnings.len() - DUPLICATES_NAMED;
            warnings.truncate(DUPLICATES_NAMED);
            warnings.push(format!("and {more} more images under different classes"));
        }
        warnings
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
