//! The second convolution by Winograd's minimal filtering, F(2x2, 3x3), on the CPU, with its
//! backward pass; the browser's CPU path uses it (`SiameseNet::second_convolution`).
//!
//! Each 4x4 tile of the input (stride 2) and each 3x3 kernel are transformed into 16 values
//! (`V = Bᵀ d B`, `U = G g Gᵀ`); a 2x2 output tile is then `Aᵀ (U ⊙ V) A`. Summed over input
//! channels, the element-wise products become 16 matrix products, one per transformed
//! position: 16 multiplies per tile, kernel and channel instead of 36, 2.25x fewer (1.9x on
//! the tower's 11x11 output, whose last row and column of tiles are half used). The backward
//! pass stays in the transformed space: the output's gradient is transformed (`A dY Aᵀ`), its
//! products with `Vᵀ` and `Uᵀ` give the gradients of `U` and `V`, and those go back through `G`
//! and `B`.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::FloatTensorOps;

use super::{ConvSizes, f32_values, flex_tensor};

/// Inputs a side of a tile, and outputs a side of its result.
const ALPHA: usize = 4;
const TILE: usize = 2;
/// Transformed positions of a tile.
const POINTS: usize = ALPHA * ALPHA;

/// G of F(2x2, 3x3) (Lavin and Gray, 2016); Bᵀ and Aᵀ, all additions, are written out below
/// with their transposes for the backward pass.
const KERNEL_TRANSFORM: [[f32; 3]; ALPHA] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];

