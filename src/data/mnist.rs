//! The built-in digits: 10,000 MNIST images in `assets/mnist-10k.bin.gz` (layout and provenance
//! in `scripts/convert_mnist.py` and `assets/README.md`).

use std::io::Read;

use flate2::read::GzDecoder;

use super::{ImageSet, ImageShape};

const MAGIC: &[u8; 8] = b"SMNIST01";
const HEADER_LEN: usize = 16;

/// Parses the gzipped asset into a 28x28x1 set with classes "0".."9".
pub fn parse_mnist(gzipped: &[u8]) -> Result<ImageSet, String> {
    let mut raw = Vec::new();
    GzDecoder::new(gzipped)
        .read_to_end(&mut raw)
        .map_err(|err| format!("the MNIST asset is not valid gzip: {err}"))?;
    if raw.len() < HEADER_LEN || &raw[..8] != MAGIC {
        return Err("the MNIST asset has no SMNIST01 header".into());
    }
    let count = u32::from_le_bytes(raw[8..12].try_into().unwrap()) as usize;
    let rows = u16::from_le_bytes(raw[12..14].try_into().unwrap()) as usize;
    let cols = u16::from_le_bytes(raw[14..16].try_into().unwrap()) as usize;
    let shape = ImageShape::new(1, rows, cols);
    if raw.len() != HEADER_LEN + count * (1 + shape.pixels()) {
        return Err(format!(
            "the MNIST asset is truncated: {} bytes for {count} images",
            raw.len()
        ));
    }
    let (labels, pixels) = raw[HEADER_LEN..].split_at(count);
    let class_names = (0..10).map(|digit| digit.to_string()).collect();
    let mut set = ImageSet::new(shape, class_names);
    let mut image = vec![0.0; shape.pixels()];
    for (index, &label) in labels.iter().enumerate() {
        if label > 9 {
            return Err(format!("the MNIST asset labels image {index} as {label}"));
        }
        let bytes = &pixels[index * shape.pixels()..(index + 1) * shape.pixels()];
        for (value, &byte) in image.iter_mut().zip(bytes) {
            *value = f32::from(byte) / 255.0;
        }
        set.push(&image, usize::from(label));
    }
    Ok(set)
}

/// The default MNIST split: `train` images for training (validation is split from them later)
/// and the rest for the test, stratified and seeded.
pub fn mnist_train_test(set: &ImageSet, test_images: usize, seed: u64) -> (ImageSet, ImageSet) {
    set.split(test_images as f64 / set.len() as f64, seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASSET: &[u8] = include_bytes!("../../assets/mnist-10k.bin.gz");

    #[test]
    fn asset_holds_the_ten_thousand_digits_of_the_package() {
        let set = parse_mnist(ASSET).unwrap();
        assert_eq!(set.len(), 10_000);
        assert_eq!(set.shape, ImageShape::MNIST);
        assert_eq!(
            set.class_counts(),
            vec![1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
        );
        // A digit has ink (values near 1) on a blank background (0), not noise.
        let first = set.image(0);
        assert_eq!(first[0], 0.0);
        assert!(first.iter().any(|&v| v > 0.9));
        assert!(first.iter().filter(|&&v| v > 0.0).count() < 784 / 2);
    }

    #[test]
    fn default_split_is_eight_thousand_and_two_thousand() {
        let set = parse_mnist(ASSET).unwrap();
        let (train, test) = mnist_train_test(&set, 2000, 1);
        assert_eq!((train.len(), test.len()), (8000, 2000));
    }

    #[test]
    fn damaged_assets_are_refused_with_a_reason() {
        assert!(parse_mnist(b"not gzip").unwrap_err().contains("gzip"));
        let mut raw = Vec::new();
        GzDecoder::new(ASSET).read_to_end(&mut raw).unwrap();
        let truncated = gzip(&raw[..raw.len() - 1]);
        assert!(parse_mnist(&truncated).unwrap_err().contains("truncated"));
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }
}
