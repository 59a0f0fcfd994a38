//! Vectors of f32 lanes for the CPU kernels (the Winograd convolution, the first layer's taps),
//! and the choice of one for the machine.
//!
//! The kernels are written once, generic over [`Vector`], and [`dispatch`] runs them with the
//! widest vector the processor has: in the browser wasm's 4-lane simd128; natively on x86-64
//! 16 lanes with AVX-512 or 8 with AVX2 and FMA (detected when the program runs, so one binary
//! serves every x86-64 processor), else arrays of 4 that the compiler vectorises (where the
//! unit tests also run the same code).
//!
//! Everything between [`dispatch`] and the vectors' methods is `#[inline(always)]`: the kernels
//! are compiled inside the function that enables the instruction set, so that its instructions
//! are inlined rather than called.

use std::ops::{Add, Neg, Sub};

/// The lanes of the widest vector here.
pub(super) const MOST_LANES: usize = 16;

/// `LANES` f32 values operated on at once.
pub(super) trait Vector:
    Copy + Add<Output = Self> + Sub<Output = Self> + Neg<Output = Self>
{
    const LANES: usize;

    fn splat(value: f32) -> Self;

    /// # Safety
    /// `LANES` floats from `from` must be readable.
    unsafe fn load(from: *const f32) -> Self;

    /// # Safety
    /// `LANES` floats from `to` must be writable.
    unsafe fn store(self, to: *mut f32);

    /// `self + x y`, lane by lane (fused where the instruction set has it).
    fn add_product(self, x: Self, y: Self) -> Self;

    /// The sum of the lanes.
    fn total(self) -> f32;

    #[inline(always)]
    fn zero() -> Self {
        Self::splat(0.0)
    }

    /// The first `LANES` values of `values`.
    #[inline(always)]
    fn read(values: &[f32]) -> Self {
        let values = &values[..Self::LANES];
        // SAFETY: LANES values, checked above.
        unsafe { Self::load(values.as_ptr()) }
    }

    /// Writes the lanes to the first `LANES` values of `values`.
    #[inline(always)]
    fn write(self, values: &mut [f32]) {
        let values = &mut values[..Self::LANES];
        // SAFETY: LANES values, checked above.
        unsafe { self.store(values.as_mut_ptr()) }
    }

    /// `values` in the first lanes (at most `LANES`), zeros in the others.
    #[inline(always)]
    fn read_up_to(values: &[f32]) -> Self {
        if values.len() >= Self::LANES {
            return Self::read(values);
        }
        let mut lanes = [0.0f32; MOST_LANES];
        lanes[..values.len()].copy_from_slice(values);
        Self::read(&lanes)
    }

    /// Writes the first lanes to `values` (at most `LANES`).
    #[inline(always)]
    fn write_up_to(self, values: &mut [f32]) {
        if values.len() >= Self::LANES {
            return self.write(values);
        }
        let len = values.len();
        values.copy_from_slice(&self.lanes()[..len]);
    }

    /// The lanes, in the first `LANES` values.
    #[inline(always)]
    fn lanes(self) -> [f32; MOST_LANES] {
        let mut lanes = [0.0f32; MOST_LANES];
        self.write(&mut lanes);
        lanes
    }
}

/// Work generic over the vector type, for [`dispatch`]. `run` must be `#[inline(always)]`, as
/// must everything it calls down to the vectors' methods.
pub(super) trait VectorWork {
    type Output;
    fn run<V: Vector>(self) -> Self::Output;
}

/// A vector type the processor has, by its lanes: made only by [`lanes_for`] and [`widest`],
/// which detect the instruction sets, so that [`dispatch`] may use them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Lanes(usize);

impl Lanes {
    pub(super) fn count(self) -> usize {
        self.0
    }
}

/// The vector for a kernel on `images` images: the widest the processor has whose lanes the
/// images fill at least half of (the images are the lanes of the Winograd transforms, and
/// missing ones are computed as zeros). A pass's forward and backward kernels see the same
/// count, so they agree on the layout.
pub(super) fn lanes_for(images: usize) -> Lanes {
    #[cfg(target_arch = "x86_64")]
    {
        if images.saturating_mul(2) > x86::F32x16::LANES && x86::has_avx512() {
            return Lanes(x86::F32x16::LANES);
        }
        if images.saturating_mul(2) > x86::F32x8::LANES && x86::has_avx2_fma() {
            return Lanes(x86::F32x8::LANES);
        }
    }
    let _ = images;
    Lanes(F32x4::LANES)
}

/// The widest vector the processor has.
pub(super) fn widest() -> Lanes {
    lanes_for(usize::MAX)
}

