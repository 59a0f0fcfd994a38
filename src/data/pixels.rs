//! Where the pixels of a set of images live: one byte per value, in memory (the page, the
//! built-in digits) or, natively, in a file on disk that later runs reuse (the command line's
//! `--cache DIR`), so that a folder of 100,000 photos trains with only a few batches in memory.
//!
//! A byte per value is what the images' files hold: the decoders' 0..1 values are rounded to
//! 1/255, and the digits keep their bytes exactly.

use std::collections::HashMap;

#[cfg(not(target_arch = "wasm32"))]
use super::ImageShape;
use super::split::ImageKey;

/// A file's content, as the cache knows it: its length and a hash of its bytes. A renamed or
/// moved file is still found; an edited one is decoded again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub len: u64,
    pub hash: u64,
}

impl FileKey {
    /// FNV-1a over 8-byte words (eight times faster than over bytes), fixed so that keys
    /// written by one build are found by the next.
    pub fn of(bytes: &[u8]) -> Self {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let words = bytes.chunks_exact(8);
        let tail = words.remainder();
        for word in words.map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes"))) {
            hash = (hash ^ word).wrapping_mul(0x0000_0100_0000_01b3);
        }
        for &byte in tail {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        Self {
            len: bytes.len() as u64,
            hash,
        }
    }
}

/// Values in 0..1 as the store keeps them: a byte each, rounded to the nearest.
pub fn to_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect()
}

/// Rows of `row_bytes` bytes each, appended once and read by index.
pub struct PixelStore {
    row_bytes: usize,
    rows: usize,
    place: Place,
    /// Which row holds the image of each file seen (a disk cache's, this run's and earlier ones).
    keys: HashMap<FileKey, usize>,
    /// The key of each row's image (a hash of its decoded pixels, at the file's own size).
    image_keys: Vec<ImageKey>,
}

enum Place {
    Memory(Vec<u8>),
    #[cfg(not(target_arch = "wasm32"))]
    Disk(disk::DiskRows),
}

impl PixelStore {
    pub fn in_memory(row_bytes: usize) -> Self {
        Self {
            row_bytes,
            rows: 0,
            place: Place::Memory(Vec::new()),
            keys: HashMap::new(),
            image_keys: Vec::new(),
        }
    }

