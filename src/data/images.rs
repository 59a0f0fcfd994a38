//! Decoding users' image files (PNG, JPEG, GIF, BMP, WebP) into model input.

use std::io::Cursor;

use image::imageops::{self, FilterType};
use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use super::pixels::{FileKey, PixelStore};
use super::split::ImageKey;
use super::{ImageOrigin, ImageSet, ImageShape};

/// Larger images are refused before their pixels are allocated (decompression bombs): 50
/// megapixels is more than any camera photo a user would drop here.
pub const MAX_PIXELS: u64 = 50_000_000;

/// Why one file could not be used; `file` is the name the user gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageError {
    pub file: String,
    pub reason: String,
}

impl std::fmt::Display for ImageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file, self.reason)
    }
}

impl std::error::Error for ImageError {}

/// Decodes `bytes` and returns `shape.pixels()` values in 0..1, channel-first: converted to
/// grey (1 channel) or RGB (3 channels, alpha dropped) and resized to `shape`.
pub fn decode_image(file: &str, bytes: &[u8], shape: ImageShape) -> Result<Vec<f32>, ImageError> {
    decode_keyed_image(file, bytes, shape).map(|(pixels, _)| pixels)
}

/// [`decode_image`], and the key of the decoded image (a hash of its pixels at its own size).
pub fn decode_keyed_image(
    file: &str,
    bytes: &[u8],
    shape: ImageShape,
) -> Result<(Vec<f32>, ImageKey), ImageError> {
    let fail = |reason: String| ImageError {
        file: file.to_string(),
        reason,
    };
    if bytes.is_empty() {
        return Err(fail("the file is empty".into()));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|err| fail(format!("cannot be read: {err}")))?;
    let Some(format) = reader.format() else {
        return Err(fail(
            "not an image in a known format (PNG, JPEG, GIF, BMP or WebP)".into(),
        ));
    };
    // The JPEG decoder fills a cut file's missing rows with grey instead of failing.
    if format == ImageFormat::Jpeg && !has_jpeg_end(bytes) {
        return Err(fail("the JPEG is cut short (it has no end marker)".into()));
    }
    // Only the header is read here; the decoder's default limits would refuse a bomb with a
    // vaguer message than the one below. On wasm32 a decoder still refuses a header whose image
    // would not fit the 32-bit address space.
    reader.no_limits();
    let (width, height) = reader.into_dimensions().map_err(|err| match err {
        image::ImageError::Limits(_) => fail(format!(
            "the image is too large (limit {} megapixels)",
            MAX_PIXELS / 1_000_000
        )),
        err => fail(format!("damaged image header: {err}")),
    })?;
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(fail(format!(
            "{width}x{height} pixels is too large (limit {} megapixels)",
            MAX_PIXELS / 1_000_000
        )));
    }
    // The dimension check above consumed the reader; read again with limits set, which also
    // guards the decoders' own allocations.
    reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|err| fail(format!("cannot be read: {err}")))?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 16);
    reader.limits(limits);
    let image = reader
        .decode()
        .map_err(|err| fail(format!("cannot be decoded: {err}")))?;
    let key = ImageKey::of_image(&image);
    Ok((to_model_input(&image, shape).map_err(fail)?, key))
}

/// Whether a JPEG has its end-of-image marker after its last scan: inside a scan's data 0xFF is
/// always followed by 0x00 or a restart marker, so an FF D9 found there is the real end.
fn has_jpeg_end(bytes: &[u8]) -> bool {
    let last_scan = bytes
        .windows(2)
        .rposition(|w| w == [0xFF, 0xDA])
        .unwrap_or(0);
    bytes[last_scan..].windows(2).any(|w| w == [0xFF, 0xD9])
}

fn to_model_input(image: &DynamicImage, shape: ImageShape) -> Result<Vec<f32>, String> {
    let (width, height) = (shape.width as u32, shape.height as u32);
    match shape.channels {
        1 => {
            let grey = imageops::resize(&image.to_luma32f(), width, height, FilterType::Triangle);
            Ok(grey
                .into_raw()
                .into_iter()
                .map(|v| v.clamp(0.0, 1.0))
                .collect())
        }
        3 => {
            let rgb = imageops::resize(&image.to_rgb32f(), width, height, FilterType::Triangle);
            let interleaved = rgb.into_raw();
            let plane = shape.height * shape.width;
            let mut planar = vec![0.0; 3 * plane];
            for (i, value) in interleaved.into_iter().enumerate() {
                planar[(i % 3) * plane + i / 3] = value.clamp(0.0, 1.0);
            }
            Ok(planar)
        }
        other => Err(format!(
            "the model takes 1 (grey) or 3 (RGB) channels, not {other}"
        )),
    }
}

