//! Images as the model sees them: decoded, converted to the model's channel count and size,
//! scaled to 0..1, stored channel-first, with a class label each.

#[cfg(not(target_arch = "wasm32"))]
pub mod folder;
pub mod images;
pub mod mnist;
pub mod pixels;
pub mod split;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use pixels::{FileKey, PixelStore};
use split::{ImageKey, SplitInput, Units};

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

/// Where an image came from, as the split and the reports need it: its key (a hash of its
/// decoded pixels), the group it belongs to (a camera hold, a group folder) and its file's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageOrigin {
    pub key: ImageKey,
    pub group: Option<Arc<str>>,
    pub file_name: Option<Arc<str>>,
}

impl ImageOrigin {
    /// An image of no file and no group.
    pub fn keyed(key: ImageKey) -> Self {
        Self {
            key,
            group: None,
            file_name: None,
        }
    }
}

/// Labelled images of one shape, channel-first, values in 0..1 (kept as bytes). Its rows index a
/// pixel store that subsets and splits share, so the training, validation and test parts of a
/// set cost no second copy of its pixels.
#[derive(Clone)]
pub struct ImageSet {
    pub shape: ImageShape,
    pub class_names: Vec<String>,
    store: Arc<PixelStore>,
    rows: Vec<usize>,
    labels: Vec<usize>,
    origins: Vec<ImageOrigin>,
}

impl std::fmt::Debug for ImageSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageSet")
            .field("shape", &self.shape)
            .field("class_names", &self.class_names)
            .field("images", &self.len())
            .field("store", &self.store.place())
            .finish()
    }
}

impl ImageSet {
    /// An empty set whose pixels are kept in memory.
    pub fn new(shape: ImageShape, class_names: Vec<String>) -> Self {
        Self::with_store(shape, class_names, PixelStore::in_memory(shape.pixels()))
    }

    /// An empty set whose images go to `store` (made for `shape`).
    pub fn with_store(shape: ImageShape, class_names: Vec<String>, store: PixelStore) -> Self {
        assert_eq!(
            store.row_bytes(),
            shape.pixels(),
            "a store for another shape"
        );
        Self {
            shape,
            class_names,
            store: Arc::new(store),
            rows: Vec::new(),
            labels: Vec::new(),
            origins: Vec::new(),
        }
    }

    /// Adds one image of no file; `pixels` must hold `shape.pixels()` values (0..1) and `label`
    /// index `class_names`. Its key is that of a file of exactly these pixels.
    pub fn push(&mut self, pixels: &[f32], label: usize) {
        let bytes = pixels::to_bytes(pixels);
        let shape = self.shape;
        let key = ImageKey::of_model_bytes(shape.channels, shape.height, shape.width, &bytes);
        self.push_bytes(&bytes, label, ImageOrigin::keyed(key), None);
    }

    /// Adds the decoded image of the file with `file_key`, unless a file of the same bytes is
    /// stored already (earlier in this load, or in an earlier run's disk cache): then the set
    /// takes that row and stores nothing new.
    pub fn push_file(
        &mut self,
        file_key: FileKey,
        label: usize,
        pixels: &[f32],
        origin: ImageOrigin,
    ) {
        match self.store.find(&file_key) {
            Some(row) => self.push_stored(row, label, origin),
            None => self.push_bytes(&pixels::to_bytes(pixels), label, origin, Some(file_key)),
        }
    }

    /// Adds the image the store already holds at `row` (found by [`ImageSet::stored_row`]).
    pub fn push_stored(&mut self, row: usize, label: usize, origin: ImageOrigin) {
        assert!(label < self.class_names.len(), "label without a class");
        assert!(row < self.store.rows(), "row {row} is not stored");
        self.rows.push(row);
        self.labels.push(label);
        self.origins.push(origin);
    }

