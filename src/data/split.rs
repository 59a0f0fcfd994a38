//! THE split policy: which images are held out of a set (for the test, for validation, or as a
//! sample), decided by each image's own key, so that an edit of the data moves (almost) nothing.
//!
//! - An image's key is a hash of its decoded pixels ([`ImageKey`]). Images with the same key
//!   (copies, under any name or class) and images of one group (the frames of one camera hold, the
//!   files of a group folder) form one *unit*, which always goes to one side whole: no test image
//!   has a twin in training.
//! - Each unit draws a rank from its key and the split's seed. Within each class the units of
//!   lowest rank are held out: `fraction` of its units, rounded (a unit counts once, however
//!   many images it holds; a class of 5 or more images in 2 or more units holds out at least
//!   one, and every class keeps at least one unit). So adding or removing an image moves at
//!   most one other unit of its class, the one at the edge of its share, and none of another
//!   class (unless the image is a copy of one in another class, whose unit it joins);
//!   reordering moves none.
//! - Both parts come in the units' rank order, not the order the images arrived in, so the same
//!   images give the same parts, pairs and figures in the page and on the command line.

use std::collections::HashMap;
use std::sync::Arc;

use xxhash_rust::xxh3::{Xxh3, xxh3_64, xxh3_64_with_seed};

/// A hash of an image's decoded pixels, at its own size, as 8-bit RGBA: files of the same
/// pixels have the same key whatever their names, formats or classes. Models keep the keys of the
/// images they trained on ([`crate::model_file::ModelInfo::seen_images`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageKey(pub u64);

impl ImageKey {
    /// The key of a decoded file.
    pub fn of_image(image: &image::DynamicImage) -> Self {
        use image::DynamicImage::*;
        let (width, height) = (image.width(), image.height());
        let mut hasher = key_hasher(width as usize, height as usize);
        let mut row = Vec::with_capacity(width as usize * 4);
        // Row by row, so that a large photo is not copied whole to be hashed.
        let mut hash_rows = |pixels: &[u8], channels: usize, to_rgba: fn(&[u8]) -> [u8; 4]| {
            for line in pixels.chunks_exact(width as usize * channels) {
                row.clear();
                row.extend(line.chunks_exact(channels).flat_map(to_rgba));
                hasher.update(&row);
            }
        };
        match image {
            ImageLuma8(grey) => hash_rows(grey.as_raw(), 1, |p| [p[0], p[0], p[0], 255]),
            ImageLumaA8(grey) => hash_rows(grey.as_raw(), 2, |p| [p[0], p[0], p[0], p[1]]),
            ImageRgb8(rgb) => hash_rows(rgb.as_raw(), 3, |p| [p[0], p[1], p[2], 255]),
            ImageRgba8(rgba) => hash_rows(rgba.as_raw(), 4, |p| [p[0], p[1], p[2], p[3]]),
            other => hash_rows(other.to_rgba8().as_raw(), 4, |p| [p[0], p[1], p[2], p[3]]),
        }
        Self(hasher.digest())
    }

    /// The key of an image given as the model takes it (channel-first bytes of `channels` 1 or
    /// 3): that of a file holding exactly these pixels.
    pub fn of_model_bytes(channels: usize, height: usize, width: usize, bytes: &[u8]) -> Self {
        let plane = height * width;
        let mut hasher = key_hasher(width, height);
        let mut row = Vec::with_capacity(width * 4);
        for y in 0..height {
            row.clear();
            for p in y * width..(y + 1) * width {
                let value = |c: usize| bytes[c.min(channels - 1) * plane + p];
                row.extend([value(0), value(1), value(2), 255]);
            }
            hasher.update(&row);
        }
        Self(hasher.digest())
    }
}

fn key_hasher(width: usize, height: usize) -> Xxh3 {
    let mut hasher = Xxh3::new();
    hasher.update(&(width as u32).to_le_bytes());
    hasher.update(&(height as u32).to_le_bytes());
    hasher
}

/// Written as 16 hexadecimal digits (in messages, where JavaScript's numbers would round it).
impl std::fmt::Display for ImageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for ImageKey {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match u64::from_str_radix(text, 16) {
            Ok(key) if text.len() == 16 => Ok(Self(key)),
            _ => Err(format!(
                "{text:?} is not an image key (16 hexadecimal digits)"
            )),
        }
    }
}

/// What a split knows of each image: its class, its key and its group.
pub struct SplitInput<'a> {
    pub labels: &'a [usize],
    pub class_names: &'a [String],
    pub keys: &'a [ImageKey],
    pub groups: &'a [Option<Arc<str>>],
}

/// The indices of the images left in, and of those held out, each in the units' rank order.
pub struct Split {
    pub rest: Vec<usize>,
    pub held: Vec<usize>,
}

/// Holds out about `fraction` of each class of `input`, unit by unit (the module's policy).
pub fn split(input: &SplitInput, fraction: f64, seed: u64) -> Split {
    let units = Units::of(input);
    let rank: Vec<u64> = units
        .keys
        .iter()
        .map(|key| xxh3_64_with_seed(&key.to_le_bytes(), seed))
        .collect();
    let mut members = vec![Vec::new(); units.keys.len()];
    for (image, &unit) in units.of.iter().enumerate() {
        members[unit].push(image);
    }
    // A unit belongs to the class of the smallest name among its images (copies may sit under
    // two classes), whatever order the classes arrived in.
    let class_of = |unit: usize| {
        members[unit]
            .iter()
            .map(|&image| &input.class_names[input.labels[image]])
            .min()
            .expect("a unit has an image")
    };
    let mut by_class: HashMap<&String, Vec<usize>> = HashMap::new();
    for unit in 0..members.len() {
        by_class.entry(class_of(unit)).or_default().push(unit);
    }
    let mut held_unit = vec![false; members.len()];
    for units_of_class in by_class.values_mut() {
        units_of_class.sort_by_key(|&unit| (rank[unit], units.keys[unit]));
        let sizes: Vec<usize> = units_of_class.iter().map(|&u| members[u].len()).collect();
        for &unit in &units_of_class[..held_units(&sizes, fraction)] {
            held_unit[unit] = true;
        }
    }
    let mut order: Vec<usize> = (0..input.labels.len()).collect();
    order.sort_by_key(|&image| {
        let unit = units.of[image];
        (
            rank[unit],
            units.keys[unit],
            input.keys[image],
            &input.class_names[input.labels[image]],
        )
    });
    let (held, rest) = order
        .into_iter()
        .partition(|&image| held_unit[units.of[image]]);
    Split { rest, held }
}