/// One uploaded file: its class (folder) name, its own name, its bytes, the group it belongs to
/// (a camera hold, a group folder), and the key of the image it was made from when it is a
/// shrunk copy (as the page keeps large images), so that it stays the image it was.
pub struct LabelledFile<'a> {
    pub class_name: &'a str,
    pub file_name: &'a str,
    pub bytes: &'a [u8],
    pub group: Option<&'a str>,
    pub key: Option<ImageKey>,
}

/// The user's files as they arrive, a few at a time: each decoded at once and only its model
/// input kept, so even thousands of large photos never sit in memory together. Classes are named
/// by `class_name`, in order of first appearance; a file that fails is reported and the others
/// still load.
pub struct LabelledImages {
    set: ImageSet,
    errors: Vec<ImageError>,
    notes: Vec<String>,
    /// Images the store held before this load (a disk cache's from earlier runs), and how many
    /// of the files were found among them.
    stored_before: usize,
    found_stored: usize,
}

impl LabelledImages {
    pub fn new(shape: ImageShape) -> Self {
        Self::with_store(shape, PixelStore::in_memory(shape.pixels()))
    }

    /// Keeps the images in `store`; files whose images it already holds are not decoded.
    pub fn with_store(shape: ImageShape, store: PixelStore) -> Self {
        let set = ImageSet::with_store(shape, Vec::new(), store);
        Self {
            stored_before: set.stored_images(),
            set,
            errors: Vec::new(),
            notes: Vec::new(),
            found_stored: 0,
        }
    }

    /// Adds a batch of files, decoded on every core natively (one by one in wasm, which has no
    /// threads here); the images keep the files' order. Returns each file's image key, None for
    /// a file that cannot be used.
    pub fn add_all(&mut self, files: &[LabelledFile]) -> Vec<Option<ImageKey>> {
        let keys: Vec<FileKey> = files.iter().map(|file| FileKey::of(file.bytes)).collect();
        let stored: Vec<Option<(usize, ImageKey)>> =
            keys.iter().map(|key| self.set.stored_row(key)).collect();
        let unstored: Vec<&LabelledFile> = files
            .iter()
            .zip(&stored)
            .filter_map(|(file, row)| row.is_none().then_some(file))
            .collect();
        let mut decoded = decode_all(&unstored, self.set.shape).into_iter();
        let mut image_keys = Vec::with_capacity(files.len());
        for ((file, key), row) in files.iter().zip(keys).zip(stored) {
            let (image, image_key) = match row {
                Some((row, image_key)) => {
                    self.found_stored += usize::from(row < self.stored_before);
                    (FileImage::Stored(row), image_key)
                }
                None => match decoded.next().expect("a decoding for each file not stored") {
                    Ok((pixels, image_key)) => (FileImage::Decoded(pixels), image_key),
                    Err(err) => {
                        self.errors.push(err);
                        image_keys.push(None);
                        continue;
                    }
                },
            };
            let origin = ImageOrigin {
                key: file.key.unwrap_or(image_key),
                group: file.group.map(Into::into),
                file_name: Some(file.file_name.into()),
            };
            image_keys.push(Some(origin.key));
            if is_animation(file.bytes) {
                self.notes.push(format!(
                    "{}: animated; only its first frame is used",
                    file.file_name
                ));
            }
            let names = &mut self.set.class_names;
            let label = match names.iter().position(|name| name == file.class_name) {
                Some(label) => label,
                None => {
                    names.push(file.class_name.to_string());
                    names.len() - 1
                }
            };
            match image {
                FileImage::Stored(row) => self.set.push_stored(row, label, origin),
                // A file of the same bytes earlier in this batch is found then, not stored twice.
                FileImage::Decoded(pixels) => self.set.push_file(key, label, &pixels, origin),
            }
        }
        image_keys
    }

    /// Files read so far, loaded or not.
    pub fn files_read(&self) -> usize {
        self.set.len() + self.errors.len()
    }

    /// The images, the files that could not be used, and notes on files used in part.
    pub fn finish(mut self) -> (ImageSet, Vec<ImageError>, Vec<String>) {
        if self.found_stored > 0 {
            self.notes.push(format!(
                "{} of the images were found in the image cache {} and not decoded again",
                self.found_stored,
                self.set.place()
            ));
        }
        (self.set, self.errors, self.notes)
    }
}

type Decoded = Result<(Vec<f32>, ImageKey), ImageError>;

/// A file's image: already in the store, or just decoded.
enum FileImage {
    Stored(usize),
    Decoded(Vec<f32>),
}