    /// The cache in `dir` for images of `shape`, made if missing: its rows and keys are found
    /// again by every later run that opens it. Each shape has its own files, named after it
    /// (`28x28-grey.v2.pixels`); the version changes when decoding or the files' layout does.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn on_disk(dir: &std::path::Path, shape: ImageShape) -> Result<Self, String> {
        let colour = if shape.channels == 1 { "grey" } else { "rgb" };
        let name = format!("{}x{}-{colour}.v2", shape.width, shape.height);
        let row_bytes = shape.pixels();
        let (found, place) = disk::DiskRows::open(dir, &name, row_bytes)?;
        let (keys, image_keys) = (found.rows_of_files, found.image_keys);
        let rows = image_keys.len();
        Ok(Self {
            row_bytes,
            rows,
            place: Place::Disk(place),
            keys,
            image_keys,
        })
    }

    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Where it is kept, for people: "memory", or the cache file.
    pub fn place(&self) -> String {
        match &self.place {
            Place::Memory(_) => "memory".into(),
            #[cfg(not(target_arch = "wasm32"))]
            Place::Disk(disk) => disk.pixels_path.display().to_string(),
        }
    }

    /// The row already holding the image of the file with `key`, if any.
    pub fn find(&self, key: &FileKey) -> Option<usize> {
        self.keys.get(key).copied()
    }

    /// The key of the image at `row`.
    pub fn image_key(&self, row: usize) -> ImageKey {
        self.image_keys[row]
    }

    /// Appends one image as its bytes, as [`PixelStore::read`] gives them back; `file` names the
    /// file it came from, for [`PixelStore::find`], and `image` is its key. Returns its row.
    pub fn append_bytes(&mut self, bytes: &[u8], file: Option<FileKey>, image: ImageKey) -> usize {
        assert_eq!(bytes.len(), self.row_bytes, "image of the wrong size");
        let row = self.rows;
        match &mut self.place {
            Place::Memory(memory) => memory.extend_from_slice(bytes),
            #[cfg(not(target_arch = "wasm32"))]
            Place::Disk(disk) => disk.append(row, bytes, file, image),
        }
        if let Some(file) = file {
            self.keys.insert(file, row);
        }
        self.image_keys.push(image);
        self.rows += 1;
        row
    }

    /// Copies the bytes of `row` into `out` (`row_bytes` long).
    pub fn read(&self, row: usize, out: &mut [u8]) {
        assert!(row < self.rows, "row {row} of {}", self.rows);
        match &self.place {
            Place::Memory(memory) => {
                out.copy_from_slice(&memory[row * self.row_bytes..(row + 1) * self.row_bytes])
            }
            #[cfg(not(target_arch = "wasm32"))]
            Place::Disk(disk) => disk.read(row, out),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod disk {
    use std::collections::HashMap;
    use std::fs::{File, OpenOptions, TryLockError};
    use std::io::Read;
    use std::path::{Path, PathBuf};

    use super::{FileKey, ImageKey};

    /// One key record: the file's length, its hash, the row of its image, the image's key.
    const KEY_RECORD: usize = 32;

    /// `<shape>.pixels` holds the rows one after another; `<shape>.keys` a record per row that
    /// came from a file. Written in that order, so a run killed between the two leaves a row
    /// without a key, which the next run overwrites.
    pub struct DiskRows {
        pub pixels_path: PathBuf,
        pixels: File,
        keys: File,
        row_bytes: usize,
    }

    /// What a cache holds from earlier runs.
    pub struct Found {
        /// The row of each file's image.
        pub rows_of_files: HashMap<FileKey, usize>,
        /// The key of each row's image, one per row.
        pub image_keys: Vec<ImageKey>,
    }

    impl DiskRows {
        /// The cache's files in `dir`, made if missing: what they hold, and the rows to append
        /// to.
        pub fn open(
            dir: &Path,
            shape_name: &str,
            row_bytes: usize,
        ) -> Result<(Found, Self), String> {
            let cannot = |what: &Path, err: std::io::Error| {
                format!("the image cache {} cannot be used: {err}", what.display())
            };
            std::fs::create_dir_all(dir).map_err(|err| cannot(dir, err))?;
            let pixels_path = dir.join(format!("{shape_name}.pixels"));
            let keys_path = dir.join(format!("{shape_name}.keys"));
            let open = |path: &Path| {
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)
                    .map_err(|err| cannot(path, err))
            };
            let (pixels, mut keys_file) = (open(&pixels_path)?, open(&keys_path)?);
            // Two runs appending to one cache would overwrite each other's rows. The lock goes
            // with the file, when the run ends however it ends.
            pixels.try_lock().map_err(|err| match err {
                TryLockError::WouldBlock => format!(
                    "the image cache {} is in use by another run: wait for it to end, or give \
                     this one another --cache folder",
                    dir.display()
                ),
                TryLockError::Error(err) => cannot(&pixels_path, err),
            })?;
            let mut records = Vec::new();
            keys_file
                .read_to_end(&mut records)
                .map_err(|err| cannot(&keys_path, err))?;
            let whole_rows = pixels
                .metadata()
                .map_err(|err| cannot(&pixels_path, err))?
                .len() as usize
                / row_bytes;
            // Rows are trusted up to the last one with a key; an unfinished record is dropped.
            let mut keys = HashMap::new();
            let mut image_keys = HashMap::new();
            let mut rows = 0;
            for record in records.chunks_exact(KEY_RECORD) {
                let field = |i: usize| {
                    u64::from_le_bytes(record[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
                };
                let row = field(2) as usize;
                if row < whole_rows {
                    keys.insert(
                        FileKey {
                            len: field(0),
                            hash: field(1),
                        },
                        row,
                    );
                    image_keys.insert(row, ImageKey(field(3)));
                    rows = rows.max(row + 1);
                }
            }
            // A row without a record is never found by a file, so its image key is not needed.
            let image_keys: Vec<ImageKey> = (0..rows)
                .map(|row| image_keys.get(&row).copied().unwrap_or(ImageKey(0)))
                .collect();
            let set_len = |file: &File, len: usize, path: &Path| {
                file.set_len(len as u64).map_err(|err| cannot(path, err))
            };
            set_len(&pixels, rows * row_bytes, &pixels_path)?;
            set_len(&keys_file, keys.len() * KEY_RECORD, &keys_path)?;
            // Rewritten in row order, which also drops duplicates and records past the rows.
            let mut ordered: Vec<(&FileKey, &usize)> = keys.iter().collect();
            ordered.sort_by_key(|(_, row)| **row);
            let rewritten: Vec<u8> = ordered
                .into_iter()
                .flat_map(|(key, &row)| record(key, row, image_keys[row]))
                .collect();
            write_at(&keys_file, 0, &rewritten).map_err(|err| cannot(&keys_path, err))?;
            Ok((
                Found {
                    rows_of_files: keys,
                    image_keys,
                },
                Self {
                    pixels_path,
                    pixels,
                    keys: keys_file,
                    row_bytes,
                },
            ))
        }

        /// A cache that cannot be written (a full disk) or read ends the run with its reason.
        pub fn append(&mut self, row: usize, bytes: &[u8], file: Option<FileKey>, image: ImageKey) {
            let written =
                write_at(&self.pixels, (row * self.row_bytes) as u64, bytes).and_then(|()| {
                    let Some(file) = file else { return Ok(()) };
                    let end = self.keys.metadata()?.len();
                    write_at(&self.keys, end, &record(&file, row, image))
                });
            written.unwrap_or_else(|err| failure(&self.pixels_path, "write to", err));
        }

        pub fn read(&self, row: usize, out: &mut [u8]) {
            read_at(&self.pixels, (row * self.row_bytes) as u64, out)
                .unwrap_or_else(|err| failure(&self.pixels_path, "read", err));
        }
    }

    fn failure(path: &Path, doing: &str, err: std::io::Error) -> ! {
        panic!("cannot {doing} the image cache {}: {err}", path.display())
    }

    fn record(key: &FileKey, row: usize, image: ImageKey) -> [u8; KEY_RECORD] {
        let mut record = [0; KEY_RECORD];
        for (i, value) in [key.len, key.hash, row as u64, image.0]
            .into_iter()
            .enumerate()
        {
            record[i * 8..i * 8 + 8].copy_from_slice(&value.to_le_bytes());
        }
        record
    }

    // Positioned reads and writes: the training thread and the thread reading the next batch
    // share the file without a cursor between them.
    #[cfg(unix)]
    fn read_at(file: &File, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(file, out, offset)
    }

    #[cfg(unix)]
    fn write_at(file: &File, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
    }

    #[cfg(windows)]
    fn read_at(file: &File, mut offset: u64, mut out: &mut [u8]) -> std::io::Result<()> {
        use std::os::windows::fs::FileExt;
        while !out.is_empty() {
            match file.seek_read(out, offset)? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                n => {
                    out = &mut out[n..];
                    offset += n as u64;
                }
            }
        }
        Ok(())
    }

    #[cfg(windows)]
    fn write_at(file: &File, mut offset: u64, mut bytes: &[u8]) -> std::io::Result<()> {
        use std::os::windows::fs::FileExt;
        while !bytes.is_empty() {
            let n = file.seek_write(bytes, offset)?;
            bytes = &bytes[n..];
            offset += n as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[cfg(not(target_arch = "wasm32"))]
    use std::io::Write;

    use super::*;

    #[test]
    fn values_are_kept_as_bytes_rounded_to_the_nearest() {
        let mut store = PixelStore::in_memory(4);
        let bytes = to_bytes(&[0.0, 0.5, 1.0, 7.0 / 255.0 + 0.001]);
        let row = store.append_bytes(&bytes, None, ImageKey(3));
        let mut out = [0; 4];
        store.read(row, &mut out);
        assert_eq!(out, [0, 128, 255, 7]);
        assert_eq!(store.image_key(row), ImageKey(3));
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn a_disk_cache_is_found_again_and_survives_a_run_killed_between_its_two_files() {
        let dir = std::env::temp_dir().join(format!("siamese-cache-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (a, b, c) = (FileKey::of(b"a"), FileKey::of(b"b"), FileKey::of(b"c"));
        let shape = ImageShape::new(1, 1, 2);
        {
            let mut store = PixelStore::on_disk(&dir, shape).unwrap();
            assert_eq!(store.rows(), 0);
            assert_eq!(store.append_bytes(&[0, 255], Some(a), ImageKey(10)), 0);
            assert_eq!(store.append_bytes(&[255, 0], Some(b), ImageKey(11)), 1);
        }
        // A third row written without its key, as a run killed at that moment leaves it.
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("2x1-grey.v2.pixels"))
            .unwrap()
            .write_all(&[9, 9])
            .unwrap();
        let mut store = PixelStore::on_disk(&dir, shape).unwrap();
        let busy = PixelStore::on_disk(&dir, shape).err().unwrap();
        assert!(busy.contains("in use by another run"), "{busy}");
        assert_eq!(
            (store.rows(), store.find(&a), store.find(&b)),
            (2, Some(0), Some(1))
        );
        // Each found row keeps the key of its image.
        assert_eq!(
            (store.image_key(0), store.image_key(1)),
            (ImageKey(10), ImageKey(11))
        );
        assert_eq!(store.find(&c), None);
        assert_eq!(store.append_bytes(&[51, 102], Some(c), ImageKey(12)), 2);
        let mut out = [0; 2];
        store.read(1, &mut out);
        assert_eq!(out, [255, 0]);
        store.read(2, &mut out);
        assert_eq!(out, [51, 102]);
        // Another shape has its own files in the same folder.
        let rgb = PixelStore::on_disk(&dir, ImageShape::new(3, 1, 2)).unwrap();
        assert_eq!((rgb.rows(), rgb.row_bytes()), (0, 6));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn file_keys_tell_contents_apart() {
        assert_eq!(FileKey::of(b"same bytes"), FileKey::of(b"same bytes"));
        assert_ne!(FileKey::of(b"ab"), FileKey::of(b"ba"));
        assert_ne!(FileKey::of(b""), FileKey::of(b"\0"));
    }
}
