//! The small matrix products of the Winograd convolution (`winograd`): 36 products a pass of
//! `[64 x 32]` by `[32 x tiles]` and their transposes; and the dense layer's (`dense`). Burn's
//! matrix product (the `gemm` crate) packs both operands for every product and runs a generic
//! tile; here a register tile of rows by two vectors reads the operands where they lie, with
//! one operand's values broadcast and the other's loaded as vectors ([`Vector`], the widest the
//! processor has). Called inside `lanes::dispatch`, hence `#[inline(always)]`.

use super::lanes::Vector;

/// A chunk of the inner dimension in [`matmul_by_transpose`], so that the rows it reads stay
/// in the first-level cache: 6 rows of 256 floats.
const CHUNK: usize = 256;

/// `c = a b` for `a` `[m x k]`, whose `(i, p)` is `a[i * a_strides.0 + p * a_strides.1]` (a
/// transpose needs no copy), and `b` `[k x n]` and `c` `[m x n]` by rows `row_strides` apart
/// (`(n, n)` when they are whole matrices; more when they are a band of columns of wider ones).
#[inline(always)]
pub(super) fn matmul<V: Vector>(
    a: &[f32],
    a_strides: (usize, usize),
    b: &[f32],
    c: &mut [f32],
    (m, k, n): (usize, usize, usize),
    (b_row, c_row): (usize, usize),
) {
    let a_end = (m.max(1) - 1) * a_strides.0 + (k.max(1) - 1) * a_strides.1;
    let end = |rows: usize, stride: usize| {
        if rows == 0 {
            0
        } else {
            (rows - 1) * stride + n
        }
    };
    assert!(
        (m == 0 || k == 0 || a_end < a.len())
            && b_row >= n
            && c_row >= n
            && b.len() >= end(k, b_row)
            && c.len() >= end(m, c_row),
        "a {m}x{k} by {k}x{n} product over {}, {} and {} values",
        a.len(),
        b.len(),
        c.len()
    );
    // Rows of a tile: as many as keep its sums and operands in the vector registers (16 on
    // x86-64 without AVX-512, 32 with it; V8 keeps 16 for wasm).
    let columns = 2 * V::LANES;
    let full_columns = n / columns * columns;
    for j in (0..full_columns).step_by(columns) {
        let mut i = 0;
        if V::LANES == 16 {
            while i + 8 <= m {
                // SAFETY: rows i..i + 8 and two vectors of columns from j are within the sizes
                // asserted.
                unsafe { column_tile::<V, 8>(a, a_strides, b, c, (k, b_row, c_row), (i, j)) };
                i += 8;
            }
        }
        while i + 4 <= m {
            // SAFETY: as above, for 4 rows.
            unsafe { column_tile::<V, 4>(a, a_strides, b, c, (k, b_row, c_row), (i, j)) };
            i += 4;
        }
        for i in i..m {
            // SAFETY: as above, for one row.
            unsafe { column_tile::<V, 1>(a, a_strides, b, c, (k, b_row, c_row), (i, j)) };
        }
    }
    for i in 0..m {
        for j in full_columns..n {
            c[i * c_row + j] = (0..k)
                .map(|p| a[i * a_strides.0 + p * a_strides.1] * b[p * b_row + j])
                .sum();
        }
    }
}

