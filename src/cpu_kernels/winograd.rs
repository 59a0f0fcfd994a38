//! The second convolution by Winograd's minimal filtering, F(4x4, 3x3), on the CPU, with its
//! backward pass (`SiameseNet::second_convolution`).
//!
//! Each 6x6 tile of the input (stride 4) and each 3x3 kernel are transformed into 36 values
//! (`V = Bᵀ d B`, `U = G g Gᵀ`); a 4x4 output tile is then `Aᵀ (U ⊙ V) A`. Summed over input
//! channels, the element-wise products become 36 matrix products, one per transformed
//! position: 36 multiplies per tile, kernel and channel instead of 144, 4x fewer (3.4x on the
//! tower's 11x11 output, whose last row and column of tiles are three quarters used; F(2x2,
//! 3x3) gave 1.9x there). Its larger constants round more in f32: in the test against Burn's
//! convolution the outputs differ from Burn's by up to 1e-5, F(2x2, 3x3)'s by 2e-6, and
//! training reaches the same accuracy. The backward pass stays in the transformed space: the
//! output's gradient is transformed (`A dY Aᵀ`), its products with `Vᵀ` and `Uᵀ` give the
//! gradients of `U` and `V`, and those go back through `G` and `B`.
//!
//! Both passes go a band of the transformed matrices' columns at a time (`BAND`), so that a
//! band's products stay in the caches for the transform that reads them.
//!
//! The transforms run on a vector of images at once (`lanes`: 4 in the browser, 8 or 16
//! natively): the planes are first laid out with the images innermost (`ImageMinor`), so that
//! the same pixel of those images is one vector and each tile's arithmetic is done once for all
//! of them. The columns of the transformed matrices go tile by tile, a vector of images a tile,
//! the image count rounded up to the lanes with zeros. Each entry point runs its kernels with
//! the vector `lanes::dispatch` picks for the image count, the same for a pass's forward and
//! backward kernels; the functions below it are `#[inline(always)]` to be compiled inside it.

use std::ops::Range;

use burn::backend::flex::FlexTensor;

use super::lanes::{MOST_LANES, Vector, VectorWork, dispatch, lanes_for};
use super::matmul::{matmul, matmul_by_transpose};
use super::{ConvSizes, f32_values, flex_tensor};

/// Inputs a side of a tile, and outputs a side of its result.
const ALPHA: usize = 6;
const TILE: usize = 4;
/// Transformed positions of a tile.
const POINTS: usize = ALPHA * ALPHA;

/// One of Winograd's linear maps, on a column of `I` vectors (`O` out). Those of F(4x4, 3x3)
/// at the points 0, ±1, ±2 and ∞ (Lavin and Gray, 2016), G, Bᵀ and Aᵀ, are written out below,
/// factored to fewer operations, with their transposes for the backward pass.
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

/// G: a 3x3 kernel into the transformed space. Its rows are `[1/4, 0, 0]`,
/// `[-1/6, -1/6, -1/6]`, `[-1/6, 1/6, -1/6]`, `[1/24, 1/12, 1/6]`, `[1/24, -1/12, 1/6]` and
/// `[0, 0, 1]`.
struct KernelTransform;

impl TileMap<3, ALPHA> for KernelTransform {
    #[inline(always)]
    fn apply<V: Vector>([g0, g1, g2]: [V; 3]) -> [V; 6] {
        let (even_1, odd_1) = (scaled(-1.0 / 6.0, g0 + g2), scaled(-1.0 / 6.0, g1));
        let even_2 = scaled(1.0 / 24.0, g0).add_product(V::splat(1.0 / 6.0), g2);
        let odd_2 = scaled(1.0 / 12.0, g1);
        [
            scaled(0.25, g0),
            even_1 + odd_1,
            even_1 - odd_1,
            even_2 + odd_2,
            even_2 - odd_2,
            g2,
        ]
    }
}

/// Gᵀ: the adjoint of [`KernelTransform`], for the kernels' gradient.
struct KernelAdjoint;