#[cfg(not(target_arch = "wasm32"))]
fn decode_all(files: &[&LabelledFile], shape: ImageShape) -> Vec<Decoded> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = files.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let decoders: Vec<_> = files
            .chunks(per_thread)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|file| decode_keyed_image(file.file_name, file.bytes, shape))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        decoders
            .into_iter()
            .flat_map(|decoder| decoder.join().expect("a decoder thread panicked"))
            .collect()
    })
}

#[cfg(target_arch = "wasm32")]
fn decode_all(files: &[&LabelledFile], shape: ImageShape) -> Vec<Decoded> {
    files
        .iter()
        .map(|file| decode_keyed_image(file.file_name, file.bytes, shape))
        .collect()
}

/// A GIF of more than one frame (the decoders read the first only).
fn is_animation(bytes: &[u8]) -> bool {
    use image::AnimationDecoder;
    image::codecs::gif::GifDecoder::new(Cursor::new(bytes))
        .is_ok_and(|decoder| decoder.into_frames().take(2).count() > 1)
}

#[cfg(test)]
mod tests {
    use image::{ImageBuffer, Luma, Rgb, Rgba};

    use super::*;

    /// A 20x10 image, left half black, right half white (in every channel).
    fn half_white<P: image::Pixel>(white: P, black: P) -> ImageBuffer<P, Vec<P::Subpixel>> {
        ImageBuffer::from_fn(20, 10, |x, _| if x < 10 { black } else { white })
    }

    fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        image.write_to(&mut bytes, format).unwrap();
        bytes.into_inner()
    }

    fn assert_left_dark_right_bright(values: &[f32], shape: ImageShape, label: &str) {
        assert_eq!(values.len(), shape.pixels(), "{label}");
        assert!(values.iter().all(|v| (0.0..=1.0).contains(v)), "{label}");
        let plane = shape.height * shape.width;
        for channel in 0..shape.channels {
            let row = &values[channel * plane..channel * plane + shape.width];
            assert!(
                row[0] < 0.1 && row[shape.width - 1] > 0.9,
                "{label}: {row:?}"
            );
        }
    }

    #[test]
    fn every_supported_format_decodes() {
        let rgb = DynamicImage::ImageRgb8(half_white(Rgb([255, 255, 255]), Rgb([0, 0, 0])));
        for format in [
            ImageFormat::Png,
            ImageFormat::Jpeg,
            ImageFormat::Gif,
            ImageFormat::Bmp,
            ImageFormat::WebP,
        ] {
            let image = if format == ImageFormat::Gif {
                DynamicImage::ImageRgba8(rgb.to_rgba8())
            } else {
                rgb.clone()
            };
            let bytes = encode(image, format);
            for shape in [ImageShape::new(1, 8, 8), ImageShape::new(3, 8, 8)] {
                let values = decode_image("x", &bytes, shape).unwrap();
                assert_left_dark_right_bright(&values, shape, &format!("{format:?} {shape:?}"));
            }
        }
    }

    #[test]
    fn grey_rgba_and_sixteen_bit_images_convert() {
        let shape3 = ImageShape::new(3, 5, 10);
        let shape1 = ImageShape::new(1, 5, 10);
        let images = [
            DynamicImage::ImageLuma8(half_white(Luma([255]), Luma([0]))),
            DynamicImage::ImageRgba8(half_white(Rgba([255, 255, 255, 255]), Rgba([0, 0, 0, 255]))),
            DynamicImage::ImageLuma16(half_white(Luma([65535]), Luma([0]))),
            DynamicImage::ImageRgb16(half_white(Rgb([65535; 3]), Rgb([0; 3]))),
        ];
        for image in images {
            let label = format!("{:?}", image.color());
            let bytes = encode(image, ImageFormat::Png);
            for shape in [shape1, shape3] {
                let values = decode_image("x", &bytes, shape).unwrap();
                assert_left_dark_right_bright(&values, shape, &label);
            }
        }
        // A pure red pixel stays red in RGB and becomes a mid grey (luma) in grey.
        let red = encode(
            DynamicImage::ImageRgb8(ImageBuffer::from_pixel(4, 4, Rgb([255, 0, 0]))),
            ImageFormat::Png,
        );
        let rgb = decode_image("red.png", &red, ImageShape::new(3, 2, 2)).unwrap();
        assert_eq!(
            rgb,
            vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        );
        let grey = decode_image("red.png", &red, ImageShape::new(1, 2, 2)).unwrap();
        assert!(grey.iter().all(|&v| v > 0.15 && v < 0.35), "{grey:?}");
    }

    #[test]
    fn broken_files_give_errors_that_name_the_file() {
        let png = encode(
            DynamicImage::ImageLuma8(half_white(Luma([255]), Luma([0]))),
            ImageFormat::Png,
        );
        let jpeg = encode(
            DynamicImage::ImageRgb8(half_white(Rgb([255; 3]), Rgb([0; 3]))),
            ImageFormat::Jpeg,
        );
        let shape = ImageShape::MNIST;
        let cases: [(&str, &[u8], &str); 5] = [
            ("empty.png", &[], "empty"),
            ("notes.png", b"just some text, not pixels", "not an image"),
            ("cut.png", &png[..png.len() / 2], "cannot be decoded"),
            ("cut.jpg", &jpeg[..jpeg.len() - 2], "cut short"),
            ("half.jpg", &jpeg[..jpeg.len() / 2], "cut short"),
        ];
        for (name, bytes, reason) in cases {
            let err = decode_image(name, bytes, shape).unwrap_err();
            assert_eq!(err.file, name);
            assert!(err.reason.contains(reason), "{name}: {err}");
            assert!(err.to_string().starts_with(name));
        }
    }

    /// The CRC-32 of PNG chunks (ISO-HDLC), bit by bit.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn decompression_bombs_are_refused_before_decoding() {
        // A valid PNG header that claims 100,000 x 100,000 pixels.
        let mut png = encode(
            DynamicImage::ImageLuma8(ImageBuffer::from_pixel(1, 1, Luma([0]))),
            ImageFormat::Png,
        );
        png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        // The IHDR chunk's CRC (bytes 29..33) covers its type and data (bytes 12..29).
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        let err = decode_image("bomb.png", &png, ImageShape::MNIST).unwrap_err();
        assert!(
            err.reason.contains("100000x100000 pixels is too large"),
            "{err}"
        );
    }

    #[test]
    fn loading_files_keeps_the_good_ones_and_reports_the_bad() {
        let white = encode(
            DynamicImage::ImageLuma8(ImageBuffer::from_pixel(4, 4, Luma([255]))),
            ImageFormat::Png,
        );
        let black = encode(
            DynamicImage::ImageLuma8(ImageBuffer::from_pixel(4, 4, Luma([0]))),
            ImageFormat::Bmp,
        );
        // Enough files for every decoder thread to get several: the images keep the files'
        // order whichever thread decoded them.
        let mut files = Vec::new();
        for i in 0..24 {
            files.push(match i % 4 {
                0 => ("cats", format!("{i}.png"), &white[..]),
                1 => ("dogs", format!("{i}.bmp"), &black[..]),
                2 => ("cats", format!("broken{i}.png"), &b"oops"[..]),
                _ => ("dogs", format!("{i}.bmp"), &black[..]),
            });
        }
        let labelled: Vec<LabelledFile> = files
            .iter()
            .map(|(class_name, file_name, bytes)| LabelledFile {
                class_name,
                file_name,
                bytes,
                group: None,
                key: None,
            })
            .collect();
        let mut images = LabelledImages::new(ImageShape::MNIST);
        images.add_all(&labelled[..10]);
        images.add_all(&labelled[10..]);
        assert_eq!(images.files_read(), 24);
        let (set, errors, notes) = images.finish();
        assert_eq!(set.class_names, vec!["cats", "dogs"]);
        assert_eq!(set.labels(), [0, 1, 1].repeat(6));
        for i in 0..set.len() {
            let white = set.labels()[i] == 0;
            assert!(
                set.image(i)
                    .iter()
                    .all(|&v| v == f32::from(u8::from(white)))
            );
        }
        let failed: Vec<&str> = errors.iter().map(|e| e.file.as_str()).collect();
        assert_eq!(
            failed,
            [
                "broken2.png",
                "broken6.png",
                "broken10.png",
                "broken14.png",
                "broken18.png",
                "broken22.png"
            ]
        );
        assert!(notes.is_empty());
    }

    #[test]
    fn an_animation_loads_its_first_frame_with_a_note() {
        use image::codecs::gif::GifEncoder;
        use image::{Delay, Frame, RgbaImage};
        let mut bytes = Vec::new();
        let mut encoder = GifEncoder::new(&mut bytes);
        for level in [255, 0] {
            let frame = RgbaImage::from_pixel(4, 4, Rgba([level, level, level, 255]));
            encoder
                .encode_frame(Frame::from_parts(
                    frame,
                    0,
                    0,
                    Delay::from_numer_denom_ms(100, 1),
                ))
                .unwrap();
        }
        drop(encoder);
        let mut images = LabelledImages::new(ImageShape::MNIST);
        images.add_all(&[LabelledFile {
            class_name: "blink",
            file_name: "blink.gif",
            bytes: &bytes,
            group: None,
            key: None,
        }]);
        let (set, errors, notes) = images.finish();
        assert!(errors.is_empty(), "{errors:?}");
        assert!(
            set.image(0).iter().all(|&v| v > 0.99),
            "not the white first frame"
        );
        assert_eq!(
            notes,
            vec!["blink.gif: animated; only its first frame is used"]
        );
    }
}