/// Bᵀ times a column of 4.
#[inline(always)]
fn input_1d([d0, d1, d2, d3]: [f32; 4]) -> [f32; 4] {
    [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
}

/// B times a column of 4: the adjoint of [`input_1d`].
#[inline(always)]
fn input_1d_adjoint([v0, v1, v2, v3]: [f32; 4]) -> [f32; 4] {
    [v0, v1 - v2 + v3, v2 + v1 - v0, -v3]
}

/// Aᵀ times a column of 4.
#[inline(always)]
fn output_1d([m0, m1, m2, m3]: [f32; 4]) -> [f32; 2] {
    [m0 + m1 + m2, m1 - m2 - m3]
}

/// A times a column of 2: the adjoint of [`output_1d`].
#[inline(always)]
fn output_1d_adjoint([y0, y1]: [f32; 2]) -> [f32; 4] {
    [y0, y0 + y1, y0 - y1, -y1]
}

/// `T X Tᵀ` for the linear map `T` (`one_d`) of each column, then of each row.
#[inline(always)]
fn both_ways<const I: usize, const O: usize>(
    tile: [[f32; I]; I],
    one_d: impl Fn([f32; I]) -> [f32; O],
) -> [[f32; O]; O] {
    let columns: [[f32; O]; I] =
        std::array::from_fn(|j| one_d(std::array::from_fn(|i| tile[i][j])));
    std::array::from_fn(|r| one_d(std::array::from_fn(|j| columns[j][r])))
}

/// `L T Lᵀ` for an `R x C` matrix `L` and a `C x C` tile `T`.
#[inline(always)]
fn sandwich<const R: usize, const C: usize>(
    left: &[[f32; C]; R],
    tile: &[[f32; C]; C],
) -> [[f32; R]; R] {
    let half: [[f32; C]; R] = std::array::from_fn(|r| {
        std::array::from_fn(|j| (0..C).map(|c| left[r][c] * tile[c][j]).sum())
    });
    std::array::from_fn(|r| std::array::from_fn(|s| (0..C).map(|j| half[r][j] * left[s][j]).sum()))
}

/// The adjoint of [`sandwich`]: `Lᵀ G L` for the gradient `G` of its result.
#[inline(always)]
fn sandwich_adjoint<const R: usize, const C: usize>(
    left: &[[f32; C]; R],
    grad: &[[f32; R]; R],
) -> [[f32; C]; C] {
    let half: [[f32; R]; C] = std::array::from_fn(|c| {
        std::array::from_fn(|s| (0..R).map(|r| left[r][c] * grad[r][s]).sum())
    });
    std::array::from_fn(|c| std::array::from_fn(|d| (0..R).map(|s| half[c][s] * left[s][d]).sum()))
}

/// Winograd's sizes of the convolution.
impl ConvSizes {
    fn output_dims(&self) -> [usize; 4] {
        [self.n, self.kernels, self.height - 2, self.width - 2]
    }

    fn tiles_per_side(&self) -> (usize, usize) {
        (
            (self.height - 2).div_ceil(TILE),
            (self.width - 2).div_ceil(TILE),
        )
    }

    /// Tiles of all images: the columns of the transformed inputs.
    fn tiles(&self) -> usize {
        let (h, w) = self.tiles_per_side();
        self.n * h * w
    }

    /// The top-left corner of each tile of an image, in reading order: of its inputs and of
    /// its outputs.
    fn corners(&self) -> impl Iterator<Item = (usize, usize)> + use<> {
        let (tiles_h, tiles_w) = self.tiles_per_side();
        (0..tiles_h).flat_map(move |ty| (0..tiles_w).map(move |tx| (ty * TILE, tx * TILE)))
    }

    /// An input plane with the zeros that the last tiles read past its edges.
    fn padded_width(&self) -> usize {
        self.tiles_per_side().1 * TILE + 2
    }

    fn padded_plane(&self) -> Vec<f32> {
        vec![0.0; (self.tiles_per_side().0 * TILE + 2) * self.padded_width()]
    }

    /// Copies plane `index` of `inputs` into `padded`, whose edges stay zero.
    fn pad(&self, inputs: &[f32], index: usize, padded: &mut [f32]) {
        let plane = &inputs[index * self.height * self.width..][..self.height * self.width];
        let padded_w = self.padded_width();
        for (row, padded_row) in plane
            .chunks_exact(self.width)
            .zip(padded.chunks_mut(padded_w))
        {
            padded_row[..self.width].copy_from_slice(row);
        }
    }

    fn padded_tile(&self, padded: &[f32], top: usize, left: usize) -> [[f32; ALPHA]; ALPHA] {
        let padded_w = self.padded_width();
        std::array::from_fn(|r| {
            padded[(top + r) * padded_w + left..][..ALPHA]
                .try_into()
                .unwrap()
        })
    }

    /// An output plane with room for the last tiles' outputs past its edges.
    fn padded_output_width(&self) -> usize {
        self.tiles_per_side().1 * TILE
    }

    fn padded_output(&self) -> Vec<f32> {
        vec![0.0; self.tiles_per_side().0 * TILE * self.padded_output_width()]
    }
}

/// The convolution of `x` by `weight` plus `bias`, with what its backward pass needs: the
/// sizes and the transformed kernels (`U`) and inputs (`V`).
pub(super) fn forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
) -> (FlexTensor, (ConvSizes, FlexTensor, FlexTensor)) {
    // A valid 3x3 convolution needs 3 inputs a side.
    let sizes = ConvSizes::of(x, weight, 3);
    let u = transform_kernels(weight, &sizes);
    let v = transform_inputs(x, &sizes);
    let output = convolve(u.clone(), v.clone(), bias, &sizes);
    (output, (sizes, u, v))
}

/// `U`: `[POINTS, kernels, channels]`, each kernel transformed.
fn transform_kernels(weight: &FlexTensor, sizes: &ConvSizes) -> FlexTensor {
    let weights = f32_values(weight);
    let (kernels, channels) = (sizes.kernels, sizes.channels);
    let mut transformed = vec![0.0f32; POINTS * kernels * channels];
    for (index, kernel) in weights.chunks_exact(9).enumerate() {
        let g: [[f32; 3]; 3] = std::array::from_fn(|r| std::array::from_fn(|c| kernel[r * 3 + c]));
        let u = sandwich(&KERNEL_TRANSFORM, &g);
        for (point, value) in u.iter().flatten().enumerate() {
            transformed[point * kernels * channels + index] = *value;
        }
    }
    flex_tensor(transformed, [POINTS, kernels, channels])
}