/// Rows `i..i + R` and two vectors of columns from `j` of [`matmul`]'s `c`.
///
/// # Safety
/// Those rows and columns, and the `k` columns of `a`'s rows, must be within the slices.
#[inline(always)]
unsafe fn column_tile<V: Vector, const R: usize>(
    a: &[f32],
    (a_row, a_column): (usize, usize),
    b: &[f32],
    c: &mut [f32],
    (k, b_row, c_row): (usize, usize, usize),
    (i, j): (usize, usize),
) {
    let mut sums = [[V::zero(); 2]; R];
    for p in 0..k {
        // SAFETY: the caller's bounds.
        unsafe {
            let b_at = b.as_ptr().add(p * b_row + j);
            let (low, high) = (V::load(b_at), V::load(b_at.add(V::LANES)));
            for (r, sums) in sums.iter_mut().enumerate() {
                let x = V::splat(*a.get_unchecked((i + r) * a_row + p * a_column));
                sums[0] = sums[0].add_product(x, low);
                sums[1] = sums[1].add_product(x, high);
            }
        }
    }
    for (r, [low, high]) in sums.into_iter().enumerate() {
        // SAFETY: the caller's bounds.
        unsafe {
            let c_at = c.as_mut_ptr().add((i + r) * c_row + j);
            low.store(c_at);
            high.store(c_at.add(V::LANES));
        }
    }
}

/// `c += a bᵀ` for row-major `a` `[m x k]` and `c` `[m x n]`, and `b` `[n x k]` by rows `b_row`
/// apart (`k` for a whole matrix; more for a band of columns of a wider one): dot products of
/// rows, 2 of `a` by 4 of `b` at a time.
#[inline(always)]
pub(super) fn matmul_by_transpose<V: Vector>(
    a: &[f32],
    (b, b_row): (&[f32], usize),
    c: &mut [f32],
    (m, k, n): (usize, usize, usize),
) {
    assert!(
        a.len() >= m * k
            && b_row >= k
            && (n == 0 || b.len() >= (n - 1) * b_row + k)
            && c.len() >= m * n,
        "a {m}x{k} by the transpose of {n}x{k} over {}, {} and {} values",
        a.len(),
        b.len(),
        c.len()
    );
    let (full_rows, full_columns) = (m / 2 * 2, n / 4 * 4);
    for start in (0..k).step_by(CHUNK) {
        let span = (start, CHUNK.min(k - start));
        for i in (0..full_rows).step_by(2) {
            for j in (0..full_columns).step_by(4) {
                // SAFETY: rows i..i + 2 of a, j..j + 4 of b and the span are within the sizes
                // asserted.
                unsafe { dot_tile::<V, 2, 4>(a, (b, b_row), c, (k, n), (i, j), span) };
            }
        }
        for i in 0..m {
            for j in (0..n).filter(|&j| i >= full_rows || j >= full_columns) {
                // SAFETY: as above, for one row of each.
                unsafe { dot_tile::<V, 1, 1>(a, (b, b_row), c, (k, n), (i, j), span) };
            }
        }
    }
}