impl TileMap<ALPHA, 3> for KernelAdjoint {
    #[inline(always)]
    fn apply<V: Vector>([d0, d1, d2, d3, d4, d5]: [V; 6]) -> [V; 3] {
        let (sum12, difference12) = (d1 + d2, d1 - d2);
        let (sum34, difference34) = (d3 + d4, d3 - d4);
        [
            scaled(0.25, d0)
                .add_product(V::splat(-1.0 / 6.0), sum12)
                .add_product(V::splat(1.0 / 24.0), sum34),
            scaled(-1.0 / 6.0, difference12).add_product(V::splat(1.0 / 12.0), difference34),
            d5.add_product(V::splat(1.0 / 6.0), sum34 - sum12),
        ]
    }
}

/// `factor x`.
#[inline(always)]
fn scaled<V: Vector>(factor: f32, x: V) -> V {
    V::zero().add_product(V::splat(factor), x)
}

/// Bᵀ: an input tile into the transformed space. Its rows are
/// `[4, 0, -5, 0, 1, 0]`, `[0, -4, -4, 1, 1, 0]`, `[0, 4, -4, -1, 1, 0]`,
/// `[0, -2, -1, 2, 1, 0]`, `[0, 2, -1, -2, 1, 0]` and `[0, 4, 0, -5, 0, 1]`.
struct InputTransform;

impl TileMap<ALPHA, ALPHA> for InputTransform {
    #[inline(always)]
    fn apply<V: Vector>([d0, d1, d2, d3, d4, d5]: [V; 6]) -> [V; 6] {
        let (four, minus_four, minus_five) = (V::splat(4.0), V::splat(-4.0), V::splat(-5.0));
        // The rows of the points ±1 and of ±2: an even part plus or minus an odd one.
        let (even_1, odd_1) = (
            d4.add_product(minus_four, d2),
            d3.add_product(minus_four, d1),
        );
        let (even_2, half_odd_2) = (d4 - d2, d3 - d1);
        [
            d4.add_product(minus_five, d2).add_product(four, d0),
            even_1 + odd_1,
            even_1 - odd_1,
            even_2 + half_odd_2 + half_odd_2,
            even_2 - half_odd_2 - half_odd_2,
            d5.add_product(minus_five, d3).add_product(four, d1),
        ]
    }
}

/// B: the adjoint of [`InputTransform`], for the input's gradient.
struct InputAdjoint;

impl TileMap<ALPHA, ALPHA> for InputAdjoint {
    #[inline(always)]
    fn apply<V: Vector>([v0, v1, v2, v3, v4, v5]: [V; 6]) -> [V; 6] {
        let (four, minus_four, minus_five) = (V::splat(4.0), V::splat(-4.0), V::splat(-5.0));
        let (sum12, difference12) = (v1 + v2, v1 - v2);
        let (sum34, difference34) = (v3 + v4, v3 - v4);
        [
            scaled(4.0, v0),
            (-difference34 - difference34).add_product(four, v5 - difference12),
            (-sum34)
                .add_product(minus_four, sum12)
                .add_product(minus_five, v0),
            (difference12 + difference34 + difference34).add_product(minus_five, v5),
            v0 + sum12 + sum34,
            v5,
        ]
    }
}

/// Aᵀ: a transformed tile to its outputs. Its rows are `[1, 1, 1, 1, 1, 0]`,
/// `[0, 1, -1, 2, -2, 0]`, `[0, 1, 1, 4, 4, 0]` and `[0, 1, -1, 8, -8, 1]`.
struct OutputTransform;

impl TileMap<ALPHA, TILE> for OutputTransform {
    #[inline(always)]
    fn apply<V: Vector>([m0, m1, m2, m3, m4, m5]: [V; 6]) -> [V; 4] {
        let (four, eight) = (V::splat(4.0), V::splat(8.0));
        let (sum12, difference12) = (m1 + m2, m1 - m2);
        let (sum34, difference34) = (m3 + m4, m3 - m4);
        [
            m0 + sum12 + sum34,
            difference12 + difference34 + difference34,
            sum12.add_product(four, sum34),
            (difference12 + m5).add_product(eight, difference34),
        ]
    }
}

/// A: the adjoint of [`OutputTransform`], for the output's gradient.
struct OutputAdjoint;