/// `V`: `[POINTS, channels, tiles]`, each input tile transformed (zeros past the edges).
fn transform_inputs(x: &FlexTensor, sizes: &ConvSizes) -> FlexTensor {
    let inputs = f32_values(x);
    let (channels, tiles) = (sizes.channels, sizes.tiles());
    let mut transformed = vec![0.0f32; POINTS * channels * tiles];
    let mut points = split_points(&mut transformed);
    let mut padded = sizes.padded_plane();
    // Channel by channel, so that each transformed position is written in order of tiles.
    for c in 0..channels {
        let mut tile = c * tiles;
        for image in 0..sizes.n {
            sizes.pad(&inputs, image * channels + c, &mut padded);
            for (top, left) in sizes.corners() {
                let d = sizes.padded_tile(&padded, top, left);
                let v = both_ways(d, input_1d);
                store_tile(&mut points, tile, &v);
                tile += 1;
            }
        }
    }
    flex_tensor(transformed, [POINTS, channels, tiles])
}

/// The convolution's output `[n, kernels, height - 2, width - 2]` from `U` and `V`.
fn convolve(
    kernels_u: FlexTensor,
    inputs_v: FlexTensor,
    bias: &FlexTensor,
    sizes: &ConvSizes,
) -> FlexTensor {
    let products = Flex::float_matmul(kernels_u, inputs_v);
    let products = f32_values(&products);
    let biases = f32_values(bias);
    let [n, kernels, out_h, out_w] = sizes.output_dims();
    let tiles = sizes.tiles();
    let points = points_of(&products);
    let mut output = vec![0.0f32; n * kernels * out_h * out_w];
    let mut padded = sizes.padded_output();
    let padded_w = sizes.padded_output_width();
    for k in 0..kernels {
        let mut tile = k * tiles;
        for image in 0..n {
            for (top, left) in sizes.corners() {
                let m = load_tile(&points, tile);
                let y = both_ways(m, output_1d);
                for (r, row) in y.iter().enumerate() {
                    let at = (top + r) * padded_w + left;
                    padded[at..at + TILE].copy_from_slice(row);
                }
                tile += 1;
            }
            let plane = &mut output[(image * kernels + k) * out_h * out_w..][..out_h * out_w];
            for (row, padded_row) in plane.chunks_exact_mut(out_w).zip(padded.chunks(padded_w)) {
                for (out, value) in row.iter_mut().zip(padded_row) {
                    *out = value + biases[k];
                }
            }
        }
    }
    flex_tensor(output, [n, kernels, out_h, out_w])
}

/// The output's gradient in the transformed space, `[POINTS, kernels, tiles]`.
pub(super) fn transform_output_grad(grad: &FlexTensor, sizes: &ConvSizes) -> FlexTensor {
    let grad = f32_values(grad);
    let [n, kernels, out_h, out_w] = sizes.output_dims();
    let tiles = sizes.tiles();
    let mut transformed = vec![0.0f32; POINTS * kernels * tiles];
    let mut points = split_points(&mut transformed);
    let mut padded = sizes.padded_output();
    let padded_w = sizes.padded_output_width();
    for k in 0..kernels {
        let mut tile = k * tiles;
        for image in 0..n {
            let plane = &grad[(image * kernels + k) * out_h * out_w..][..out_h * out_w];
            for (row, padded_row) in plane.chunks_exact(out_w).zip(padded.chunks_mut(padded_w)) {
                padded_row[..out_w].copy_from_slice(row);
            }
            for (top, left) in sizes.corners() {
                let dy: [[f32; TILE]; TILE] = std::array::from_fn(|r| {
                    padded[(top + r) * padded_w + left..][..TILE]
                        .try_into()
                        .unwrap()
                });
                let dm = both_ways(dy, output_1d_adjoint);
                store_tile(&mut points, tile, &dm);
                tile += 1;
            }
        }
    }
    flex_tensor(transformed, [POINTS, kernels, tiles])
}

/// The kernels' gradient `[kernels, channels, 3, 3]` from that of `U`, `[POINTS, kernels,
/// channels]`.
pub(super) fn kernel_grad(u_grad: FlexTensor, sizes: &ConvSizes) -> FlexTensor {
    let u_grad = f32_values(&u_grad);
    let (kernels, channels) = (sizes.kernels, sizes.channels);
    let weight_grad: Vec<f32> = (0..kernels * channels)
        .flat_map(|index| {
            let du: [[f32; ALPHA]; ALPHA] = std::array::from_fn(|r| {
                std::array::from_fn(|s| u_grad[(r * ALPHA + s) * kernels * channels + index])
            });
            sandwich_adjoint(&KERNEL_TRANSFORM, &du)
                .into_iter()
                .flatten()
        })
        .collect();
    flex_tensor(weight_grad, [kernels, channels, 3, 3])
}