/// Adds to `c`'s rows `i..i + R` and columns `j..j + S` the dot products of `a`'s rows
/// `i..i + R` with `b`'s rows `j..j + S` over the columns `start..start + len`.
///
/// # Safety
/// Those rows and columns must be within the slices.
#[inline(always)]
unsafe fn dot_tile<V: Vector, const R: usize, const S: usize>(
    a: &[f32],
    (b, b_row): (&[f32], usize),
    c: &mut [f32],
    (k, n): (usize, usize),
    (i, j): (usize, usize),
    (start, len): (usize, usize),
) {
    let vectors = len / V::LANES * V::LANES;
    let mut sums = [[V::zero(); S]; R];
    // SAFETY: the caller's bounds.
    unsafe {
        let mut a_rows = [a.as_ptr(); R];
        for (r, row) in a_rows.iter_mut().enumerate() {
            *row = row.add((i + r) * k + start);
        }
        let mut b_rows = [b.as_ptr(); S];
        for (s, row) in b_rows.iter_mut().enumerate() {
            *row = row.add((j + s) * b_row + start);
        }
        for p in (0..vectors).step_by(V::LANES) {
            let mut xs = [V::zero(); R];
            for (x, row) in xs.iter_mut().zip(a_rows) {
                *x = V::load(row.add(p));
            }
            for (s, b_row) in b_rows.iter().enumerate() {
                let y = V::load(b_row.add(p));
                for (sums, x) in sums.iter_mut().zip(xs) {
                    sums[s] = sums[s].add_product(x, y);
                }
            }
        }
        for (r, sums) in sums.iter().enumerate() {
            for (s, sum) in sums.iter().enumerate() {
                let rest: f32 = (vectors..len)
                    .map(|p| *a_rows[r].add(p) * *b_rows[s].add(p))
                    .sum();
                *c.get_unchecked_mut((i + r) * n + j + s) += sum.total() + rest;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::lanes::{Lanes, VectorWork, dispatch, every_vector};
    use super::*;

    /// Values that make every product distinct, so a misplaced term shows.
    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0
                    - 1.0
            })
            .collect()
    }

    /// `c[i][j] = Σ_p a(i, p) b(p, j)`, term by term.
    fn by_definition(
        a: impl Fn(usize, usize) -> f32,
        b: impl Fn(usize, usize) -> f32,
        (m, k, n): (usize, usize, usize),
    ) -> Vec<f32> {
        (0..m)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .map(|(i, j)| {
                (0..k)
                    .map(|p| f64::from(a(i, p)) * f64::from(b(p, j)))
                    .sum::<f64>() as f32
            })
            .collect()
    }

    fn assert_close(ours: &[f32], expected: &[f32], k: usize) {
        assert_eq!(ours.len(), expected.len());
        for (index, (ours, expected)) in ours.iter().zip(expected).enumerate() {
            assert!(
                (ours - expected).abs() <= 1e-5 * k as f32,
                "value {index}: {ours} against {expected}"
            );
        }
    }

    // The tower's sizes (64 kernels, 32 channels, the 36 tiles of one image, 36 x 32 of a
    // micro-batch), and sizes with every kind of leftover row (of 8 and 4), column and inner
    // length.
    const SIZES: [(usize, usize, usize); 7] = [
        (64, 32, 36),
        (64, 32, 1152),
        (32, 64, 36),
        (3, 5, 7),
        (7, 9, 21),
        (13, 9, 70),
        (1, 1, 1),
    ];

    /// [`matmul`] with the vector `lanes` names, `b` and `c` whole matrices.
    fn product(
        lanes: Lanes,
        a: &[f32],
        a_strides: (usize, usize),
        b: &[f32],
        (m, k, n): (usize, usize, usize),
    ) -> Vec<f32> {
        let mut c = vec![f32::NAN; m * n];
        product_into(lanes, (a, a_strides), b, &mut c, (m, k, n), (n, n));
        c
    }

    /// [`matmul`] with the vector `lanes` names, into `c`.
    fn product_into(
        lanes: Lanes,
        a: (&[f32], (usize, usize)),
        b: &[f32],
        c: &mut [f32],
        sizes: (usize, usize, usize),
        row_strides: (usize, usize),
    ) {
        type Operands<'a> = ((&'a [f32], (usize, usize)), &'a [f32], &'a mut [f32]);
        struct Product<'a>(Operands<'a>, (usize, usize, usize), (usize, usize));
        impl VectorWork for Product<'_> {
            type Output = ();
            #[inline(always)]
            fn run<V: Vector>(self) {
                let Product(((a, a_strides), b, c), sizes, row_strides) = self;
                matmul::<V>(a, a_strides, b, c, sizes, row_strides);
            }
        }
        dispatch(lanes, Product((a, b, c), sizes, row_strides))
    }

    /// [`matmul_by_transpose`] with the vector `lanes` names: `c + a bᵀ`, `b`'s rows `b_row`
    /// apart.
    fn product_by_transpose(
        lanes: Lanes,
        a: &[f32],
        (b, b_row): (&[f32], usize),
        c: &[f32],
        sizes: (usize, usize, usize),
    ) -> Vec<f32> {
        struct ByTranspose<'a>(
            &'a [f32],
            (&'a [f32], usize),
            Vec<f32>,
            (usize, usize, usize),
        );
        impl VectorWork for ByTranspose<'_> {
            type Output = Vec<f32>;
            #[inline(always)]
            fn run<V: Vector>(self) -> Vec<f32> {
                let ByTranspose(a, b, mut c, sizes) = self;
                matmul_by_transpose::<V>(a, b, &mut c, sizes);
                c
            }
        }
        dispatch(lanes, ByTranspose(a, (b, b_row), c.to_vec(), sizes))
    }

    #[test]
    fn the_product_equals_the_definitions_with_a_row_major_and_a_transposed_left_operand() {
        for lanes in every_vector() {
            for (m, k, n) in SIZES {
                let (a, b) = (values(m * k, 1), values(k * n, 2));
                let expected = by_definition(|i, p| a[i * k + p], |p, j| b[p * n + j], (m, k, n));
                assert_close(&product(lanes, &a, (k, 1), &b, (m, k, n)), &expected, k);

                // `a` read as the transpose of a `[k x m]` matrix.
                let expected = by_definition(|i, p| a[p * m + i], |p, j| b[p * n + j], (m, k, n));
                assert_close(&product(lanes, &a, (1, m), &b, (m, k, n)), &expected, k);
            }
        }
    }

    #[test]
    fn the_product_by_a_transpose_equals_the_definition() {
        for lanes in every_vector() {
            // Inner lengths past one chunk, and not a multiple of it or of the lanes.
            for (m, k, n) in SIZES
                .into_iter()
                .chain([(64, 1153, 32), (5, 2 * CHUNK + 3, 6)])
            {
                let (a, b) = (values(m * k, 3), values(n * k, 4));
                let expected = by_definition(|i, p| a[i * k + p], |p, j| b[j * k + p], (m, k, n));
                let zeros = vec![0.0; m * n];
                assert_close(
                    &product_by_transpose(lanes, &a, (&b, k), &zeros, (m, k, n)),
                    &expected,
                    k,
                );
            }
        }
    }

    /// The Winograd convolution's bands: products of some columns of wider matrices, and sums
    /// of such products.
    #[test]
    fn products_of_a_band_of_columns_read_and_write_only_that_band() {
        let (m, k, wide) = (13, 9, 70);
        let (start, n) = (21, 35);
        for lanes in every_vector() {
            // `a [m x k]` by columns `start..start + n` of `b [k x wide]`, into the same columns
            // of `c [m x wide]`; its other columns keep their values.
            let (a, b) = (values(m * k, 5), values(k * wide, 6));
            let mut c = values(m * wide, 7);
            let before = c.clone();
            let band = |p: usize, j: usize| b[p * wide + start + j];
            let expected = by_definition(|i, p| a[i * k + p], band, (m, k, n));
            let (b_band, c_band) = (&b[start..], &mut c[start..]);
            product_into(lanes, (&a, (k, 1)), b_band, c_band, (m, k, n), (wide, wide));
            for i in 0..m {
                let row = &c[i * wide..(i + 1) * wide];
                assert_close(&row[start..start + n], &expected[i * n..(i + 1) * n], k);
                let outside = (0..wide).filter(|j| !(start..start + n).contains(j));
                for j in outside {
                    assert_eq!(
                        row[j].to_bits(),
                        before[i * wide + j].to_bits(),
                        "row {i} column {j}"
                    );
                }
            }

            // `c + a bᵀ` with `a [m x n]` and the rows of `b`'s columns `start..start + n` (`b`
            // `[k x wide]`): added to what `c [m x k]` holds.
            let (a, c) = (values(m * n, 8), values(m * k, 9));
            let expected: Vec<f32> = by_definition(
                |i, p| a[i * n + p],
                |p, j| b[j * wide + start + p],
                (m, n, k),
            )
            .iter()
            .zip(&c)
            .map(|(product, before)| product + before)
            .collect();
            let ours = product_by_transpose(lanes, &a, (&b[start..], wide), &c, (m, n, k));
            assert_close(&ours, &expected, n);
        }
    }
}