impl TileMap<TILE, ALPHA> for OutputAdjoint {
    #[inline(always)]
    fn apply<V: Vector>([y0, y1, y2, y3]: [V; 4]) -> [V; 6] {
        let (four, eight) = (V::splat(4.0), V::splat(8.0));
        // The points ±1 and ±2, as in `InputTransform`.
        let (even_1, odd_1) = (y0 + y2, y1 + y3);
        let (even_2, odd_2) = (y0.add_product(four, y2), (y1 + y1).add_product(eight, y3));
        [
            y0,
            even_1 + odd_1,
            even_1 - odd_1,
            even_2 + odd_2,
            even_2 - odd_2,
            y3,
        ]
    }
}

impl ConvSizes {
    fn output_dims(&self) -> [usize; 4] {
        [self.n, self.kernels, self.height - 2, self.width - 2]
    }
}

/// A tile of a vector of images: the top-left corner of its inputs and of its outputs, its
/// first image, its first column in the transformed matrices.
type TileGroup = (usize, usize, usize, usize);

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
    /// `i`th starts at column `i * vector`.
    fn tile_groups(&self) -> Vec<TileGroup> {
        let (tiles_h, tiles_w) = self.tiles_per_side();
        let (lanes, vector) = (self.image_lanes(), self.vector);
        (0..tiles_h * tiles_w)
            .flat_map(move |tile| {
                let (top, left) = (tile / tiles_w * TILE, tile % tiles_w * TILE);
                (0..lanes)
                    .step_by(vector)
                    .map(move |image| (top, left, image, tile * lanes + image))
            })
            .collect()
    }

    /// The columns in bands of `BAND` (the last one narrower), each with its tiles, from all
    /// the tiles' `groups`. A band's width is a whole number of vectors, so no vector
    /// straddles two.
    fn bands<'a>(&self, groups: &'a [TileGroup]) -> impl Iterator<Item = Band<'a>> {
        let (tiles, vector) = (self.tiles(), self.vector);
        (0..tiles).step_by(BAND).map(move |start| {
            let columns = start..(start + BAND).min(tiles);
            let groups = &groups[columns.start / vector..columns.end / vector];
            Band { columns, groups }
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

/// Some of the transformed matrices' columns and the tiles of a vector of images in them.
struct Band<'a> {
    columns: Range<usize>,
    groups: &'a [TileGroup],
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
            let u = transform_kernels::<V>(weight, &sizes);
            let v = transform_inputs::<V>(x, &tiling);
            let output = convolve::<V>(&u, &v, bias, &tiling);
            (output, (sizes, u, v))
        }
    }
    dispatch(lanes_for(sizes.n), Forward(x, weight, bias, sizes))
}

/// `U`: `[POINTS, kernels, channels]`, each kernel transformed, a vector of kernels at a time.
#[inline(always)]
fn transform_kernels<V: Vector>(weight: &FlexTensor, sizes: &ConvSizes) -> FlexTensor {
    let weights = f32_values(weight);
    let count = sizes.kernels * sizes.channels;
    let mut transformed = vec![0.0f32; POINTS * count];
    for first in (0..count).step_by(V::LANES) {
        let lanes = (count - first).min(V::LANES);
        let g: [[V; 3]; 3] = std::array::from_fn(|r| {
            std::array::from_fn(|c| {
                let mut taps = [0.0f32; MOST_LANES];
                for (lane, tap) in taps[..lanes].iter_mut().enumerate() {
                    *tap = weights[(first + lane) * 9 + r * 3 + c];
                }
                V::read(&taps)
            })
        });
        for (point, value) in KernelTransform::both_ways(&g).iter().flatten().enumerate() {
            value.write_up_to(&mut transformed[point * count + first..][..lanes]);
        }
    }
    flex_tensor(transformed, [POINTS, sizes.kernels, sizes.channels])
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
    let groups = tiling.tile_groups();
    let mut transformed = vec![0.0f32; POINTS * channels * tiling.tiles()];
    let all = Band {
        columns: 0..tiling.tiles(),
        groups: &groups,
    };
    let planes = (&grid, channels);
    transform_band::<V, InputTransform, ALPHA>(&inputs, planes, &all, &mut transformed);
    flex_tensor(transformed, [POINTS, channels, tiling.tiles()])
}