/// How many of a class's units (`sizes`: their images) to hold out: `fraction` of them, rounded,
/// at least one when the class has 5 images or more in 2 units or more, and never all of them.
/// Counted in units, not images, so that a unit added or removed moves at most one other across.
fn held_units(sizes: &[usize], fraction: f64) -> usize {
    let units = sizes.len();
    let images: usize = sizes.iter().sum();
    let least = usize::from(fraction > 0.0 && images >= 5 && units >= 2);
    let rounded = (units as f64 * fraction).round() as usize;
    rounded.max(least).min(units.saturating_sub(1))
}

/// Images joined into units: those of one key, and those of one group.
pub struct Units {
    /// The unit of each image.
    pub of: Vec<usize>,
    /// Each unit's key: the smallest of its images' keys, a group's image counting with its
    /// group's name, so that a unit's rank does not depend on the order of its images.
    keys: Vec<u64>,
}

impl Units {
    pub fn of(input: &SplitInput) -> Self {
        let count = input.keys.len();
        let mut parent: Vec<usize> = (0..count).collect();
        fn root(parent: &mut [usize], mut image: usize) -> usize {
            while parent[image] != image {
                parent[image] = parent[parent[image]];
                image = parent[image];
            }
            image
        }
        let mut first_of_key = HashMap::new();
        let mut first_of_group = HashMap::new();
        for image in 0..count {
            let mut join = |other: usize| {
                let (a, b) = (root(&mut parent, image), root(&mut parent, other));
                parent[a.max(b)] = a.min(b);
            };
            join(*first_of_key.entry(input.keys[image]).or_insert(image));
            if let Some(group) = &input.groups[image] {
                join(*first_of_group.entry(group.clone()).or_insert(image));
            }
        }
        let mut index_of_root = HashMap::new();
        let mut keys = Vec::new();
        let mut of = Vec::with_capacity(count);
        for image in 0..count {
            let own_key = match &input.groups[image] {
                Some(group) => xxh3_64(group.as_bytes()),
                None => input.keys[image].0,
            };
            let unit = *index_of_root
                .entry(root(&mut parent, image))
                .or_insert_with(|| {
                    keys.push(u64::MAX);
                    keys.len() - 1
                });
            keys[unit] = keys[unit].min(own_key);
            of.push(unit);
        }
        Self { of, keys }
    }

    pub fn count(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_class_holds_out_its_share_of_units_rounded() {
        // Single images: rounding.
        assert_eq!(held_units(&[1; 10], 0.2), 2);
        assert_eq!(held_units(&[1; 12], 0.2), 2);
        assert_eq!(held_units(&[1; 13], 0.2), 3);
        assert_eq!(held_units(&[1; 3], 0.2), 1);
        assert_eq!(held_units(&[1; 2], 0.2), 0);
        // A unit counts once: 20 % of 5 camera holds is one hold.
        assert_eq!(held_units(&[7, 7, 7, 7, 7], 0.2), 1);
        assert_eq!(held_units(&[7, 1, 1, 1], 0.5), 2);
        // Two holds of 7 frames: 0.4 rounds to none, but a class of 5 images or more holds one
        // out.
        assert_eq!(held_units(&[7, 7], 0.2), 1);
        // Never the whole class (one unit stays, a class of one unit keeps it), nor anything
        // at 0.
        assert_eq!(held_units(&[1, 1], 0.9), 1);
        assert_eq!(held_units(&[7], 0.6), 0);
        assert_eq!(held_units(&[1], 0.9), 0);
        assert_eq!(held_units(&[1; 10], 0.0), 0);
    }

    #[test]
    fn keys_are_those_of_the_pixels_as_rgba_whatever_their_encoding() {
        let grey = image::GrayImage::from_fn(3, 2, |x, y| image::Luma([(x * 40 + y) as u8]));
        let as_rgb = image::DynamicImage::ImageLuma8(grey.clone()).to_rgb8();
        let grey_key = ImageKey::of_image(&image::DynamicImage::ImageLuma8(grey.clone()));
        assert_eq!(
            grey_key,
            ImageKey::of_image(&image::DynamicImage::ImageRgb8(as_rgb))
        );
        assert_eq!(grey_key, ImageKey::of_model_bytes(1, 2, 3, grey.as_raw()));
        let mut other = grey.clone();
        other.put_pixel(2, 1, image::Luma([7]));
        assert_ne!(
            grey_key,
            ImageKey::of_image(&image::DynamicImage::ImageLuma8(other))
        );
        // The same bytes in another shape are another image.
        assert_ne!(grey_key, ImageKey::of_model_bytes(1, 3, 2, grey.as_raw()));
        assert_eq!(grey_key.to_string().parse(), Ok(grey_key));
        assert!("12".parse::<ImageKey>().is_err());
    }
}
