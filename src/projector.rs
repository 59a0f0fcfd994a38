//! Embeddings as the files the TensorFlow Embedding Projector opens: `vectors.tsv` (one
//! embedding a row), `metadata.tsv` (a header, then each image's class and part) and a sprite
//! (every image in one PNG grid, row-major in the order of the vectors), with the
//! `projector_config.json` that ties them together; and the four as one zip archive, for a
//! browser, which downloads one file at a time.

use std::io::{Cursor, Write};

use flate2::Crc;
use flate2::write::DeflateEncoder;

use image::{ImageFormat, RgbaImage, imageops};
use serde::Serialize;

use crate::data::ImageSet;
use crate::embeddings::Embeddings;

/// The projector reads sprites of at most 8192x8192 pixels.
pub const MAX_SPRITE_SIDE: usize = 8192;

pub const VECTORS_FILE: &str = "vectors.tsv";
pub const METADATA_FILE: &str = "metadata.tsv";
pub const SPRITE_FILE: &str = "sprite.png";
pub const CONFIG_FILE: &str = "projector_config.json";

/// The images of one part of the data (`train`, `test`) and their embeddings, row for row.
pub struct EmbeddedPart<'a> {
    pub name: &'a str,
    pub set: &'a ImageSet,
    pub embeddings: &'a Embeddings,
}

/// The projector's files, ready to be written side by side.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Serialize)]
pub struct ProjectorFiles {
    pub vectors_tsv: String,
    pub metadata_tsv: String,
    #[serde(with = "serde_bytes")]
    #[cfg_attr(test, ts(type = "Uint8Array"))]
    pub sprite_png: Vec<u8>,
    pub config_json: String,
    /// Rows of `vectors_tsv` and `metadata_tsv`: one per image.
    pub rows: usize,
    /// The side of each image in the sprite (shrunk so the grid fits the projector's limit).
    pub sprite_image_side: usize,
}

/// The projector's files for `parts`, in their order.
pub fn projector_files(parts: &[EmbeddedPart]) -> ProjectorFiles {
    let rows: usize = parts.iter().map(|part| part.set.len()).sum();
    let mut vectors_tsv = String::new();
    let mut metadata_tsv = String::from("class\tpart\n");
    for part in parts {
        assert_eq!(
            part.set.len(),
            part.embeddings.len(),
            "one embedding per image"
        );
        for index in 0..part.set.len() {
            let row: Vec<String> = part
                .embeddings
                .row(index)
                .iter()
                .map(f32::to_string)
                .collect();
            vectors_tsv.push_str(&row.join("\t"));
            vectors_tsv.push('\n');
            let class = &part.set.class_names[part.set.labels()[index]];
            metadata_tsv.push_str(&format!("{}\t{}\n", tsv_field(class), part.name));
        }
    }
    let (sprite_png, side) = sprite(parts, rows, MAX_SPRITE_SIDE);
    let config_json = serde_json::json!({
        "embeddings": [{
            "tensorName": "siamese-web embeddings",
            "tensorPath": VECTORS_FILE,
            "metadataPath": METADATA_FILE,
            "sprite": { "imagePath": SPRITE_FILE, "singleImageDim": [side, side] },
        }]
    })
    .to_string();
    ProjectorFiles {
        vectors_tsv,
        metadata_tsv,
        sprite_png,
        config_json,
        rows,
        sprite_image_side: side,
    }
}

/// The four files as one zip archive (deflated), as the page downloads them.
pub fn projector_archive(files: &ProjectorFiles) -> Vec<u8> {
    zip(&[
        (VECTORS_FILE, files.vectors_tsv.as_bytes()),
        (METADATA_FILE, files.metadata_tsv.as_bytes()),
        (SPRITE_FILE, &files.sprite_png),
        (CONFIG_FILE, files.config_json.as_bytes()),
    ])
}