    /// The store's row holding the image of the file with `key`, when it was stored before (it
    /// will not be decoded again), and that image's key.
    pub fn stored_row(&self, key: &FileKey) -> Option<(usize, ImageKey)> {
        self.store
            .find(key)
            .map(|row| (row, self.store.image_key(row)))
    }

    /// Images in the store, this set's and others' (a disk cache keeps those of earlier runs).
    pub fn stored_images(&self) -> usize {
        self.store.rows()
    }

    fn push_bytes(
        &mut self,
        bytes: &[u8],
        label: usize,
        origin: ImageOrigin,
        file_key: Option<FileKey>,
    ) {
        assert!(label < self.class_names.len(), "label without a class");
        let row = self.own_store().append_bytes(bytes, file_key, origin.key);
        self.rows.push(row);
        self.labels.push(label);
        self.origins.push(origin);
    }

    /// The store, to append to: a set that shares its store with a subset first copies its own
    /// images into memory, so the subset never sees images it was not made with.
    fn own_store(&mut self) -> &mut PixelStore {
        if Arc::get_mut(&mut self.store).is_none() {
            let mut own = PixelStore::in_memory(self.shape.pixels());
            let mut bytes = vec![0; self.shape.pixels()];
            for (row, origin) in self.rows.iter_mut().zip(&self.origins) {
                self.store.read(*row, &mut bytes);
                *row = own.append_bytes(&bytes, None, origin.key);
            }
            self.store = Arc::new(own);
        }
        Arc::get_mut(&mut self.store).expect("a store of its own")
    }

