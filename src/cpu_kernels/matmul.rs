//! The small matrix products of the Winograd convolution (`winograd`): 16 products a pass of
//! `[64 x 32]` by `[32 x tiles]` and their transposes. Burn's matrix product (the `gemm` crate)
//! packs both operands for every product and runs a generic tile; here a register tile of rows
//! by two vectors reads the operands where they lie, with one operand's values broadcast and
//! the other's loaded as vectors ([`Vector`], the widest the processor has). Called inside
//! `lanes::dispatch`, hence `#[inline(always)]`.

use super::lanes::Vector;

/// A chunk of the inner dimension in [`matmul_by_transpose`], so that the rows it reads stay
/// in the first-level cache: 6 rows of 256 floats.
const CHUNK: usize = 256;

/// `c = a b` for `a` `[m x k]`, whose `(i, p)` is `a[i * a_strides.0 + p * a_strides.1]` (a
/// transpose needs no copy), and row-major `b` `[k x n]` and `c` `[m x n]`.
#[inline(always)]
pub(super) fn matmul<V: Vector>(
    a: &[f32],
    a_strides: (usize, usize),
    b: &[f32],
    c: &mut [f32],
    (m, k, n): (usize, usize, usize),
) {
    let a_end = (m.max(1) - 1) * a_strides.0 + (k.max(1) - 1) * a_strides.1;
    assert!(
        (m == 0 || k == 0 || a_end < a.len()) && b.len() >= k * n && c.len() >= m * n,
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
                unsafe { column_tile::<V, 8>(a, a_strides, b, c, (k, n), (i, j)) };
                i += 8;
            }
        }
        while i + 4 <= m {
            // SAFETY: as above, for 4 rows.
            unsafe { column_tile::<V, 4>(a, a_strides, b, c, (k, n), (i, j)) };
            i += 4;
        }
        for i in i..m {
            // SAFETY: as above, for one row.
            unsafe { column_tile::<V, 1>(a, a_strides, b, c, (k, n), (i, j)) };
        }
    }
    for i in 0..m {
        for j in full_columns..n {
            c[i * n + j] = (0..k)
                .map(|p| a[i * a_strides.0 + p * a_strides.1] * b[p * n + j])
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
    (k, n): (usize, usize),
    (i, j): (usize, usize),
) {
    let mut sums = [[V::zero(); 2]; R];
    for p in 0..k {
        // SAFETY: the caller's bounds.
        unsafe {
            let b_row = b.as_ptr().add(p * n + j);
            let (low, high) = (V::load(b_row), V::load(b_row.add(V::LANES)));
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
            let c_row = c.as_mut_ptr().add((i + r) * n + j);
            low.store(c_row);
            high.store(c_row.add(V::LANES));
        }
    }
}

/// `c = a bᵀ` for row-major `a` `[m x k]`, `b` `[n x k]` and `c` `[m x n]`: dot products of
/// rows, 2 of `a` by 4 of `b` at a time.
#[inline(always)]
pub(super) fn matmul_by_transpose<V: Vector>(
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    (m, k, n): (usize, usize, usize),
) {
    assert!(
        a.len() >= m * k && b.len() >= n * k && c.len() >= m * n,
        "a {m}x{k} by the transpose of {n}x{k} over {}, {} and {} values",
        a.len(),
        b.len(),
        c.len()
    );
    c[..m * n].fill(0.0);
    let (full_rows, full_columns) = (m / 2 * 2, n / 4 * 4);
    for start in (0..k).step_by(CHUNK) {
        let span = (start, CHUNK.min(k - start));
        for i in (0..full_rows).step_by(2) {
            for j in (0..full_columns).step_by(4) {
                // SAFETY: rows i..i + 2 of a, j..j + 4 of b and the span are within the sizes
                // asserted.
                unsafe { dot_tile::<V, 2, 4>(a, b, c, (k, n), (i, j), span) };
            }
        }
        for i in 0..m {
            for j in (0..n).filter(|&j| i >= full_rows || j >= full_columns) {
                // SAFETY: as above, for one row of each.
                unsafe { dot_tile::<V, 1, 1>(a, b, c, (k, n), (i, j), span) };
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
    b: &[f32],
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
            *row = row.add((j + s) * k + start);
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

    /// [`matmul`] with the vector `lanes` names.
    fn product(
        lanes: Lanes,
        a: &[f32],
        a_strides: (usize, usize),
        b: &[f32],
        sizes: (usize, usize, usize),
    ) -> Vec<f32> {
        struct Product<'a>(&'a [f32], (usize, usize), &'a [f32], (usize, usize, usize));
        impl VectorWork for Product<'_> {
            type Output = Vec<f32>;
            #[inline(always)]
            fn run<V: Vector>(self) -> Vec<f32> {
                let Product(a, a_strides, b, (m, k, n)) = self;
                let mut c = vec![f32::NAN; m * n];
                matmul::<V>(a, a_strides, b, &mut c, (m, k, n));
                c
            }
        }
        dispatch(lanes, Product(a, a_strides, b, sizes))
    }

    /// [`matmul_by_transpose`] with the vector `lanes` names.
    fn product_by_transpose(
        lanes: Lanes,
        a: &[f32],
        b: &[f32],
        sizes: (usize, usize, usize),
    ) -> Vec<f32> {
        struct ByTranspose<'a>(&'a [f32], &'a [f32], (usize, usize, usize));
        impl VectorWork for ByTranspose<'_> {
            type Output = Vec<f32>;
            #[inline(always)]
            fn run<V: Vector>(self) -> Vec<f32> {
                let ByTranspose(a, b, (m, k, n)) = self;
                let mut c = vec![f32::NAN; m * n];
                matmul_by_transpose::<V>(a, b, &mut c, (m, k, n));
                c
            }
        }
        dispatch(lanes, ByTranspose(a, b, sizes))
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
                assert_close(
                    &product_by_transpose(lanes, &a, &b, (m, k, n)),
                    &expected,
                    k,
                );
            }
        }
    }
}
