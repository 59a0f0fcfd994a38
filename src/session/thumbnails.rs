//! Images as the front ends draw them: RGBA bytes, optionally shrunk.

use super::messages::Thumbnail;
use crate::data::ImageSet;

pub fn thumbnail(set: &ImageSet, index: usize) -> Thumbnail {
    small_thumbnail(set, index, usize::MAX)
}

/// The image as RGBA, shrunk (nearest pixel) so neither side exceeds `max_side`.
pub fn small_thumbnail(set: &ImageSet, index: usize, max_side: usize) -> Thumbnail {
    let (width, height, rgba) = set.rgba(index, max_side);
    Thumbnail {
        width,
        height,
        rgba,
    }
}
