// Test images made on the fly: a minimal grey PNG encoder and three visually distinct classes.
import { deflateSync, crc32 } from 'node:zlib';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** An 8-bit grey PNG of `width` x `height` from `pixel(x, y)` in 0..255. */
export function greyPng(width, height, pixel) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 0; // grey
  const raw = Buffer.alloc((width + 1) * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) raw[y * (width + 1) + 1 + x] = pixel(x, y);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A well-formed PNG whose header claims `width` x `height` grey pixels over a few bytes of
 * data: a decompression bomb, to be refused before anything is allocated for it. */
export function bombPng(width = 100_000, height = 100_000) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header), chunk('IDAT', deflateSync(Buffer.alloc(1024))), chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Deterministic noise in 0..1 so every run draws the same images. */
function noise(seed) {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

const SHAPES = {
  // Horizontal bars, vertical bars, and a disc, each with a random offset and noise.
  rows: (r, o) => (x, y) => ((y + o) % 8 < 4 ? 220 : 30) + r() * 30,
  columns: (r, o) => (x, y) => ((x + o) % 8 < 4 ? 220 : 30) + r() * 30,
  disc: (r, o) => (x, y) => ((x - 16 - (o % 5)) ** 2 + (y - 16) ** 2 < 100 ? 230 : 20) + r() * 30,
};

/** Writes `total` 28x28 PNGs into `root/class<c>/`, ten classes of stripes of different angle
 * and width, with noise: many images quickly, for tests of scale. */
export function writeStripeFolders(root, total) {
  for (let i = 0; i < total; i++) {
    const c = i % 10;
    const dir = join(root, `class${c}`);
    if (i < 10) mkdirSync(dir, { recursive: true });
    const r = noise(i);
    const [dx, dy] = [Math.cos(c * 0.314), Math.sin(c * 0.314)];
    const period = 4 + (c % 3) * 3;
    const offset = r() * period;
    const phase = (x, y) => (((x * dx + y * dy + offset) % period) + period) % period;
    writeFileSync(join(dir, `${i}.png`), greyPng(28, 28, (x, y) =>
      Math.min(255, Math.round((phase(x, y) < period / 2 ? 200 : 30) + r() * 40))));
  }
}

/** Writes `perClass` PNGs of 32x32 per class into `root/<class>/`, or with `flat` into `root`
 * as `<class>_<i>.png` (the page takes a loose file's class from its name); returns the class
 * names. */
export function writeShapeFolders(root, perClass, { flat = false } = {}) {
  for (const [name, shape] of Object.entries(SHAPES)) {
    const dir = flat ? root : join(root, name);
    mkdirSync(dir, { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const r = noise(i * 31 + name.length);
      const draw = shape(r, i % 8);
      writeFileSync(join(dir, `${name}_${i}.png`), greyPng(32, 32, (x, y) => Math.min(255, Math.round(draw(x, y)))));
    }
  }
  return Object.keys(SHAPES);
}

const FIXTURES = new URL('./fixtures/', import.meta.url).pathname;

/**
 * Writes the three shape classes (10 images each) as loose files into `root`, plus files that
 * go wrong in users' hands: broken ones that must be refused with a reason naming them, and
 * valid but unusual ones that must load (made by fixtures/make.py). Returns the paths of all
 * files, the broken ones with the message each must get, the notes, and the class cards expected.
 */
export function writeFileZoo(root) {
  writeShapeFolders(root, 10, { flat: true });
  const png = greyPng(28, 28, (x) => x * 9);
  const photo = readFileSync(join(FIXTURES, 'photo.jpg'));
  const broken = [
    ['empty.png', Buffer.alloc(0), /empty\.png: the file is empty/],
    ['notes.png', 'a text file renamed', /notes\.png: not an image/],
    ['cut.png', png.subarray(0, png.length / 2), /cut\.png: cannot be decoded/],
    ['cut.jpg', photo.subarray(0, photo.length / 2), /cut\.jpg: the JPEG is cut short/],
    ['bomb.png', bombPng(), /bomb\.png: .*too large \(limit 50 megapixels\)/],
  ];
  for (const [name, bytes] of broken) writeFileSync(join(root, name), bytes);
  // 16-bit grey, CMYK JPEG, an animated GIF, grey with alpha, a BMP of another size and shape.
  for (const [name, fixture] of [['disc_sixteen-bit.png', 'sixteen-bit.png'], ['disc_animated.gif', 'animated.gif'],
    ['rows_cmyk.jpg', 'cmyk.jpg'], ['rows_grey-alpha.png', 'grey-alpha.png'], ['columns_wide.bmp', 'wide.bmp']]) {
    copyFileSync(join(FIXTURES, fixture), join(root, name));
  }
  return {
    files: readdirSync(root).map((name) => join(root, name)),
    broken: broken.map(([name, , message]) => [name, message]),
    notes: [/disc_animated\.gif: animated; only its first frame is used/],
    cards: ['columns (11)', 'disc (12)', 'rows (12)'],
    // Classes (by the loose files' names) of broken files alone.
    unusable: ['bomb (0)', 'cut (0)', 'empty (0)', 'notes (0)'],
  };
}
