//! The bitshuffle bit transpose and its inverse.
//!
//! For a block of `n` elements of `e` bytes (`n` a multiple of 8), bit `b` of element `i` (bits
//! numbered from the least significant bit of the little-endian element) moves to bit `i` of bit
//! plane `b`; each plane is `n / 8` bytes, least significant bit first. This is exactly the layout
//! of the reference bitshuffle.
//!
//! Four kernels compute it, bit-identically: [`Kernel::Scalar`] everywhere, and on x86_64
//! [`Kernel::Sse2`], [`Kernel::Avx2`], [`Kernel::Avx512`] and [`Kernel::Avx512Gfni`], chosen once at run time from what
//! the CPU supports. `HDRMX_SIMD=scalar|sse2|avx2|avx512|avx512gfni` caps the choice (for comparisons and for
//! tests of the fallback paths).

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod gfni;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod simd;
#[cfg(target_arch = "x86_64")]
mod sse2;

use std::sync::atomic::{AtomicU8, Ordering};

/// One implementation of the transpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kernel {
    Scalar,
    Sse2,
    Avx2,
    Avx512,
    /// AVX-512 with GFNI and VBMI: eight bit planes transposed per instruction.
    Avx512Gfni,
}

impl Kernel {
    /// Every kernel, slowest first.
    pub const ALL: [Kernel; 5] = [
        Kernel::Scalar,
        Kernel::Sse2,
        Kernel::Avx2,
        Kernel::Avx512,
        Kernel::Avx512Gfni,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Sse2 => "sse2",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512 => "avx512",
            Kernel::Avx512Gfni => "avx512gfni",
        }
    }

    /// Whether this CPU can run the kernel.
    pub fn is_available(self) -> bool {
        match self {
            Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Sse2 => is_x86_feature_detected!("sse2"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => {
                is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Gfni => {
                Kernel::Avx512.is_available()
                    && is_x86_feature_detected!("avx512vbmi")
                    && is_x86_feature_detected!("gfni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The fastest available kernel, capped by `HDRMX_SIMD`; decided once per process.
    pub fn best() -> Kernel {
        static BEST: AtomicU8 = AtomicU8::new(u8::MAX);
        match BEST.load(Ordering::Relaxed) {
            u8::MAX => {
                let cap = std::env::var("HDRMX_SIMD").ok().and_then(|v| {
                    Kernel::ALL
                        .into_iter()
                        .find(|k| k.name().eq_ignore_ascii_case(v.trim()))
                });
                let best = Kernel::ALL
                    .into_iter()
                    .rfind(|k| k.is_available() && cap.is_none_or(|cap| *k <= cap))
                    .unwrap_or(Kernel::Scalar);
                BEST.store(best as u8, Ordering::Relaxed);
                best
            }
            i => Kernel::ALL[usize::from(i)],
        }
    }

    /// Bit-transposes one block: `src` holds `n` elements of `elem_size` bytes, `dst` receives
    /// the bit planes.
    ///
    /// # Panics
    /// If the kernel is not available, if `elem_size` is not 1, 2, 4 or 8, if the lengths differ
    /// or if the element count is not a multiple of 8. These are the caller's invariants; the
    /// decoders check chunk contents before they get here.
    pub fn transpose(self, src: &[u8], dst: &mut [u8], elem_size: usize) {
        let n = self.check(src, dst, elem_size);
        // SAFETY: `check` verified that the CPU supports the kernel and that both buffers hold
        // `n * elem_size` bytes with `n` a multiple of 8.
        #[cfg(target_arch = "x86_64")]
        let done = unsafe {
            match self {
                Kernel::Scalar => 0,
                Kernel::Sse2 => sse2::transpose(src, dst, elem_size, n),
                Kernel::Avx2 => avx2::transpose(src, dst, elem_size, n),
                Kernel::Avx512 => avx512::transpose(src, dst, elem_size, n),
                Kernel::Avx512Gfni => gfni::transpose(src, dst, elem_size, n),
            }
        };
        #[cfg(not(target_arch = "x86_64"))]
        let done = 0;
        scalar::transpose_from(src, dst, elem_size, n, done);
    }

    /// The inverse of [`Kernel::transpose`]: bit planes in `src`, elements out in `dst`.
    ///
    /// # Panics
    /// As for [`Kernel::transpose`].
    pub fn untranspose(self, src: &[u8], dst: &mut [u8], elem_size: usize) {
        let n = self.check(src, dst, elem_size);
        // SAFETY: as in `transpose`.
        #[cfg(target_arch = "x86_64")]
        let done = unsafe {
            match self {
                Kernel::Scalar => 0,
                Kernel::Sse2 => sse2::untranspose(src, dst, elem_size, n),
                Kernel::Avx2 => avx2::untranspose(src, dst, elem_size, n),
                Kernel::Avx512 => avx512::untranspose(src, dst, elem_size, n),
                Kernel::Avx512Gfni => gfni::untranspose(src, dst, elem_size, n),
            }
        };
        #[cfg(not(target_arch = "x86_64"))]
        let done = 0;
        scalar::untranspose_from(src, dst, elem_size, n, done);
    }

    fn check(self, src: &[u8], dst: &[u8], elem_size: usize) -> usize {
        assert!(
            self.is_available(),
            "kernel {} is not available on this CPU",
            self.name()
        );
        assert!(
            matches!(elem_size, 1 | 2 | 4 | 8),
            "element size {elem_size} is not 1, 2, 4 or 8"
        );
        assert_eq!(
            src.len(),
            dst.len(),
            "source and destination lengths differ"
        );
        assert_eq!(
            src.len() % (8 * elem_size),
            0,
            "element count is not a multiple of 8"
        );
        src.len() / elem_size
    }
}

/// [`Kernel::transpose`] with the best kernel.
pub fn transpose(src: &[u8], dst: &mut [u8], elem_size: usize) {
    Kernel::best().transpose(src, dst, elem_size)
}

/// [`Kernel::untranspose`] with the best kernel.
pub fn untranspose(src: &[u8], dst: &mut [u8], elem_size: usize) {
    Kernel::best().untranspose(src, dst, elem_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, bit by bit: the oracle for the scalar kernel.
    fn naive(src: &[u8], e: usize) -> Vec<u8> {
        let n = src.len() / e;
        let mut out = vec![0u8; src.len()];
        for i in 0..n {
            for b in 0..8 * e {
                if src[i * e + b / 8] >> (b % 8) & 1 == 1 {
                    let pos = b * n + i;
                    out[pos / 8] |= 1 << (pos % 8);
                }
            }
        }
        out
    }

    fn pattern(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn every_kernel_matches_the_definition() {
        for e in [1, 2, 4, 8] {
            for n in [
                8, 16, 24, 64, 72, 128, 136, 512, 520, 576, 1024, 2048, 2056, 2624,
            ] {
                let src = pattern(n * e, (n * e) as u64);
                let want = naive(&src, e);
                for k in Kernel::ALL.into_iter().filter(|k| k.is_available()) {
                    let mut planes = vec![0xA5; src.len()];
                    k.transpose(&src, &mut planes, e);
                    assert_eq!(planes, want, "{} transpose, e={e}, n={n}", k.name());
                    let mut back = vec![0x5A; src.len()];
                    k.untranspose(&planes, &mut back, e);
                    assert_eq!(back, src, "{} untranspose, e={e}, n={n}", k.name());
                }
            }
        }
    }
}