/// A zip archive of `entries` (name, bytes), each deflated: local headers and data, then the
/// central directory that lists them, then its end record (PKWARE's APPNOTE, no zip64: every
/// size here is far under 4 GB).
fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    const VERSION: u16 = 20; // 2.0: deflate
    const DEFLATE: u16 = 8;
    const DATE_1980_01_01: u16 = (1 << 5) | 1;
    let mut archive = Vec::new();
    let mut directory = Vec::new();
    let put16 = |out: &mut Vec<u8>, value: u16| out.extend_from_slice(&value.to_le_bytes());
    let put32 = |out: &mut Vec<u8>, value: u32| out.extend_from_slice(&value.to_le_bytes());
    for (name, bytes) in entries {
        let mut crc = Crc::new();
        crc.update(bytes);
        let mut encoder = DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).expect("deflating into memory");
        let deflated = encoder.finish().expect("deflating into memory");
        let offset = archive.len() as u32;
        // What the local header and the directory entry both say of the file.
        let mut common = Vec::new();
        put16(&mut common, VERSION);
        put16(&mut common, 0); // flags
        put16(&mut common, DEFLATE);
        put16(&mut common, 0); // time
        put16(&mut common, DATE_1980_01_01);
        put32(&mut common, crc.sum());
        put32(&mut common, deflated.len() as u32);
        put32(&mut common, bytes.len() as u32);
        put16(&mut common, name.len() as u16);
        put16(&mut common, 0); // extra field
        put32(&mut archive, 0x0403_4b50);
        archive.extend_from_slice(&common);
        archive.extend_from_slice(name.as_bytes());
        archive.extend_from_slice(&deflated);
        put32(&mut directory, 0x0201_4b50);
        put16(&mut directory, VERSION); // made by
        directory.extend_from_slice(&common);
        put16(&mut directory, 0); // comment
        put16(&mut directory, 0); // disk
        put16(&mut directory, 0); // internal attributes
        put32(&mut directory, 0); // external attributes
        put32(&mut directory, offset);
        directory.extend_from_slice(name.as_bytes());
    }
    let directory_offset = archive.len() as u32;
    archive.extend_from_slice(&directory);
    put32(&mut archive, 0x0605_4b50);
    put16(&mut archive, 0); // this disk
    put16(&mut archive, 0); // the directory's disk
    put16(&mut archive, entries.len() as u16);
    put16(&mut archive, entries.len() as u16);
    put32(&mut archive, directory.len() as u32);
    put32(&mut archive, directory_offset);
    put16(&mut archive, 0); // comment
    archive
}

/// Tabs and line breaks in a class name would shift the projector's columns and rows.
fn tsv_field(text: &str) -> String {
    text.replace(['\t', '\n', '\r'], " ")
}

