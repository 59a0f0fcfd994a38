//! Four f32 lanes: wasm's simd128 vectors in the browser, arrays of 4 natively (where the unit
//! tests run the same code and the compiler vectorises the arrays).

pub(super) const LANES: usize = 4;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(super) use browser::F32x4;
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub(super) use portable::F32x4;

impl F32x4 {
    /// The first four values of `values`.
    #[inline(always)]
    pub(super) fn read(values: &[f32]) -> Self {
        let values = &values[..LANES];
        // SAFETY: four values, checked above.
        unsafe { Self::load(values.as_ptr()) }
    }

    /// Writes the lanes to the first four values of `values`.
    #[inline(always)]
    pub(super) fn write(self, values: &mut [f32]) {
        let values = &mut values[..LANES];
        // SAFETY: four values, checked above.
        unsafe { self.store(values.as_mut_ptr()) }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod browser {
    use core::arch::wasm32::*;

    #[derive(Clone, Copy)]
    pub(in crate::cpu_kernels) struct F32x4(v128);

    impl F32x4 {
        pub(in crate::cpu_kernels) const ZERO: Self = Self(f32x4(0.0, 0.0, 0.0, 0.0));

        #[inline(always)]
        pub(in crate::cpu_kernels) fn splat(value: f32) -> Self {
            Self(f32x4_splat(value))
        }

        /// # Safety
        /// Four floats from `from` must be readable.
        #[inline(always)]
        pub(in crate::cpu_kernels) unsafe fn load(from: *const f32) -> Self {
            // SAFETY: the caller's; wasm's loads need no alignment.
            Self(unsafe { v128_load(from.cast()) })
        }

        /// # Safety
        /// Four floats from `to` must be writable.
        #[inline(always)]
        pub(in crate::cpu_kernels) unsafe fn store(self, to: *mut f32) {
            // SAFETY: the caller's.
            unsafe { v128_store(to.cast(), self.0) }
        }

        /// `self + x y`, lane by lane: one fused multiply-add in a module with relaxed SIMD,
        /// inlined into the matrix products (`matmul`), which enable it.
        #[inline(always)]
        pub(in crate::cpu_kernels) fn add_product(self, x: Self, y: Self) -> Self {
            #[cfg(feature = "relaxed-simd")]
            return Self(f32x4_relaxed_madd(x.0, y.0, self.0));
            #[cfg(not(feature = "relaxed-simd"))]
            Self(f32x4_add(self.0, f32x4_mul(x.0, y.0)))
        }

        #[inline(always)]
        pub(in crate::cpu_kernels) fn total(self) -> f32 {
            let v = self.0;
            (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v))
                + (f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v))
        }
    }

    impl std::ops::Add for F32x4 {
        type Output = Self;
        #[inline(always)]
        fn add(self, other: Self) -> Self {
            Self(f32x4_add(self.0, other.0))
        }
    }

    impl std::ops::Sub for F32x4 {
        type Output = Self;
        #[inline(always)]
        fn sub(self, other: Self) -> Self {
            Self(f32x4_sub(self.0, other.0))
        }
    }

    impl std::ops::Neg for F32x4 {
        type Output = Self;
        #[inline(always)]
        fn neg(self) -> Self {
            Self(f32x4_neg(self.0))
        }
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod portable {
    use super::LANES;

    #[derive(Clone, Copy)]
    pub(in crate::cpu_kernels) struct F32x4([f32; LANES]);

    impl F32x4 {
        pub(in crate::cpu_kernels) const ZERO: Self = Self([0.0; LANES]);

        #[inline(always)]
        pub(in crate::cpu_kernels) fn splat(value: f32) -> Self {
            Self([value; LANES])
        }

        /// # Safety
        /// Four floats from `from` must be readable.
        #[inline(always)]
        pub(in crate::cpu_kernels) unsafe fn load(from: *const f32) -> Self {
            // SAFETY: the caller's.
            Self(unsafe { from.cast::<[f32; LANES]>().read_unaligned() })
        }

        /// # Safety
        /// Four floats from `to` must be writable.
        #[inline(always)]
        pub(in crate::cpu_kernels) unsafe fn store(self, to: *mut f32) {
            // SAFETY: the caller's.
            unsafe { to.cast::<[f32; LANES]>().write_unaligned(self.0) }
        }

        /// `self + x y`, lane by lane.
        #[inline(always)]
        pub(in crate::cpu_kernels) fn add_product(self, x: Self, y: Self) -> Self {
            Self(std::array::from_fn(|l| self.0[l] + x.0[l] * y.0[l]))
        }

        #[inline(always)]
        pub(in crate::cpu_kernels) fn total(self) -> f32 {
            let v = self.0;
            (v[0] + v[1]) + (v[2] + v[3])
        }

        #[inline(always)]
        fn each(self, other: Self, op: impl Fn(f32, f32) -> f32) -> Self {
            Self(std::array::from_fn(|l| op(self.0[l], other.0[l])))
        }
    }

    impl std::ops::Add for F32x4 {
        type Output = Self;
        #[inline(always)]
        fn add(self, other: Self) -> Self {
            self.each(other, |a, b| a + b)
        }
    }

    impl std::ops::Sub for F32x4 {
        type Output = Self;
        #[inline(always)]
        fn sub(self, other: Self) -> Self {
            self.each(other, |a, b| a - b)
        }
    }

    impl std::ops::Neg for F32x4 {
        type Output = Self;
        #[inline(always)]
        fn neg(self) -> Self {
            Self(self.0.map(|a| -a))
        }
    }
}