/// Into `transformed` (`[POINTS, planes, band]`, the band's columns of the transformed
/// matrices): each of the band's tiles' `I x I` window of `values` (planes laid out as `grid`)
/// through the map `M` both ways, a vector of images at a time.
#[inline(always)]
fn transform_band<V: Vector, M: TileMap<I, ALPHA>, const I: usize>(
    values: &[f32],
    (grid, planes): (&ImageMinor, usize),
    band: &Band,
    transformed: &mut [f32],
) {
    let mut points = split_points(transformed);
    let (start, width) = (band.columns.start, band.columns.len());
    for plane in 0..planes {
        for &(top, left, image, column) in band.groups {
            let mut window = [[V::zero(); I]; I];
            for (r, row) in window.iter_mut().enumerate() {
                for (s, value) in row.iter_mut().enumerate() {
                    *value = V::read(&values[grid.at(plane, top + r, left + s, image)..]);
                }
            }
            let at = plane * width + column - start;
            store_tile(&mut points, at, &M::both_ways(&window));
        }
    }
}

/// The way back from the transformed space for a band of columns: each tile of `transformed`
/// (`[POINTS, planes, band]`, the band's columns of the transformed matrices) through the map
/// `M` both ways, added into its `O x O` window of `sums`, planes laid out as `grid` (where
/// windows overlap, they add up), a vector of images at a time.
#[inline(always)]
fn untransform_band<V: Vector, M: TileMap<ALPHA, O>, const O: usize>(
    transformed: &[f32],
    (grid, planes): (&ImageMinor, usize),
    band: &Band,
    sums: &mut [f32],
) {
    let points = points_of(transformed);
    let (start, width) = (band.columns.start, band.columns.len());
    for plane in 0..planes {
        for &(top, left, image, column) in band.groups {
            let at = plane * width + column - start;
            let window = M::both_ways(&load_tile::<V>(&points, at));
            for (r, row) in window.iter().enumerate() {
                for (s, value) in row.iter().enumerate() {
                    let sum = &mut sums[grid.at(plane, top + r, left + s, image)..];
                    (V::read(sum) + *value).write(sum);
                }
            }
        }
    }
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
    let (u, v) = (f32_values(kernels_u), f32_values(inputs_v));
    let grid = tiling.output_grid();
    let groups = tiling.tile_groups();
    let mut outputs = grid.zeros(kernels);
    let mut products = vec![0.0f32; POINTS * kernels * BAND.min(tiles)];
    for band in tiling.bands(&groups) {
        let (start, band_width) = (band.columns.start, band.columns.len());
        let products = &mut products[..POINTS * kernels * band_width];
        for (point, m) in products.chunks_exact_mut(kernels * band_width).enumerate() {
            let u = &u[point * kernels * channels..];
            let v = &v[point * channels * tiles + start..];
            let sizes = (kernels, channels, band_width);
            matmul::<V>(u, (channels, 1), v, m, sizes, (tiles, band_width));
        }
        let planes = (&grid, kernels);
        untransform_band::<V, OutputTransform, TILE>(products, planes, &band, &mut outputs);
    }
    let biases = f32_values(bias);
    grid.scatter(&outputs, tiling.sizes.output_dims(), |k| biases[k])
}

