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
//!
//! The transforms run on four images at once: the planes are first laid out with the images
//! innermost (`ImageMinor`), so that the same pixel of four images is one simd128 vector and
//! each tile's arithmetic is done once for four of them. The columns of the transformed
//! matrices go tile by tile, four images a tile, the image count rounded up to four with zeros.

use burn::backend::flex::FlexTensor;

use super::lanes::{F32x4, LANES};
use super::matmul::{matmul, matmul_by_transpose};
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
fn input_1d([d0, d1, d2, d3]: [F32x4; 4]) -> [F32x4; 4] {
    [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
}

/// B times a column of 4: the adjoint of [`input_1d`].
#[inline(always)]
fn input_1d_adjoint([v0, v1, v2, v3]: [F32x4; 4]) -> [F32x4; 4] {
    [v0, v1 - v2 + v3, v2 + v1 - v0, -v3]
}

/// Aᵀ times a column of 4.
#[inline(always)]
fn output_1d([m0, m1, m2, m3]: [F32x4; 4]) -> [F32x4; 2] {
    [m0 + m1 + m2, m1 - m2 - m3]
}

/// A times a column of 2: the adjoint of [`output_1d`].
#[inline(always)]
fn output_1d_adjoint([y0, y1]: [F32x4; 2]) -> [F32x4; 4] {
    [y0, y0 + y1, y0 - y1, -y1]
}

/// `T X Tᵀ` for the linear map `T` (`one_d`) of each column, then of each row.
#[inline(always)]
fn both_ways<const I: usize, const O: usize>(
    tile: [[F32x4; I]; I],
    one_d: impl Fn([F32x4; I]) -> [F32x4; O],
) -> [[F32x4; O]; O] {
    let columns: [[F32x4; O]; I] =
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

    /// The images rounded up to a whole number of vectors.
    fn image_lanes(&self) -> usize {
        self.n.div_ceil(LANES) * LANES
    }

    /// Tiles of all images: the columns of the transformed matrices.
    fn tiles(&self) -> usize {
        let (h, w) = self.tiles_per_side();
        h * w * self.image_lanes()
    }

    /// Each tile of four images, in the order of the transformed matrices' columns: the
    /// top-left corner of its inputs and of its outputs, its first image, its first column.
    fn tile_groups(&self) -> impl Iterator<Item = (usize, usize, usize, usize)> + use<> {
        let (tiles_h, tiles_w) = self.tiles_per_side();
        let lanes = self.image_lanes();
        (0..tiles_h * tiles_w).flat_map(move |tile| {
            let (top, left) = (tile / tiles_w * TILE, tile % tiles_w * TILE);
            (0..lanes)
                .step_by(LANES)
                .map(move |image| (top, left, image, tile * lanes + image))
        })
    }

    /// The inputs' planes with the zeros that the last tiles read past their edges.
    fn input_grid(&self) -> ImageMinor {
        let (tiles_h, tiles_w) = self.tiles_per_side();
        ImageMinor {
            rows: tiles_h * TILE + 2,
            columns: tiles_w * TILE + 2,
            lanes: self.image_lanes(),
        }
    }

    /// The outputs' planes with room for the last tiles' outputs past their edges.
    fn output_grid(&self) -> ImageMinor {
        let (tiles_h, tiles_w) = self.tiles_per_side();
        ImageMinor {
            rows: tiles_h * TILE,
            columns: tiles_w * TILE,
            lanes: self.image_lanes(),
        }
    }
}

/// Planes of images laid out `[planes, rows, columns, lanes]`: the images innermost, each plane
/// at least as large as the images' and padded with zeros, as are the lanes past the last image.
#[derive(Clone, Copy)]
struct ImageMinor {
    rows: usize,
    columns: usize,
    lanes: usize,
}

impl ImageMinor {
    fn at(&self, plane: usize, row: usize, column: usize, image: usize) -> usize {
        ((plane * self.rows + row) * self.columns + column) * self.lanes + image
    }

    fn zeros(&self, planes: usize) -> Vec<f32> {
        vec![0.0; planes * self.rows * self.columns * self.lanes]
    }

    /// `values` `[images, planes, height, width]` in this layout.
    fn gather(&self, values: &[f32], planes: usize, (height, width): (usize, usize)) -> Vec<f32> {
        let mut minor = self.zeros(planes);
        for (index, plane) in values.chunks_exact(height * width).enumerate() {
            let (image, p) = (index / planes, index % planes);
            for (row, values) in plane.chunks_exact(width).enumerate() {
                let start = self.at(p, row, 0, image);
                for (column, value) in values.iter().enumerate() {
                    minor[start + column * self.lanes] = *value;
                }
            }
        }
        minor
    }

    /// `[images, planes, height, width]` from this layout, plus `offset(plane)`; what lies past
    /// those sizes is left out.
    fn scatter(
        &self,
        minor: &[f32],
        [images, planes, height, width]: [usize; 4],
        offset: impl Fn(usize) -> f32,
    ) -> FlexTensor {
        let mut values = vec![0.0f32; images * planes * height * width];
        for (index, plane) in values.chunks_exact_mut(height * width).enumerate() {
            let (image, p) = (index / planes, index % planes);
            for (row, values) in plane.chunks_exact_mut(width).enumerate() {
                let start = self.at(p, row, 0, image);
                for (column, value) in values.iter_mut().enumerate() {
                    *value = minor[start + column * self.lanes] + offset(p);
                }
            }
        }
        flex_tensor(values, [images, planes, height, width])
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
    let output = convolve(&u, &v, bias, &sizes);
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
    let grid = sizes.input_grid();
    let inputs = grid.gather(&f32_values(x), sizes.channels, (sizes.height, sizes.width));
    let transformed = transform_windows(&inputs, &grid, sizes.channels, sizes, input_1d);
    flex_tensor(transformed, [POINTS, sizes.channels, sizes.tiles()])
}

/// `[POINTS, planes, tiles]`: each tile's `I x I` window of `values` (planes laid out as `grid`)
/// through the linear map `one_d` both ways, four images at a time.
fn transform_windows<const I: usize>(
    values: &[f32],
    grid: &ImageMinor,
    planes: usize,
    sizes: &ConvSizes,
    one_d: impl Fn([F32x4; I]) -> [F32x4; ALPHA],
) -> Vec<f32> {
    let tiles = sizes.tiles();
    let mut transformed = vec![0.0f32; POINTS * planes * tiles];
    let mut points = split_points(&mut transformed);
    for plane in 0..planes {
        for (top, left, image, column) in sizes.tile_groups() {
            let window = std::array::from_fn(|r| {
                std::array::from_fn(|s| {
                    F32x4::read(&values[grid.at(plane, top + r, left + s, image)..])
                })
            });
            store_tile(
                &mut points,
                plane * tiles + column,
                &both_ways(window, &one_d),
            );
        }
    }
    transformed
}

/// The way back from the transformed space: each tile of `transformed` (`[POINTS, planes,
/// tiles]`) through the linear map `one_d` both ways, added into its `O x O` window of planes
/// laid out as `grid` (where windows overlap, they add up), four images at a time.
fn untransform_tiles<const O: usize>(
    transformed: &[f32],
    grid: &ImageMinor,
    planes: usize,
    sizes: &ConvSizes,
    one_d: impl Fn([F32x4; ALPHA]) -> [F32x4; O],
) -> Vec<f32> {
    let tiles = sizes.tiles();
    let points = points_of(transformed);
    let mut sums = grid.zeros(planes);
    for plane in 0..planes {
        for (top, left, image, column) in sizes.tile_groups() {
            let window = both_ways(load_tile(&points, plane * tiles + column), &one_d);
            for (r, row) in window.iter().enumerate() {
                for (s, value) in row.iter().enumerate() {
                    let sum = &mut sums[grid.at(plane, top + r, left + s, image)..];
                    (F32x4::read(sum) + *value).write(sum);
                }
            }
        }
    }
    sums
}

/// The convolution's output `[n, kernels, height - 2, width - 2]` from `U` and `V`.
fn convolve(
    kernels_u: &FlexTensor,
    inputs_v: &FlexTensor,
    bias: &FlexTensor,
    sizes: &ConvSizes,
) -> FlexTensor {
    let [n, kernels, out_h, out_w] = sizes.output_dims();
    let (channels, tiles) = (sizes.channels, sizes.tiles());
    let products = per_point(
        &f32_values(kernels_u),
        &f32_values(inputs_v),
        kernels * tiles,
        |u, v, m| matmul(u, (channels, 1), v, m, (kernels, channels, tiles)),
    );
    let biases = f32_values(bias);
    let grid = sizes.output_grid();
    let outputs = untransform_tiles(&products, &grid, kernels, sizes, output_1d);
    grid.scatter(&outputs, [n, kernels, out_h, out_w], |k| biases[k])
}

/// The output's gradient in the transformed space (`dM`), `[POINTS, kernels, tiles]`.
pub(super) fn transform_output_grad(grad: &FlexTensor, sizes: &ConvSizes) -> Vec<f32> {
    let [_, kernels, out_h, out_w] = sizes.output_dims();
    let grid = sizes.output_grid();
    let grads = grid.gather(&f32_values(grad), kernels, (out_h, out_w));
    transform_windows(&grads, &grid, kernels, sizes, output_1d_adjoint)
}

/// The kernels' gradient `[kernels, channels, 3, 3]` from that of `U`, each position's
/// `dM Vᵀ` (`[POINTS, kernels, channels]`).
pub(super) fn kernel_grad(m_grad: &[f32], inputs_v: &FlexTensor, sizes: &ConvSizes) -> FlexTensor {
    let (kernels, channels, tiles) = (sizes.kernels, sizes.channels, sizes.tiles());
    let u_grad = per_point(
        m_grad,
        &f32_values(inputs_v),
        kernels * channels,
        |dm, v, du| matmul_by_transpose(dm, v, du, (kernels, tiles, channels)),
    );
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

/// The input's gradient `[n, channels, height, width]` from that of `V`, each position's
/// `Uᵀ dM` (`[POINTS, channels, tiles]`): overlapping tiles add up.
pub(super) fn input_grad(kernels_u: &FlexTensor, m_grad: &[f32], sizes: &ConvSizes) -> FlexTensor {
    let ConvSizes {
        n,
        channels,
        kernels,
        height,
        width,
    } = *sizes;
    let tiles = sizes.tiles();
    let v_grad = per_point(
        &f32_values(kernels_u),
        m_grad,
        channels * tiles,
        |u, dm, dv| matmul(u, (1, channels), dm, dv, (channels, kernels, tiles)),
    );
    let grid = sizes.input_grid();
    let sums = untransform_tiles(&v_grad, &grid, channels, sizes, input_1d_adjoint);
    grid.scatter(&sums, [n, channels, height, width], |_| 0.0)
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

/// `[POINTS, ..]` of `product(a, b, c)`, for each position's matrices of `a` and `b` and its
/// `c_len` values of the result.
fn per_point(
    a: &[f32],
    b: &[f32],
    c_len: usize,
    product: impl Fn(&[f32], &[f32], &mut [f32]),
) -> Vec<f32> {
    // An empty operand (no images) has empty matrices, and its products are zeros.
    let matrix_len = |values: &[f32]| (values.len() / POINTS).max(1);
    let mut c = vec![0.0f32; POINTS * c_len];
    for ((a, b), c) in a
        .chunks_exact(matrix_len(a))
        .zip(b.chunks_exact(matrix_len(b)))
        .zip(c.chunks_exact_mut(c_len))
    {
        product(a, b, c);
    }
    c
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

/// Writes a transformed tile of four images: its value at each position to that position's
/// matrix, at `column`.
#[inline(always)]
fn store_tile(points: &mut [&mut [f32]; POINTS], column: usize, values: &[[F32x4; ALPHA]; ALPHA]) {
    for r in 0..ALPHA {
        for s in 0..ALPHA {
            values[r][s].write(&mut points[r * ALPHA + s][column..]);
        }
    }
}

#[inline(always)]
fn load_tile(points: &[&[f32]; POINTS], column: usize) -> [[F32x4; ALPHA]; ALPHA] {
    std::array::from_fn(|r| std::array::from_fn(|s| F32x4::read(&points[r * ALPHA + s][column..])))
}