/// Every image in a square grid of `side`-pixel cells (the image centred, shrunk as the page's
/// thumbnails are when the grid would be wider than `max_side`), as PNG bytes.
fn sprite(parts: &[EmbeddedPart], rows: usize, max_side: usize) -> (Vec<u8>, usize) {
    let columns = (rows as f64).sqrt().ceil().max(1.0) as usize;
    let largest = parts
        .iter()
        .map(|part| part.set.shape.height.max(part.set.shape.width))
        .max()
        .unwrap_or(1);
    let side = largest.min(max_side / columns).max(1);
    let grid_rows = rows.div_ceil(columns).max(1);
    let mut canvas = RgbaImage::new((columns * side) as u32, (grid_rows * side) as u32);
    let images = parts
        .iter()
        .flat_map(|part| (0..part.set.len()).map(move |index| (part.set, index)));
    for (cell, (set, index)) in images.enumerate() {
        let (width, height, rgba) = set.rgba(index, side);
        let image = RgbaImage::from_raw(width as u32, height as u32, rgba)
            .expect("width x height RGBA pixels");
        let left = (cell % columns) * side + (side - width) / 2;
        let top = (cell / columns) * side + (side - height) / 2;
        imageops::replace(&mut canvas, &image, left as i64, top as i64);
    }
    let mut png = Cursor::new(Vec::new());
    canvas
        .write_to(&mut png, ImageFormat::Png)
        .expect("a PNG encodes in memory");
    (png.into_inner(), side)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ImageShape;

    /// Two 2x2 grey images: a diagonal of class "a", a white one of class "b\tc".
    fn part_set() -> ImageSet {
        let mut set = ImageSet::new(ImageShape::new(1, 2, 2), vec!["a".into(), "b\tc".into()]);
        set.push(&[0.0, 1.0, 1.0, 0.0], 0);
        set.push(&[1.0, 1.0, 1.0, 1.0], 1);
        set
    }

    #[test]
    fn rows_metadata_and_sprite_line_up() {
        let train = part_set();
        let mut test = ImageSet::new(train.shape, train.class_names.clone());
        test.push(&[0.5; 4], 1);
        let train_embeddings = Embeddings::new(2, vec![0.5, -1.0, 2.0, 0.25], vec![0, 1]);
        let test_embeddings = Embeddings::new(2, vec![3.0, 4.0], vec![1]);
        let files = projector_files(&[
            EmbeddedPart {
                name: "train",
                set: &train,
                embeddings: &train_embeddings,
            },
            EmbeddedPart {
                name: "test",
                set: &test,
                embeddings: &test_embeddings,
            },
        ]);
        assert_eq!(files.vectors_tsv, "0.5\t-1\n2\t0.25\n3\t4\n");
        assert_eq!(
            files.metadata_tsv,
            "class\tpart\na\ttrain\nb c\ttrain\nb c\ttest\n"
        );
        assert_eq!(files.rows, 3);
        assert_eq!(files.sprite_image_side, 2);
        // Three images in a 2x2 grid of 2-pixel cells: image 0's diagonal, image 1 white,
        // image 2 mid grey (0.5 kept as its nearest byte, 128, as the page's thumbnails show
        // it), the fourth cell empty.
        let sprite = image::load_from_memory(&files.sprite_png)
            .unwrap()
            .to_rgba8();
        assert_eq!(sprite.dimensions(), (4, 4));
        let grey = |x, y| sprite.get_pixel(x, y)[0];
        assert_eq!(
            [grey(0, 0), grey(1, 0), grey(0, 1), grey(1, 1)],
            [0, 255, 255, 0]
        );
        assert_eq!([grey(2, 0), grey(3, 1)], [255, 255]);
        assert_eq!([grey(0, 2), grey(1, 3)], [128, 128]);
        assert_eq!(sprite.get_pixel(3, 3)[3], 0);
        let config: serde_json::Value = serde_json::from_str(&files.config_json).unwrap();
        assert_eq!(
            config["embeddings"][0]["sprite"]["singleImageDim"],
            serde_json::json!([2, 2])
        );
    }

    /// Reads every entry back through the central directory, as an unzip tool does: its name,
    /// and the bytes its local header points at, inflated and checked against its CRC-32.
    fn unzipped(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
        let u16_at = |at: usize| u16::from_le_bytes([archive[at], archive[at + 1]]) as usize;
        let u32_at = |at: usize| u32::from_le_bytes(archive[at..at + 4].try_into().unwrap());
        let end = archive.len() - 22;
        assert_eq!(u32_at(end), 0x0605_4b50, "the end record is last");
        let mut entry = u32_at(end + 16) as usize;
        (0..u16_at(end + 10))
            .map(|_| {
                assert_eq!(u32_at(entry), 0x0201_4b50);
                let (crc, name_len) = (u32_at(entry + 16), u16_at(entry + 28));
                let name = String::from_utf8(archive[entry + 46..entry + 46 + name_len].to_vec());
                let local = u32_at(entry + 42) as usize;
                assert_eq!(u32_at(local), 0x0403_4b50);
                let start = local + 30 + u16_at(local + 26) + u16_at(local + 28);
                let deflated = &archive[start..start + u32_at(local + 18) as usize];
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(
                    &mut flate2::read::DeflateDecoder::new(deflated),
                    &mut bytes,
                )
                .unwrap();
                assert_eq!(bytes.len(), u32_at(local + 22) as usize);
                let mut check = Crc::new();
                check.update(&bytes);
                assert_eq!(check.sum(), crc);
                entry += 46 + name_len;
                (name.unwrap(), bytes)
            })
            .collect()
    }

    #[test]
    fn the_archive_holds_the_four_files_as_they_are() {
        let set = part_set();
        let embeddings = Embeddings::new(2, vec![0.5, -1.0, 2.0, 0.25], vec![0, 1]);
        let files = projector_files(&[EmbeddedPart {
            name: "train",
            set: &set,
            embeddings: &embeddings,
        }]);
        let entries = unzipped(&projector_archive(&files));
        let names: Vec<&str> = entries.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [VECTORS_FILE, METADATA_FILE, SPRITE_FILE, CONFIG_FILE]
        );
        assert_eq!(entries[0].1, files.vectors_tsv.as_bytes());
        assert_eq!(entries[1].1, files.metadata_tsv.as_bytes());
        assert_eq!(entries[2].1, files.sprite_png);
        assert_eq!(entries[3].1, files.config_json.as_bytes());
    }

    #[test]
    fn a_large_set_shrinks_its_cells_to_fit_the_limit() {
        // Five 28x28 images take 3 columns and 2 rows; within 30 pixels each cell is 10 pixels,
        // and an image shrinks (every third pixel) to 10x10.
        let shape = ImageShape::new(1, 28, 28);
        let mut set = ImageSet::new(shape, vec!["x".into()]);
        for _ in 0..5 {
            set.push(&vec![1.0; shape.pixels()], 0);
        }
        let embeddings = Embeddings::new(1, vec![0.0; 5], vec![0; 5]);
        let part = EmbeddedPart {
            name: "train",
            set: &set,
            embeddings: &embeddings,
        };
        let (png, side) = sprite(&[part], 5, 30);
        assert_eq!(side, 10);
        let sprite = image::load_from_memory(&png).unwrap().to_rgba8();
        assert_eq!(sprite.dimensions(), (30, 20));
        let white_cells = (0..6)
            .filter(|cell| sprite.get_pixel(cell % 3 * 10 + 9, cell / 3 * 10 + 9)[0] == 255)
            .count();
        assert_eq!(white_cells, 5);
    }
}
