//! The second convolution by Winograd's minimal filtering, F(2x2, 3x3), on the CPU, with its
//! backward pass (`SiameseNet::second_convolution`).
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
//! The transforms run on a vector of images at once (`lanes`: 4 in the browser, 8 or 16
//! natively): the planes are first laid out with the images innermost (`ImageMinor`), so that
//! the same pixel of those images is one vector and each tile's arithmetic is done once for all
//! of them. The columns of the transformed matrices go tile by tile, a vector of images a tile,
//! the image count rounded up to the lanes with zeros. Each entry point runs its kernels with
//! the vector `lanes::dispatch` picks for the image count, the same for a pass's forward and
//! backward kernels; the functions below it are `#[inline(always)]` to be compiled inside it.

use burn::backend::flex::FlexTensor;

use super::lanes::{Vector, VectorWork, dispatch, lanes_for};
use super::matmul::{matmul, matmul_by_transpose};
use super::{ConvSizes, f32_values, flex_tensor};

/// Inputs a side of a tile, and outputs a side of its result.
const ALPHA: usize = 4;
const TILE: usize = 2;
/// Transformed positions of a tile.
const POINTS: usize = ALPHA * ALPHA;

/// G of F(2x2, 3x3) (Lavin and Gray, 2016); Bᵀ and Aᵀ, all additions, are written out below
/// (`TileMap`) with their transposes for the backward pass.
const KERNEL_TRANSFORM: [[f32; 3]; ALPHA] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];

/// One of Winograd's linear maps, on a column of `I` vectors (`O` out).
trait TileMap<const I: usize, const O: usize> {
    fn apply<V: Vector>(column: [V; I]) -> [V; O];

    /// `T X Tᵀ` for the map `T`: on each column of `tile`, then on each row.
    #[inline(always)]
    fn both_ways<V: Vector>(tile: &[[V; I]; I]) -> [[V; O]; O] {
        let mut columns = [[V::zero(); O]; I];
        for (j, column) in columns.iter_mut().enumerate() {
            let mut inputs = [V::zero(); I];
            for (i, input) in inputs.iter_mut().enumerate() {
                *input = tile[i][j];
            }
            *column = Self::apply(inputs);
        }
        let mut result = [[V::zero(); O]; O];
        for (r, row) in result.iter_mut().enumerate() {
            let mut inputs = [V::zero(); I];
            for (j, input) in inputs.iter_mut().enumerate() {
                *input = columns[j][r];
            }
            *row = Self::apply(inputs);
        }
        result
    }
}

/// Bᵀ: an input tile into the transformed space.
struct InputTransform;

impl TileMap<ALPHA, ALPHA> for InputTransform {
    #[inline(always)]
    fn apply<V: Vector>([d0, d1, d2, d3]: [V; 4]) -> [V; 4] {
        [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
    }
}

/// B: the adjoint of [`InputTransform`], for the input's gradient.
struct InputAdjoint;

impl TileMap<ALPHA, ALPHA> for InputAdjoint {
    #[inline(always)]
    fn apply<V: Vector>([v0, v1, v2, v3]: [V; 4]) -> [V; 4] {
        [v0, v1 - v2 + v3, v2 + v1 - v0, -v3]
    }
}

/// Aᵀ: a transformed tile to its outputs.
struct OutputTransform;

impl TileMap<ALPHA, TILE> for OutputTransform {
    #[inline(always)]
    fn apply<V: Vector>([m0, m1, m2, m3]: [V; 4]) -> [V; 2] {
        [m0 + m1 + m2, m1 - m2 - m3]
    }
}

/// A: the adjoint of [`OutputTransform`], for the output's gradient.
struct OutputAdjoint;

impl TileMap<TILE, ALPHA> for OutputAdjoint {
    #[inline(always)]
    fn apply<V: Vector>([y0, y1]: [V; 2]) -> [V; 4] {
        [y0, y0 + y1, y0 - y1, -y1]
    }
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

impl ConvSizes {
    fn output_dims(&self) -> [usize; 4] {
        [self.n, self.kernels, self.height - 2, self.width - 2]
    }
}

/// A convolution's sizes with Winograd's tiling, `vector` images to a vector.
#[derive(Clone, Copy)]
struct Tiling {
    sizes: ConvSizes,
    vector: usize,
}

impl Tiling {
    #[inline(always)]
    fn of<V: Vector>(sizes: &ConvSizes) -> Self {
        Self {
            sizes: *sizes,
            vector: V::LANES,
        }
    }