    /// Where the pixels are kept, for people: "memory", or the cache file.
    pub fn place(&self) -> String {
        self.store.place()
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

    /// Where each image came from: its key, group and file.
    pub fn origins(&self) -> &[ImageOrigin] {
        &self.origins
    }

    /// The image at `index`, as the model takes it: `shape.pixels()` values in 0..1.
    pub fn image(&self, index: usize) -> Vec<f32> {
        self.images(&[index])
    }

    /// The images at `indices`, one after another, as [`ImageSet::image`] gives each.
    pub fn images(&self, indices: &[usize]) -> Vec<f32> {
        let mut values = Vec::with_capacity(indices.len() * self.shape.pixels());
        let mut bytes = vec![0; self.shape.pixels()];
        for &index in indices {
            self.store.read(self.rows[index], &mut bytes);
            values.extend(bytes.iter().map(|&b| f32::from(b) / 255.0));
        }
        values
    }

    fn image_bytes(&self, index: usize) -> Vec<u8> {
        let mut bytes = vec![0; self.shape.pixels()];
        self.store.read(self.rows[index], &mut bytes);
        bytes
    }

    /// The image as RGBA bytes (grey repeated in the three colours), shrunk by nearest pixel so
    /// neither side exceeds `max_side`: its width, height and bytes.
    pub fn rgba(&self, index: usize, max_side: usize) -> (usize, usize, Vec<u8>) {
        let shape = self.shape;
        let step = shape.height.max(shape.width).div_ceil(max_side).max(1);
        let (height, width) = (shape.height.div_ceil(step), shape.width.div_ceil(step));
        let plane = shape.height * shape.width;
        let image = self.image_bytes(index);
        let channel = |c: usize, p: usize| image[c.min(shape.channels - 1) * plane + p];
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

    /// The images not of the classes named in `names` (a new set sharing these pixels).
    pub fn without_classes(&self, names: &[String]) -> ImageSet {
        let kept: Vec<usize> = (0..self.len())
            .filter(|&i| !names.contains(&self.class_names[self.labels[i]]))
            .collect();
        self.subset(&kept)
    }

    /// A new set made of the images at `indices`, in that order, sharing this set's pixels.
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        ImageSet {
            shape: self.shape,
            class_names: self.class_names.clone(),
            store: Arc::clone(&self.store),
            rows: indices.iter().map(|&i| self.rows[i]).collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            origins: indices.iter().map(|&i| self.origins[i].clone()).collect(),
        }
    }

    fn split_input(&self) -> (Vec<ImageKey>, Vec<Option<Arc<str>>>) {
        self.origins
            .iter()
            .map(|origin| (origin.key, origin.group.clone()))
            .unzip()
    }

    /// Splits into `(rest, held_out)` with `held_out` taking about `fraction` of each class by
    /// the split policy of [`split`]: image by image from their keys and `seed`, copies and
    /// groups whole, each class within rounding of its share.
    pub fn split(&self, fraction: f64, seed: u64) -> (ImageSet, ImageSet) {
        let (keys, groups) = self.split_input();
        let input = SplitInput {
            labels: &self.labels,
            class_names: &self.class_names,
            keys: &keys,
            groups: &groups,
        };
        let parts = split::split(&input, fraction, seed);
        (self.subset(&parts.rest), self.subset(&parts.held))
    }

    /// The groups of two images or more that the split keeps whole: a group (a camera hold, a
    /// group folder) or the copies of one image.
    pub fn groups(&self) -> usize {
        let (keys, groups) = self.split_input();
        let units = Units::of(&SplitInput {
            labels: &self.labels,
            class_names: &self.class_names,
            keys: &keys,
            groups: &groups,
        });
        let mut sizes = vec![0usize; units.count()];
        for &unit in &units.of {
            sizes[unit] += 1;
        }
        sizes.iter().filter(|&&size| size >= 2).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered_set(per_class: usize, classes: usize) -> ImageSet {
        let names = (0..classes).map(|c| c.to_string()).collect();
        let mut set = ImageSet::new(ImageShape::new(1, 1, 1), names);
        for i in 0..per_class * classes {
            set.push(&[i as f32 / 255.0], i % classes);
        }
        set
    }

    #[test]
    fn without_classes_keeps_the_images_of_the_others_in_order() {
        let set = numbered_set(2, 3);
        let kept = set.without_classes(&["1".into()]);
        assert_eq!(kept.labels(), [0, 2, 0, 2]);
        assert_eq!(kept.image(1), [2.0 / 255.0]);
        assert_eq!(kept.class_names, set.class_names);
    }

    #[test]
    fn split_is_stratified_disjoint_complete_and_seeded() {
        let set = numbered_set(10, 3);
        let (rest, held) = set.split(0.2, 5);
        assert_eq!(held.class_counts(), vec![2, 2, 2]);
        assert_eq!(rest.class_counts(), vec![8, 8, 8]);
        let ids_of = |part: &ImageSet| {
            (0..part.len())
                .map(|i| (part.image(i)[0] * 255.0).round() as usize)
                .collect::<Vec<_>>()
        };
        let mut ids = ids_of(&rest);
        ids.extend(ids_of(&held));
        ids.sort();
        assert_eq!(ids, (0..30).collect::<Vec<_>>());
        // Labels travel with their pixels.
        assert!((0..held.len()).all(|i| ids_of(&held)[i] % 3 == held.labels()[i]));
        assert_eq!(ids_of(&set.split(0.2, 5).1), ids_of(&held));
        assert_ne!(ids_of(&set.split(0.2, 6).1), ids_of(&held));
    }

    /// Classes of distinct images, `sizes[c]` of class `c`: each image's two pixels spell its id.
    fn distinct_set(sizes: &[usize]) -> ImageSet {
        let names = (0..sizes.len()).map(|c| c.to_string()).collect();
        let mut set = ImageSet::new(ImageShape::new(1, 1, 2), names);
        let mut id = 0;
        for (class, &size) in sizes.iter().enumerate() {
            for _ in 0..size {
                push_id(&mut set, id, class);
                id += 1;
            }
        }
        set
    }

    fn push_id(set: &mut ImageSet, id: usize, class: usize) {
        set.push(
            &[(id / 256) as f32 / 255.0, (id % 256) as f32 / 255.0],
            class,
        );
    }

    fn id_of(set: &ImageSet, index: usize) -> usize {
        let image = set.image(index);
        (image[0] * 255.0).round() as usize * 256 + (image[1] * 255.0).round() as usize
    }

    /// Each image's id, its class and whether `split` held it out.
    fn parts(set: &ImageSet, fraction: f64, seed: u64) -> Vec<(usize, usize, bool)> {
        let (rest, held) = set.split(fraction, seed);
        let mut parts: Vec<_> = [(&rest, false), (&held, true)]
            .into_iter()
            .flat_map(|(part, held)| {
                (0..part.len()).map(move |i| (id_of(part, i), part.labels()[i], held))
            })
            .collect();
        parts.sort();
        parts
    }

    /// The ids in both splits whose part differs, with their classes.
    fn moved(
        before: &[(usize, usize, bool)],
        after: &[(usize, usize, bool)],
    ) -> Vec<(usize, usize)> {
        before
            .iter()
            .filter(|(id, _, held)| after.iter().any(|(a, _, h)| a == id && h != held))
            .map(|&(id, class, _)| (id, class))
            .collect()
    }

    #[test]
    fn adding_removing_or_reordering_images_moves_no_other_across_the_split() {
        let set = distinct_set(&[50, 50, 50]);
        let before = parts(&set, 0.2, 1);
        // One image more in class 1: only an image of class 1 at the edge of its share may
        // move (its share grows by one every five images).
        let mut added = set.clone();
        push_id(&mut added, 1000, 1);
        let after = parts(&added, 0.2, 1);
        let moved_by_add = moved(&before, &after);
        assert!(
            moved_by_add.len() <= 1 && moved_by_add.iter().all(|&(_, c)| c == 1),
            "{moved_by_add:?}"
        );
        // One image fewer in class 2, then every image in the reverse order.
        let kept: Vec<usize> = (0..set.len()).filter(|&i| i != 120).collect();
        let after = parts(&set.subset(&kept), 0.2, 1);
        let moved_by_removal = moved(&before, &after);
        assert!(
            moved_by_removal.len() <= 1 && moved_by_removal.iter().all(|&(_, c)| c == 2),
            "{moved_by_removal:?}"
        );
        let reversed: Vec<usize> = (0..set.len()).rev().collect();
        assert_eq!(parts(&set.subset(&reversed), 0.2, 1), before);
    }

    #[test]
    fn copies_of_an_image_fall_on_its_side_of_the_split() {
        let mut set = distinct_set(&[50, 50, 50]);
        // 20 copies, under new names, beside their originals (ids 0, 7, 14...).
        for copy in 0..20 {
            push_id(&mut set, copy * 7, copy * 7 / 50);
        }
        let parts = parts(&set, 0.2, 1);
        for copy in 0..20 {
            let sides: Vec<bool> = parts
                .iter()
                .filter(|(id, _, _)| *id == copy * 7)
                .map(|&(_, _, held)| held)
                .collect();
            assert_eq!(sides.len(), 2);
            assert_eq!(sides[0], sides[1], "image {} and its copy", copy * 7);
        }
    }

    /// Adds the image `id` of `class` to the group `group`, as a file of its own.
    fn push_grouped(set: &mut ImageSet, id: usize, class: usize, group: &str) {
        let pixels = [(id / 256) as f32 / 255.0, (id % 256) as f32 / 255.0];
        let bytes = pixels::to_bytes(&pixels);
        let origin = ImageOrigin {
            key: ImageKey::of_model_bytes(1, 1, 2, &bytes),
            group: Some(group.into()),
            file_name: None,
        };
        let file = FileKey::of(format!("{group}/{id}").as_bytes());
        set.push_file(file, class, &pixels, origin);
    }

    #[test]
    fn a_group_goes_to_one_side_whole_and_moves_at_most_one_other_unit() {
        let set = distinct_set(&[20, 20]);
        let before = parts(&set, 0.2, 1);
        // Seven frames of one camera hold of class 0, in turn each of twelve holds; the group
        // counts once in its class's share, also when it ranks among the held-out units.
        let mut held_holds = 0;
        for n in 0..40 {
            let hold = format!("hold {n}");
            let mut grouped = set.clone();
            for frame in 0..7 {
                push_grouped(&mut grouped, 1000 + 10 * n + frame, 0, &hold);
            }
            let after = parts(&grouped, 0.2, 1);
            let sides: Vec<bool> = after
                .iter()
                .filter(|(id, _, _)| *id >= 1000)
                .map(|&(_, _, held)| held)
                .collect();
            assert_eq!(sides.len(), 7);
            assert!(
                sides.iter().all(|&held| held == sides[0]),
                "{hold}: {sides:?}"
            );
            held_holds += usize::from(sides[0]);
            let moved = moved(&before, &after);
            assert!(
                moved.len() <= 1 && moved.iter().all(|&(_, c)| c == 0),
                "{hold}: {moved:?}"
            );
            // Removed again, the others are where they were before it came.
            assert_eq!(
                parts(&grouped.subset(&(0..40).collect::<Vec<_>>()), 0.2, 1),
                before
            );
        }
        assert!(
            held_holds > 0,
            "no hold was held out: the case is not tested"
        );
    }

    #[test]
    fn a_class_of_one_group_is_never_held_out_whole() {
        let mut set = distinct_set(&[0, 10]);
        for frame in 0..7 {
            push_grouped(&mut set, 100 + frame, 0, "the only hold");
        }
        let (rest, held) = set.split(0.6, 3);
        assert_eq!((rest.class_counts()[0], held.class_counts()[0]), (7, 0));
        assert_eq!(held.class_counts()[1], 6);
    }

    #[test]
    fn every_class_keeps_its_share_within_rounding() {
        let set = distinct_set(&[50, 7, 5, 3, 2, 1]);
        for seed in 0..20 {
            let (rest, held) = set.split(0.2, seed);
            assert_eq!(held.class_counts(), [10, 1, 1, 1, 0, 0], "seed {seed}");
            assert_eq!(rest.class_counts(), [40, 6, 4, 2, 2, 1], "seed {seed}");
        }
    }

    #[test]
    fn a_subset_shares_the_pixels_and_keeps_its_images_when_its_parent_grows() {
        let mut set = numbered_set(2, 2);
        let subset = set.subset(&[3, 0]);
        assert!(Arc::ptr_eq(&set.store, &subset.store));
        set.push(&[1.0], 1);
        assert!(!Arc::ptr_eq(&set.store, &subset.store));
        assert_eq!(
            (set.len(), set.image(4), set.image(3)),
            (5, vec![1.0], vec![3.0 / 255.0])
        );
        assert_eq!(
            (subset.image(0), subset.image(1)),
            (vec![3.0 / 255.0], vec![0.0])
        );
    }

    #[test]
    fn a_file_seen_before_is_not_stored_again() {
        let mut set = ImageSet::new(ImageShape::new(1, 1, 1), vec!["a".into(), "b".into()]);
        let key = FileKey::of(b"file");
        let origin = ImageOrigin::keyed(ImageKey(7));
        set.push_file(key, 0, &[0.2], origin.clone());
        assert_eq!(set.stored_row(&key), Some((0, ImageKey(7))));
        // The same bytes again (another copy of the file, under another class): its row is
        // shared, the new pixels are not stored.
        set.push_file(key, 1, &[0.9], origin.clone());
        set.push_stored(0, 1, origin.clone());
        assert_eq!((set.len(), set.labels()), (3, &[0, 1, 1][..]));
        assert_eq!(set.stored_images(), 1);
        assert_eq!((set.image(1), set.image(2)), (set.image(0), set.image(0)));
        set.push_file(FileKey::of(b"other"), 1, &[0.9], origin);
        assert_eq!(
            (set.stored_images(), set.image(3)),
            (2, vec![230.0 / 255.0])
        );
    }
}
