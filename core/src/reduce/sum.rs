//! Summing consecutive frames pixel by pixel into u32 sums.
//!
//! The rules match binning's: a pixel at its type's maximum in any frame of a group (EIGER's
//! invalid marker) is `u32::MAX`; otherwise a pixel at or above `saturation` in any frame is at
//! least `saturation * k` for a group of `k` frames, so the scaled `saturation_value` still flags
//! it; sums clamp at `u32::MAX - 1`. The static `pixel_mask` is the same for every frame, so the
//! summed dataset keeps the input mask.

use super::Count;

const INVALID: u8 = 1;
const SATURATED: u8 = 2;

/// Adds frames into running per-pixel sums; [`Summer::finish_into`] writes a group's sum.
#[derive(Clone, Debug)]
pub struct Summer {
    /// Saturating sums: a sum that saturates clamps to `u32::MAX - 1` anyway.
    sums: Vec<u32>,
    flags: Vec<u8>,
    saturation: u32,
    saturation_value: Option<u32>,
    frames: usize,
}

impl Summer {
    /// A summer for frames of `len` pixels, with the detector's `saturation_value`, if any.
    pub fn new(len: usize, saturation: Option<u32>) -> Summer {
        Summer {
            sums: vec![0; len],
            flags: vec![0; len],
            // Without a saturation value only an invalid uint32 pixel reaches u32::MAX, and the
            // invalid flag wins over the saturated one.
            saturation: saturation.unwrap_or(u32::MAX),
            saturation_value: saturation,
            frames: 0,
        }
    }

    /// Adds one frame.
    ///
    /// # Panics
    /// If the frame's length is not the summer's.
    pub fn add<T: Count>(&mut self, frame: &[T]) {
        assert_eq!(frame.len(), self.sums.len(), "frame length");
        #[cfg(target_arch = "x86_64")]
        if crate::frame::xds::avx2() {
            // SAFETY: avx2() has checked that the CPU runs AVX2.
            unsafe { avx2_add(frame, &mut self.sums, &mut self.flags, self.saturation) };
            self.frames += 1;
            return;
        }
        add(frame, &mut self.sums, &mut self.flags, self.saturation);
        self.frames += 1;
    }

    /// Frames added since the last [`Summer::finish_into`].
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Writes the sum of the frames added into `out`, then starts a new group.
    ///
    /// # Panics
    /// If `out`'s length is not the summer's.
    pub fn finish_into(&mut self, out: &mut [u32]) {
        assert_eq!(out.len(), self.sums.len(), "output length");
        let floor = self.saturation_value.map_or(0, |s| {
            (u64::from(s) * self.frames as u64).min(u64::from(u32::MAX - 1)) as u32
        });
        for ((o, s), f) in out.iter_mut().zip(&mut self.sums).zip(&mut self.flags) {
            let sum = (*s).min(u32::MAX - 1);
            *o = if *f & INVALID != 0 {
                u32::MAX
            } else if *f & SATURATED != 0 {
                sum.max(floor)
            } else {
                sum
            };
            *s = 0;
            *f = 0;
        }
        self.frames = 0;
    }
}

/// # Safety
/// The CPU must run AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2_add<T: Count>(frame: &[T], sums: &mut [u32], flags: &mut [u8], saturation: u32) {
    add(frame, sums, flags, saturation)
}

/// One frame into the sums, without branches so that it vectorises.
#[inline(always)]
fn add<T: Count>(frame: &[T], sums: &mut [u32], flags: &mut [u8], saturation: u32) {
    for ((s, f), &v) in sums.iter_mut().zip(flags.iter_mut()).zip(frame) {
        let c = v.get();
        *s = s.saturating_add(c);
        *f |= (INVALID * u8::from(c == T::MAX.get())) | (SATURATED * u8::from(c >= saturation));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn oracle<T: Count>(frames: &[Vec<T>], saturation: Option<u32>) -> Vec<u32> {
        let k = frames.len() as u64;
        (0..frames[0].len())
            .map(|i| {
                let px: Vec<u32> = frames.iter().map(|f| f[i].get()).collect();
                if px.contains(&T::MAX.get()) {
                    return u32::MAX;
                }
                let mut sum: u64 = px.iter().map(|&v| u64::from(v)).sum();
                if let Some(s) = saturation.filter(|&s| px.iter().any(|&v| v >= s)) {
                    sum = sum.max(u64::from(s) * k);
                }
                sum.min(u64::from(u32::MAX - 1)) as u32
            })
            .collect()
    }

    fn check<T: Count + std::fmt::Debug>(frames: &[Vec<T>], saturation: Option<u32>) {
        let len = frames[0].len();
        let mut summer = Summer::new(len, saturation);
        let mut out = vec![0x5A5A_5A5A; len];
        // Twice, so that the second group starts from a clean state.
        for _ in 0..2 {
            for f in frames {
                summer.add(f);
            }
            assert_eq!(summer.frames(), frames.len());
            summer.finish_into(&mut out);
            assert_eq!(summer.frames(), 0);
            assert_eq!(out, oracle(frames, saturation));
        }
        // The scalar twin gives the same bits.
        let mut s = Summer::new(len, saturation);
        for f in frames {
            add(f, &mut s.sums, &mut s.flags, s.saturation);
            s.frames += 1;
        }
        s.finish_into(&mut out);
        assert_eq!(out, oracle(frames, saturation));
    }

    fn value(max: u32) -> impl Strategy<Value = u32> {
        prop_oneof![4 => 0..20u32, 1 => Just(max), 1 => Just(max - 1), 1 => 0..=max]
    }

    fn frames(max: u32) -> impl Strategy<Value = Vec<Vec<u32>>> {
        (1usize..6, 1usize..300).prop_flat_map(move |(k, len)| {
            prop::collection::vec(prop::collection::vec(value(max), len), k)
        })
    }

    fn saturation(max: u32) -> impl Strategy<Value = Option<u32>> {
        prop_oneof![Just(None), (0..=max).prop_map(Some), Just(Some(10))]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn u8_equals_the_oracle(f in frames(255), s in saturation(255)) {
            let f: Vec<Vec<u8>> = f.iter().map(|f| f.iter().map(|&v| v as u8).collect()).collect();
            check(&f, s);
        }

        #[test]
        fn u16_equals_the_oracle(f in frames(65535), s in saturation(65535)) {
            let f: Vec<Vec<u16>> = f.iter().map(|f| f.iter().map(|&v| v as u16).collect()).collect();
            check(&f, s);
        }

        #[test]
        fn u32_equals_the_oracle(f in frames(u32::MAX), s in saturation(u32::MAX)) {
            check(&f, s);
        }
    }

    #[test]
    fn the_rules_one_by_one() {
        let mut s = Summer::new(4, Some(100));
        s.add(&[1u16, 2, 65535, 100]);
        s.add(&[3u16, 50, 4, 1]);
        let mut out = [0; 4];
        s.finish_into(&mut out);
        assert_eq!(out, [4, 52, u32::MAX, 200]);
        let mut s = Summer::new(2, None);
        s.add(&[u32::MAX - 1, u32::MAX - 3]);
        s.add(&[1u32, 1]);
        s.finish_into(&mut out[..2]);
        assert_eq!(out[..2], [u32::MAX - 1, u32::MAX - 2]);
    }

    #[test]
    #[should_panic(expected = "frame length")]
    fn a_wrong_length_panics() {
        Summer::new(3, None).add(&[1u8, 2]);
    }
}