    fn tiles_per_side(&self) -> (usize, usize) {
        let [_, _, out_h, out_w] = self.sizes.output_dims();
        (out_h.div_ceil(TILE), out_w.div_ceil(TILE))
    }

    /// The images rounded up to a whole number of vectors.
    fn image_lanes(&self) -> usize {
        self.sizes.n.div_ceil(self.vector) * self.vector
    }

    /// Tiles of all images: the columns of the transformed matrices.
    fn tiles(&self) -> usize {
        let (h, w) = self.tiles_per_side();
        h * w * self.image_lanes()
    }

    /// Each tile of a vector of images, in the order of the transformed matrices' columns: the
    /// top-left corner of its inputs and of its outputs, its first image, its first column.
    fn tile_groups(&self) -> impl Iterator<Item = (usize, usize, usize, usize)> + use<> {
        let (tiles_h, tiles_w) = self.tiles_per_side();
        let (lanes, vector) = (self.image_lanes(), self.vector);
        (0..tiles_h * tiles_w).flat_map(move |tile| {
            let (top, left) = (tile / tiles_w * TILE, tile % tiles_w * TILE);
            (0..lanes)
                .step_by(vector)
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

    /// `values` `[images, planes, height, width]` in this layout. Written in order, each value
    /// from a run of the images'.
    fn gather(&self, values: &[f32], planes: usize, (height, width): (usize, usize)) -> Vec<f32> {
        let mut minor = self.zeros(planes);
        let image_len = planes * height * width;
        if image_len == 0 {
            return minor;
        }
        let images = values.len() / image_len;
        for p in 0..planes {
            for row in 0..height {
                for column in 0..width {
                    let at = self.at(p, row, column, 0);
                    let from = (p * height + row) * width + column;
                    for (value, image_value) in minor[at..at + images]
                        .iter_mut()
                        .zip(values[from..].iter().step_by(image_len))
                    {
                        *value = *image_value;
                    }
                }
            }
        }
        minor
    }

    /// `[images, planes, height, width]` from this layout, plus `offset(plane)`; what lies past
    /// those sizes is left out. Read in order, each value to a run of the images'.
    fn scatter(
        &self,
        minor: &[f32],
        [images, planes, height, width]: [usize; 4],
        offset: impl Fn(usize) -> f32,
    ) -> FlexTensor {
        let mut values = vec![0.0f32; images * planes * height * width];
        let image_len = planes * height * width;
        if image_len > 0 {
            for p in 0..planes {
                let offset = offset(p);
                for row in 0..height {
                    for column in 0..width {
                        let at = self.at(p, row, column, 0);
                        let to = (p * height + row) * width + column;
                        for (value, minor_value) in values[to..]
                            .iter_mut()
                            .step_by(image_len)
                            .zip(&minor[at..at + images])
                        {
                            *value = minor_value + offset;
                        }
                    }
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
    struct Forward<'a>(&'a FlexTensor, &'a FlexTensor, &'a FlexTensor, ConvSizes);
    impl VectorWork for Forward<'_> {
        type Output = (FlexTensor, (ConvSizes, FlexTensor, FlexTensor));
        #[inline(always)]
        fn run<V: Vector>(self) -> Self::Output {
            let Forward(x, weight, bias, sizes) = self;
            let tiling = Tiling::of::<V>(&sizes);
            let u = transform_kernels(weight, &sizes);
            let v = transform_inputs::<V>(x, &tiling);
            let output = convolve::<V>(&u, &v, bias, &tiling);
            (output, (sizes, u, v))
        }
    }
    dispatch(lanes_for(sizes.n), Forward(x, weight, bias, sizes))
}

/// `U`: `[POINTS, kernels, channels]`, each kernel transformed.
#[inline(always)]
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
#[inline(always)]
fn transform_inputs<V: Vector>(x: &FlexTensor, tiling: &Tiling) -> FlexTensor {
    let (channels, height, width) = (
        tiling.sizes.channels,
        tiling.sizes.height,
        tiling.sizes.width,
    );
    let grid = tiling.input_grid();
    let inputs = grid.gather(&f32_values(x), channels, (height, width));
    let transformed =
        transform_windows::<V, InputTransform, ALPHA>(&inputs, &grid, channels, tiling);
    flex_tensor(transformed, [POINTS, channels, tiling.tiles()])
}

/// `[POINTS, planes, tiles]`: each tile's `I x I` window of `values` (planes laid out as `grid`)
/// through the map `M` both ways, a vector of images at a time.
#[inline(always)]
fn transform_windows<V: Vector, M: TileMap<I, ALPHA>, const I: usize>(
    values: &[f32],
    grid: &ImageMinor,
    planes: usize,
    tiling: &Tiling,
) -> Vec<f32> {
    let tiles = tiling.tiles();
    let mut transformed = vec![0.0f32; POINTS * planes * tiles];
    let mut points = split_points(&mut transformed);
    for plane in 0..planes {
        for (top, left, image, column) in tiling.tile_groups() {
            let mut window = [[V::zero(); I]; I];
            for (r, row) in window.iter_mut().enumerate() {
                for (s, value) in row.iter_mut().enumerate() {
                    *value = V::read(&values[grid.at(plane, top + r, left + s, image)..]);
                }
            }
            store_tile(&mut points, plane * tiles + column, &M::both_ways(&window));
        }
    }
    transformed
}

/// The way back from the transformed space: each tile of `transformed` (`[POINTS, planes,
/// tiles]`) through the map `M` both ways, added into its `O x O` window of planes laid out as
/// `grid` (where windows overlap, they add up), a vector of images at a time.
#[inline(always)]
fn untransform_tiles<V: Vector, M: TileMap<ALPHA, O>, const O: usize>(
    transformed: &[f32],
    grid: &ImageMinor,
    planes: usize,
    tiling: &Tiling,
) -> Vec<f32> {
    let tiles = tiling.tiles();
    let points = points_of(transformed);
    let mut sums = grid.zeros(planes);
    for plane in 0..planes {
        for (top, left, image, column) in tiling.tile_groups() {
            let window = M::both_ways(&load_tile::<V>(&points, plane * tiles + column));
            for (r, row) in window.iter().enumerate() {
                for (s, value) in row.iter().enumerate() {
                    let sum = &mut sums[grid.at(plane, top + r, left + s, image)..];
                    (V::read(sum) + *value).write(sum);
                }
            }
        }
    }
    sums
}

/// The convolution's output `[n, kernels, height - 2, width - 2]` from `U` and `V`.
#[inline(always)]
fn convolve<V: Vector>(
    kernels_u: &FlexTensor,
    inputs_v: &FlexTensor,
    bias: &FlexTensor,
    tiling: &Tiling,
) -> FlexTensor {
    let (channels, kernels, tiles) = (tiling.sizes.channels, tiling.sizes.kernels, tiling.tiles());
    let products = per_point(
        &f32_values(kernels_u),
        &f32_values(inputs_v),
        kernels * tiles,
        #[inline(always)]
        |u, v, m| matmul::<V>(u, (channels, 1), v, m, (kernels, channels, tiles)),
    );
    let biases = f32_values(bias);
    let grid = tiling.output_grid();
    let outputs = untransform_tiles::<V, OutputTransform, TILE>(&products, &grid, kernels, tiling);
    grid.scatter(&outputs, tiling.sizes.output_dims(), |k| biases[k])
}

/// The output's gradient in the transformed space (`dM`), `[POINTS, kernels, tiles]`.
pub(super) fn transform_output_grad(grad: &FlexTensor, sizes: &ConvSizes) -> Vec<f32> {
    struct OutputGrad<'a>(&'a FlexTensor, ConvSizes);
    impl VectorWork for OutputGrad<'_> {
        type Output = Vec<f32>;
        #[inline(always)]
        fn run<V: Vector>(self) -> Vec<f32> {
            let OutputGrad(grad, sizes) = self;
            let tiling = Tiling::of::<V>(&sizes);
            let [_, kernels, out_h, out_w] = sizes.output_dims();
            let grid = tiling.output_grid();
            let grads = grid.gather(&f32_values(grad), kernels, (out_h, out_w));
            transform_windows::<V, OutputAdjoint, TILE>(&grads, &grid, kernels, &tiling)
        }
    }
    dispatch(lanes_for(sizes.n), OutputGrad(grad, *sizes))
}

/// The kernels' gradient `[kernels, channels, 3, 3]` from that of `U`, each position's
/// `dM Vᵀ` (`[POINTS, kernels, channels]`).
pub(super) fn kernel_grad(m_grad: &[f32], inputs_v: &FlexTensor, sizes: &ConvSizes) -> FlexTensor {
    struct KernelGrad<'a>(&'a [f32], &'a FlexTensor, ConvSizes);
    impl VectorWork for KernelGrad<'_> {
        type Output = FlexTensor;
        #[inline(always)]
        fn run<V: Vector>(self) -> FlexTensor {
            let KernelGrad(m_grad, inputs_v, sizes) = self;
            let tiling = Tiling::of::<V>(&sizes);
            let (kernels, channels, tiles) = (sizes.kernels, sizes.channels, tiling.tiles());
            let u_grad = per_point(
                m_grad,
                &f32_values(inputs_v),
                kernels * channels,
                #[inline(always)]
                |dm, v, du| matmul_by_transpose::<V>(dm, v, du, (kernels, tiles, channels)),
            );
            let weight_grad: Vec<f32> = (0..kernels * channels)
                .flat_map(|index| {
                    let du: [[f32; ALPHA]; ALPHA] = std::array::from_fn(|r| {
                        std::array::from_fn(|s| {
                            u_grad[(r * ALPHA + s) * kernels * channels + index]
                        })
                    });
                    sandwich_adjoint(&KERNEL_TRANSFORM, &du)
                        .into_iter()
                        .flatten()
                })
                .collect();
            flex_tensor(weight_grad, [kernels, channels, 3, 3])
        }
    }
    dispatch(lanes_for(sizes.n), KernelGrad(m_grad, inputs_v, *sizes))
}

/// The input's gradient `[n, channels, height, width]` from that of `V`, each position's
/// `Uᵀ dM` (`[POINTS, channels, tiles]`): overlapping tiles add up.
pub(super) fn input_grad(kernels_u: &FlexTensor, m_grad: &[f32], sizes: &ConvSizes) -> FlexTensor {
    struct InputGrad<'a>(&'a FlexTensor, &'a [f32], ConvSizes);
    impl VectorWork for InputGrad<'_> {
        type Output = FlexTensor;
        #[inline(always)]
        fn run<V: Vector>(self) -> FlexTensor {
            let InputGrad(kernels_u, m_grad, sizes) = self;
            let tiling = Tiling::of::<V>(&sizes);
            let ConvSizes {
                n,
                channels,
                kernels,
                height,
                width,
            } = sizes;
            let tiles = tiling.tiles();
            let v_grad = per_point(
                &f32_values(kernels_u),
                m_grad,
                channels * tiles,
                #[inline(always)]
                |u, dm, dv| matmul::<V>(u, (1, channels), dm, dv, (channels, kernels, tiles)),
            );
            let grid = tiling.input_grid();
            let sums =
                untransform_tiles::<V, InputAdjoint, ALPHA>(&v_grad, &grid, channels, &tiling);
            grid.scatter(&sums, [n, channels, height, width], |_| 0.0)
        }
    }
    dispatch(lanes_for(sizes.n), InputGrad(kernels_u, m_grad, *sizes))
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
#[inline(always)]
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

/// Writes a transformed tile of a vector of images: its value at each position to that
/// position's matrix, at `column`.
#[inline(always)]
fn store_tile<V: Vector>(
    points: &mut [&mut [f32]; POINTS],
    column: usize,
    values: &[[V; ALPHA]; ALPHA],
) {
    for r in 0..ALPHA {
        for s in 0..ALPHA {
            values[r][s].write(&mut points[r * ALPHA + s][column..]);
        }
    }
}

#[inline(always)]
fn load_tile<V: Vector>(points: &[&[f32]; POINTS], column: usize) -> [[V; ALPHA]; ALPHA] {
    let mut tile = [[V::zero(); ALPHA]; ALPHA];
    for (r, row) in tile.iter_mut().enumerate() {
        for (s, value) in row.iter_mut().enumerate() {
            *value = V::read(&points[r * ALPHA + s][column..]);
        }
    }
    tile
}