/// Runs `work` with the vector `lanes` names.
#[inline(always)]
pub(super) fn dispatch<W: VectorWork>(lanes: Lanes, work: W) -> W::Output {
    match lanes.count() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: only lanes_for makes Lanes(16), after detecting AVX-512.
        16 => unsafe { x86::run_avx512(work) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: only lanes_for makes Lanes(8), after detecting AVX2 and FMA.
        8 => unsafe { x86::run_avx2_fma(work) },
        _ => run_f32x4(work),
    }
}

/// Every vector type the processor has, for tests that run a kernel on each.
#[cfg(test)]
pub(super) fn every_vector() -> Vec<Lanes> {
    let mut all: Vec<Lanes> = [1, 8, 16].map(lanes_for).to_vec();
    all.dedup();
    all
}

/// In the CPU-only browser module the kernels multiply and add in one relaxed-SIMD instruction,
/// which this function enables for the kernels inlined into it.
#[cfg_attr(
    all(feature = "relaxed-simd", target_arch = "wasm32"),
    target_feature(enable = "relaxed-simd")
)]
fn run_f32x4<W: VectorWork>(work: W) -> W::Output {
    work.run::<F32x4>()
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use browser::F32x4;
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
use portable::F32x4;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod browser {
    use core::arch::wasm32::*;

    use super::*;

    #[derive(Clone, Copy)]
    pub(in crate::cpu_kernels) struct F32x4(v128);

    impl Vector for F32x4 {
        const LANES: usize = 4;

        #[inline(always)]
        fn splat(value: f32) -> Self {
            Self(f32x4_splat(value))
        }

        #[inline(always)]
        unsafe fn load(from: *const f32) -> Self {
            // SAFETY: the caller's; wasm's loads need no alignment.
            Self(unsafe { v128_load(from.cast()) })
        }

        #[inline(always)]
        unsafe fn store(self, to: *mut f32) {
            // SAFETY: the caller's.
            unsafe { v128_store(to.cast(), self.0) }
        }

        /// One fused multiply-add in a module with relaxed SIMD, inlined into the kernels that
        /// `run_f32x4` enables it for.
        #[inline(always)]
        fn add_product(self, x: Self, y: Self) -> Self {
            #[cfg(feature = "relaxed-simd")]
            return Self(f32x4_relaxed_madd(x.0, y.0, self.0));
            #[cfg(not(feature = "relaxed-simd"))]
            Self(f32x4_add(self.0, f32x4_mul(x.0, y.0)))
        }

        #[inline(always)]
        fn total(self) -> f32 {
            let v = self.0;
            (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v))
                + (f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v))
        }
    }

    impl Add for F32x4 {
        type Output = Self;
        #[inline(always)]
        fn add(self, other: Self) -> Self {
            Self(f32x4_add(self.0, other.0))
        }
    }

    impl Sub for F32x4 {
        type Output = Self;
        #[inline(always)]
        fn sub(self, other: Self) -> Self {
            Self(f32x4_sub(self.0, other.0))
        }
    }

    impl Neg for F32x4 {
        type Output = Self;
        #[inline(always)]
        fn neg(self) -> Self {
            Self(f32x4_neg(self.0))
        }
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod portable {
    use super::*;

    #[derive(Clone, Copy)]
    pub(in crate::cpu_kernels) struct F32x4([f32; 4]);

    impl F32x4 {
        #[inline(always)]
        fn each(self, other: Self, op: impl Fn(f32, f32) -> f32) -> Self {
            Self(std::array::from_fn(|l| op(self.0[l], other.0[l])))
        }
    }

    impl Vector for F32x4 {
        const LANES: usize = 4;

        #[inline(always)]
        fn splat(value: f32) -> Self {
            Self([value; 4])
        }

        #[inline(always)]
        unsafe fn load(from: *const f32) -> Self {
            // SAFETY: the caller's.
            Self(unsafe { from.cast::<[f32; 4]>().read_unaligned() })
        }

        #[inline(always)]
        unsafe fn store(self, to: *mut f32) {
            // SAFETY: the caller's.
            unsafe { to.cast::<[f32; 4]>().write_unaligned(self.0) }
        }

        #[inline(always)]
        fn add_product(self, x: Self, y: Self) -> Self {
            Self(std::array::from_fn(|l| self.0[l] + x.0[l] * y.0[l]))
        }

        #[inline(always)]
        fn total(self) -> f32 {
            let v = self.0;
            (v[0] + v[1]) + (v[2] + v[3])
        }
    }

    impl Add for F32x4 {
        type Output = Self;
        #[inline(always)]
        fn add(self, other: Self) -> Self {
            self.each(other, |a, b| a + b)
        }
    }

    impl Sub for F32x4 {
        type Output = Self;
        #[inline(always)]
        fn sub(self, other: Self) -> Self {
            self.each(other, |a, b| a - b)
        }
    }

    impl Neg for F32x4 {
        type Output = Self;
        #[inline(always)]
        fn neg(self) -> Self {
            Self(self.0.map(|a| -a))
        }
    }
}

/// The x86-64 vectors. Only [`dispatch`] names them, after detecting their instruction sets,
/// so their methods may use those instructions.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::*;

    /// The arithmetic of a vector type, by the instructions named.
    macro_rules! arithmetic {
        ($vector:ident, $add:path, $sub:path, $neg:expr) => {
            impl Add for $vector {
                type Output = Self;
                #[inline(always)]
                fn add(self, other: Self) -> Self {
                    // SAFETY: the type exists only where its instruction set does (`dispatch`).
                    Self(unsafe { $add(self.0, other.0) })
                }
            }

            impl Sub for $vector {
                type Output = Self;
                #[inline(always)]
                fn sub(self, other: Self) -> Self {
                    // SAFETY: as above.
                    Self(unsafe { $sub(self.0, other.0) })
                }
            }

            impl Neg for $vector {
                type Output = Self;
                #[inline(always)]
                fn neg(self) -> Self {
                    // SAFETY: as above.
                    Self(unsafe { $neg(self.0) })
                }
            }
        };
    }

    pub(super) fn has_avx512() -> bool {
        is_x86_feature_detected!("avx512f")
    }

    pub(super) fn has_avx2_fma() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }

    /// # Safety
    /// The processor must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn run_avx512<W: VectorWork>(work: W) -> W::Output {
        work.run::<F32x16>()
    }

    /// # Safety
    /// The processor must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn run_avx2_fma<W: VectorWork>(work: W) -> W::Output {
        work.run::<F32x8>()
    }

    #[derive(Clone, Copy)]
    pub(super) struct F32x8(__m256);

    impl Vector for F32x8 {
        const LANES: usize = 8;

        #[inline(always)]
        fn splat(value: f32) -> Self {
            // SAFETY: this type exists only where AVX2 and FMA do (above).
            Self(unsafe { _mm256_set1_ps(value) })
        }

        #[inline(always)]
        unsafe fn load(from: *const f32) -> Self {
            // SAFETY: the caller's, and as above.
            Self(unsafe { _mm256_loadu_ps(from) })
        }

        #[inline(always)]
        unsafe fn store(self, to: *mut f32) {
            // SAFETY: the caller's, and as above.
            unsafe { _mm256_storeu_ps(to, self.0) }
        }

        #[inline(always)]
        fn add_product(self, x: Self, y: Self) -> Self {
            // SAFETY: as above.
            Self(unsafe { _mm256_fmadd_ps(x.0, y.0, self.0) })
        }

        #[inline(always)]
        fn total(self) -> f32 {
            let mut lanes = [0.0f32; 8];
            // SAFETY: eight floats.
            unsafe { self.store(lanes.as_mut_ptr()) };
            lanes.iter().sum()
        }
    }

    #[inline(always)]
    unsafe fn negate8(x: __m256) -> __m256 {
        // SAFETY: as above.
        unsafe { _mm256_sub_ps(_mm256_setzero_ps(), x) }
    }

    arithmetic!(F32x8, _mm256_add_ps, _mm256_sub_ps, negate8);

    #[derive(Clone, Copy)]
    pub(super) struct F32x16(__m512);

    impl Vector for F32x16 {
        const LANES: usize = 16;

        #[inline(always)]
        fn splat(value: f32) -> Self {
            // SAFETY: this type exists only where AVX-512F does (above).
            Self(unsafe { _mm512_set1_ps(value) })
        }

        #[inline(always)]
        unsafe fn load(from: *const f32) -> Self {
            // SAFETY: the caller's, and as above.
            Self(unsafe { _mm512_loadu_ps(from) })
        }

        #[inline(always)]
        unsafe fn store(self, to: *mut f32) {
            // SAFETY: the caller's, and as above.
            unsafe { _mm512_storeu_ps(to, self.0) }
        }

        #[inline(always)]
        fn add_product(self, x: Self, y: Self) -> Self {
            // SAFETY: as above.
            Self(unsafe { _mm512_fmadd_ps(x.0, y.0, self.0) })
        }

        #[inline(always)]
        fn total(self) -> f32 {
            // SAFETY: as above.
            unsafe { _mm512_reduce_add_ps(self.0) }
        }
    }

    #[inline(always)]
    unsafe fn negate16(x: __m512) -> __m512 {
        // SAFETY: as above.
        unsafe { _mm512_sub_ps(_mm512_setzero_ps(), x) }
    }

    arithmetic!(F32x16, _mm512_add_ps, _mm512_sub_ps, negate16);
}