/// The input's gradient `[n, channels, height, width]` from that of `V`, `[POINTS, channels,
/// tiles]`: overlapping tiles add up.
pub(super) fn input_grad(v_grad: FlexTensor, sizes: &ConvSizes) -> FlexTensor {
    let v_grad = f32_values(&v_grad);
    let ConvSizes {
        n,
        channels,
        height,
        width,
        ..
    } = *sizes;
    let tiles = sizes.tiles();
    let points = points_of(&v_grad);
    let mut grad = vec![0.0f32; n * channels * height * width];
    let mut padded = sizes.padded_plane();
    let padded_w = sizes.padded_width();
    for c in 0..channels {
        let mut tile = c * tiles;
        for image in 0..n {
            padded.fill(0.0);
            for (top, left) in sizes.corners() {
                let dv = load_tile(&points, tile);
                let dd = both_ways(dv, input_1d_adjoint);
                for (r, row) in dd.iter().enumerate() {
                    let at = (top + r) * padded_w + left;
                    padded[at..at + ALPHA]
                        .iter_mut()
                        .zip(row)
                        .for_each(|(g, d)| *g += d);
                }
                tile += 1;
            }
            let plane = &mut grad[(image * channels + c) * height * width..][..height * width];
            for (row, padded_row) in plane.chunks_exact_mut(width).zip(padded.chunks(padded_w)) {
                row.copy_from_slice(&padded_row[..width]);
            }
        }
    }
    flex_tensor(grad, [n, channels, height, width])
}

/// The bias's gradient: the output's gradient summed over images and positions.
pub(super) fn bias_grad(grad: &FlexTensor, sizes: &ConvSizes) -> FlexTensor {
    let grad = f32_values(grad);
    let [_, kernels, out_h, out_w] = sizes.output_dims();
    let mut sums = vec![0.0f32; kernels];
    for (plane, values) in grad.chunks_exact(out_h * out_w).enumerate() {
        sums[plane % kernels] += values.iter().sum::<f32>();
    }
    flex_tensor(sums, [kernels])
}

/// `a [POINTS, m, k]` times the transpose of `b [POINTS, n, k]`: `[POINTS, m, n]`.
pub(super) fn matmul_transposed(a: FlexTensor, b: FlexTensor) -> FlexTensor {
    Flex::float_matmul(a, Flex::float_swap_dims(b, 1, 2))
}

/// The transpose of `a [POINTS, k, m]` times `b [POINTS, k, n]`: `[POINTS, m, n]`.
pub(super) fn transposed_matmul(a: FlexTensor, b: FlexTensor) -> FlexTensor {
    Flex::float_matmul(Flex::float_swap_dims(a, 1, 2), b)
}

/// The matrix of each transformed position, from `[POINTS, rows, columns]`.
fn split_points(transformed: &mut [f32]) -> [&mut [f32]; POINTS] {
    let len = transformed.len() / POINTS;
    let points: Vec<&mut [f32]> = transformed.chunks_exact_mut(len).collect();
    points.try_into().unwrap()
}

fn points_of(transformed: &[f32]) -> [&[f32]; POINTS] {
    let len = transformed.len() / POINTS;
    std::array::from_fn(|point| &transformed[point * len..(point + 1) * len])
}

/// Writes a transformed tile: its value at each position to that position's matrix.
#[inline(always)]
fn store_tile(points: &mut [&mut [f32]; POINTS], tile: usize, values: &[[f32; ALPHA]; ALPHA]) {
    for r in 0..ALPHA {
        for s in 0..ALPHA {
            points[r * ALPHA + s][tile] = values[r][s];
        }
    }
}

#[inline(always)]
fn load_tile(points: &[&[f32]; POINTS], tile: usize) -> [[f32; ALPHA]; ALPHA] {
    std::array::from_fn(|r| std::array::from_fn(|s| points[r * ALPHA + s][tile]))
}
