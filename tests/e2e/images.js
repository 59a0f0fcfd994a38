// Test images made on the fly: a minimal grey PNG encoder and three visually distinct classes.
import { deflateSync, crc32 } from 'node:zlib';
import { mkdirSync, writeFileSync } from 'node:fs';
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

/** Writes `perClass` PNGs of 32x32 per class into `root/<class>/`; returns the class names. */
export function writeShapeFolders(root, perClass) {
  for (const [name, shape] of Object.entries(SHAPES)) {
    mkdirSync(join(root, name), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const r = noise(i * 31 + name.length);
      const draw = shape(r, i % 8);
      writeFileSync(join(root, name, `${name}_${i}.png`), greyPng(32, 32, (x, y) => Math.min(255, Math.round(draw(x, y)))));
    }
  }
  return Object.keys(SHAPES);
}
