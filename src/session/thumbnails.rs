//! Images as the front ends draw them: RGBA bytes, optionally shrunk.

use super::messages::Thumbnail;
use crate::data::ImageSet;

pub fn thumbnail(set: &ImageSet, index: usize) -> Thumbnail {
    small_thumbnail(set, index, usize::MAX)
}

/// The image as RGBA, shrunk (nearest pixel) so neither side exceeds `max_side`.
pub fn small_thumbnail(set: &ImageSet, index: usize, max_side: usize) -> Thumbnail {
    let shape = set.shape;
    let step = shape.height.max(shape.width).div_ceil(max_side).max(1);
    let (height, width) = (shape.height.div_ceil(step), shape.width.div_ceil(step));
    let plane = shape.height * shape.width;
    let image = set.image(index);
    let channel = |c: usize, p: usize| (image[c.min(shape.channels - 1) * plane + p] * 255.0) as u8;
    let rgba = (0..height * width)
        .map(|i| (i / width * step) * shape.width + (i % width) * step)
        .flat_map(|p| [channel(0, p), channel(1, p), channel(2, p), 255])
        .collect();
    Thumbnail {
        width,
        height,
        rgba,
    }
}