/// The gradients of the kernels (`[kernels, channels, 3, 3]`) and of the input (`[n, channels,
/// height, width]`), those asked for, from the output's `grad`, the transformed kernels `U`
/// and inputs `V`. A band of columns at a time: the output's gradient in the transformed space
/// (`dM = A dY Aᵀ`), then its products with `Vᵀ` (added up over the bands into `dU`, which goes
/// back through `G`) and with `Uᵀ` (`dV`, back through `B` into the input's gradient, where
/// overlapping tiles add up).
pub(super) fn backward(
    grad: &FlexTensor,
    (kernels_u, inputs_v): (&FlexTensor, &FlexTensor),
    sizes: &ConvSizes,
    (kernel_wanted, input_wanted): (bool, bool),
) -> (Option<FlexTensor>, Option<FlexTensor>) {
    struct Backward<'a> {
        grad: &'a FlexTensor,
        kernels_u: &'a FlexTensor,
        inputs_v: &'a FlexTensor,
        sizes: ConvSizes,
        wanted: (bool, bool),
    }
    impl VectorWork for Backward<'_> {
        type Output = (Option<FlexTensor>, Option<FlexTensor>);
        #[inline(always)]
        fn run<V: Vector>(self) -> Self::Output {
            let Backward {
                grad,
                kernels_u,
                inputs_v,
                sizes,
                wanted: (kernel_wanted, input_wanted),
            } = self;
            let tiling = Tiling::of::<V>(&sizes);
            let ConvSizes {
                n,
                channels,
                kernels,
                height,
                width,
            } = sizes;
            let tiles = tiling.tiles();
            let [_, _, out_h, out_w] = sizes.output_dims();
            let (output_grid, input_grid) = (tiling.output_grid(), tiling.input_grid());
            let grads = output_grid.gather(&f32_values(grad), kernels, (out_h, out_w));
            let groups = tiling.tile_groups();
            let (u, v) = (f32_values(kernels_u), f32_values(inputs_v));
            let (u_len, v_len) = (kernels * channels, channels * tiles);

            let mut u_grad = vec![0.0f32; if kernel_wanted { POINTS * u_len } else { 0 }];
            let mut sums = if input_wanted {
                input_grid.zeros(channels)
            } else {
                Vec::new()
            };
            let band_len = BAND.min(tiles);
            let mut m_grad = vec![0.0f32; POINTS * kernels * band_len];
            let v_grad_len = if input_wanted {
                POINTS * channels * band_len
            } else {
                0
            };
            let mut v_grad = vec![0.0f32; v_grad_len];
            for band in tiling.bands(&groups) {
                let (start, band_width) = (band.columns.start, band.columns.len());
                let m_grad = &mut m_grad[..POINTS * kernels * band_width];
                let planes = (&output_grid, kernels);
                transform_band::<V, OutputAdjoint, TILE>(&grads, planes, &band, m_grad);
                for point in 0..POINTS {
                    let dm = &m_grad[point * kernels * band_width..][..kernels * band_width];
                    if kernel_wanted {
                        let v = (&v[point * v_len + start..], tiles);
                        let du = &mut u_grad[point * u_len..][..u_len];
                        matmul_by_transpose::<V>(dm, v, du, (kernels, band_width, channels));
                    }
                    if input_wanted {
                        let u = &u[point * u_len..];
                        let dv =
                            &mut v_grad[point * channels * band_width..][..channels * band_width];
                        matmul::<V>(
                            u,
                            (1, channels),
                            dm,
                            dv,
                            (channels, kernels, band_width),
                            (band_width, band_width),
                        );
                    }
                }
                if input_wanted {
                    let v_grad = &v_grad[..POINTS * channels * band_width];
                    let planes = (&input_grid, channels);
                    untransform_band::<V, InputAdjoint, ALPHA>(v_grad, planes, &band, &mut sums);
                }
            }
            let kernel_grad = kernel_wanted.then(|| {
                // A vector of kernels at a time, as they were transformed.
                let mut weight_grad = vec![0.0f32; u_len * 9];
                for first in (0..u_len).step_by(V::LANES) {
                    let lanes = (u_len - first).min(V::LANES);
                    let du: [[V; ALPHA]; ALPHA] = std::array::from_fn(|r| {
                        std::array::from_fn(|s| {
                            V::read_up_to(&u_grad[(r * ALPHA + s) * u_len + first..][..lanes])
                        })
                    });
                    let g = KernelAdjoint::both_ways(&du);
                    for (tap, value) in g.iter().flatten().enumerate() {
                        for (lane, value) in value.lanes()[..lanes].iter().enumerate() {
                            weight_grad[(first + lane) * 9 + tap] = *value;
                        }
                    }
                }
                flex_tensor(weight_grad, [kernels, channels, 3, 3])
            });
            let input_grad = input_wanted
                .then(|| input_grid.scatter(&sums, [n, channels, height, width], |_| 0.0));
            (kernel_grad, input_grad)
        }
    }
    let work = Backward {
        grad,
        kernels_u,
        inputs_v,
        sizes: *sizes,
        wanted: (kernel_wanted, input_wanted),
    };
    dispatch(lanes_for(sizes.n), work)
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

/// Columns of the transformed matrices that the passes take at a time: the 36 products of a
/// band (64 rows of 64 columns each in the tower, 576 KB) stay in the caches for the transform
/// that reads them, where those of all the columns (2.7 MB for a micro-batch of 32 digits) went
/// through memory. A whole number of vectors of any width. 32 and 128 columns were no faster in
/// Chromium.
const BAND: usize = 64;

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
