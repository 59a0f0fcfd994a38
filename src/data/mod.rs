//! Images as the model sees them: decoded, converted to the model's channel count and size,
//! scaled to 0..1, stored channel-first, with a class label each.

#[cfg(not(target_arch = "wasm32"))]
pub mod folder;
pub mod images;
pub mod mnist;

use serde::{Deserialize, Serialize};

use crate::rng::SeededRng;

/// Channels x height x width of every image in a set (and of the model's input).
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageShape {
    /// The built-in digits: 28x28 grey.
    pub const MNIST: ImageShape = ImageShape::new(1, 28, 28);

    pub const fn new(channels: usize, height: usize, width: usize) -> Self {
        Self {
            channels,
            height,
            width,
        }
    }

    pub fn pixels(&self) -> usize {
        self.channels * self.height * self.width
    }
}

/// Labelled images of one shape, pixels in 0..1, each image `shape.pixels()` floats, channel-first.
#[derive(Clone, Debug)]
pub struct ImageSet {
    pub shape: ImageShape,
    pub class_names: Vec<String>,
    pixels: Vec<f32>,
    labels: Vec<usize>,
}

impl ImageSet {
    pub fn new(shape: ImageShape, class_names: Vec<String>) -> Self {
        Self {
            shape,
            class_names,
            pixels: Vec::new(),
            labels: Vec::new(),
        }
    }

    /// Adds one image; `pixels` must hold `shape.pixels()` values and `label` index `class_names`.
    pub fn push(&mut self, pixels: &[f32], label: usize) {
        assert_eq!(pixels.len(), self.shape.pixels(), "image of the wrong size");
        assert!(label < self.class_names.len(), "label without a class");
        self.pixels.extend_from_slice(pixels);
        self.labels.push(label);
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    pub fn image(&self, index: usize) -> &[f32] {
        let size = self.shape.pixels();
        &self.pixels[index * size..(index + 1) * size]
    }

    /// The image as RGBA bytes (grey repeated in the three colours), shrunk by nearest pixel so
    /// neither side exceeds `max_side`: its width, height and bytes.
    pub fn rgba(&self, index: usize, max_side: usize) -> (usize, usize, Vec<u8>) {
        let shape = self.shape;
        let step = shape.height.max(shape.width).div_ceil(max_side).max(1);
        let (height, width) = (shape.height.div_ceil(step), shape.width.div_ceil(step));
        let plane = shape.height * shape.width;
        let image = self.image(index);
        let channel =
            |c: usize, p: usize| (image[c.min(shape.channels - 1) * plane + p] * 255.0) as u8;
        let rgba = (0..height * width)
            .map(|i| (i / width * step) * shape.width + (i % width) * step)
            .flat_map(|p| [channel(0, p), channel(1, p), channel(2, p), 255])
            .collect();
        (width, height, rgba)
    }

    /// Images per class, in class order.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.class_names.len()];
        for &label in &self.labels {
            counts[label] += 1;
        }
        counts
    }

    /// A new set made of the images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        let mut subset = ImageSet::new(self.shape, self.class_names.clone());
        for &index in indices {
            subset.push(self.image(index), self.labels[index]);
        }
        subset
    }

    /// Splits into `(rest, held_out)` with `held_out` taking `fraction` of each class (rounded,
    /// seeded), so both parts keep the class balance of the whole.
    pub fn split(&self, fraction: f64, seed: u64) -> (ImageSet, ImageSet) {
        let mut rng = SeededRng::new(seed);
        let mut rest = Vec::new();
        let mut held_out = Vec::new();
        for class in 0..self.class_names.len() {
            let mut members: Vec<usize> = (0..self.len())
                .filter(|&i| self.labels[i] == class)
                .collect();
            rng.shuffle(&mut members);
            let take = (members.len() as f64 * fraction).round() as usize;
            held_out.extend_from_slice(&members[..take]);
            rest.extend_from_slice(&members[take..]);
        }
        // Interleave the classes again so neither part is sorted by class.
        rng.shuffle(&mut rest);
        rng.shuffle(&mut held_out);
        (self.subset(&rest), self.subset(&held_out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered_set(per_class: usize, classes: usize) -> ImageSet {
        let names = (0..classes).map(|c| c.to_string()).collect();
        let mut set = ImageSet::new(ImageShape::new(1, 1, 1), names);
        for i in 0..per_class * classes {
            set.push(&[i as f32], i % classes);
        }
        set
    }

    #[test]
    fn split_is_stratified_disjoint_complete_and_seeded() {
        let set = numbered_set(10, 3);
        let (rest, held) = set.split(0.2, 5);
        assert_eq!(held.class_counts(), vec![2, 2, 2]);
        assert_eq!(rest.class_counts(), vec![8, 8, 8]);
        let mut ids: Vec<f32> = (0..rest.len()).map(|i| rest.image(i)[0]).collect();
        ids.extend((0..held.len()).map(|i| held.image(i)[0]));
        ids.sort_by(f32::total_cmp);
        assert_eq!(ids, (0..30).map(|i| i as f32).collect::<Vec<_>>());
        // Labels travel with their pixels.
        assert!((0..held.len()).all(|i| held.image(i)[0] as usize % 3 == held.labels()[i]));
        let ids_of = |part: &ImageSet| {
            (0..part.len())
                .map(|i| part.image(i)[0])
                .collect::<Vec<_>>()
        };
        assert_eq!(ids_of(&set.split(0.2, 5).1), ids_of(&held));
        assert_ne!(ids_of(&set.split(0.2, 6).1), ids_of(&held));
    }
}
