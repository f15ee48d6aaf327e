//! A noise-bounded lossy quantiser for photon counts.
//!
//! A count `v` has Poisson noise σ = √v. The quantiser replaces each count by the index of an
//! integer bin `[lo, hi]` with `hi - lo = w(lo) = ⌊(q/2)·√lo⌋`; the bins are laid greedily from 0,
//! each starting one past the previous one's end. `q` is the step in units of σ (default 1).
//!
//! **The bound.** Whatever value `r` in a bin a decoder gives back, and whatever true count `v` in
//! the same bin was stored, `|r - v| <= hi - lo = ⌊(q/2)·√lo⌋ <= (q/2)·√lo <= (q/2)·√v`, because
//! `lo <= v`. So every pixel is within `(q/2)·σ` of its true count, σ = √(true count).
//!
//! **Exact counts.** A bin is a single integer while `(q/2)·√lo < 1`, i.e. for every count below
//! `⌈4/q²⌉` ([`Quantiser::exact_below`]): zeros and small counts come back exact, and their code
//! is the count itself. With `q = 0` every bin is one integer and the codes are the counts.
//!
//! **Masked pixels.** The dtype's maximum (EIGER's mark of a gap or dead pixel) is not a count.
//! It gets the chunk's *masked code*, one past the largest code its counts use, and comes back
//! exact. In a uint32 frame that turns `0xFFFFFFFF` into a number of the counts' size, so the
//! high bit planes bitshuffle makes are empty; the counts keep their codes, so the low planes are
//! those of the counts themselves. At `q = 0` this remap is all that happens: lossless.
//!
//! **Totals.** [`Quantiser::quantise`] records, for the pixels of each code that covers more than
//! one integer, how many there are (`n`) and their exact sum (`S`), as `d = S - n·lo` with
//! `0 <= d <= n·(hi - lo)`; separately per context class of the pixel's neighbourhood (see
//! `Quantiser::key`). [`Quantiser::dequantise`] gives the j-th such pixel (raster order) `lo +
//! ⌊d/n⌋`, plus one for the first `d mod n` of them: the values sum to `S` exactly and stay inside
//! `[lo, hi]`, so the chunk total is exact and the bound above still holds.
//!
//! The bins depend only on `q` (in thousandths, an integer, so any decoder rebuilds the table
//! bit for bit) and the dtype's maximum.
use super::Count;
use std::sync::{Arc, Mutex};

/// `q` is carried in thousandths of σ.
pub const Q_SCALE: u32 = 1000;
/// The smallest non-zero step, in thousandths: smaller steps make bin tables of many megabytes
/// for 32-bit counts while saving next to nothing.
pub const MIN_Q_MILLI: u32 = 100;
/// The largest step, in thousandths (q = 100: bins of 50 σ).
pub const MAX_Q_MILLI: u32 = 100_000;
/// Values below this are looked up in a table; larger ones (rare: spots, hot pixels) are found
/// by a binary search of the bin starts.
const LUT_LEN: u32 = 1 << 16;

/// The bins of one step `q` over the counts `0..max` (`max` itself marks a masked pixel).
#[derive(Debug)]
struct Bins {
    q_milli: u32,
    max: u32,
    /// First count of each bin; bin `k` holds `starts[k]..starts[k + 1]` (the last ends at
    /// `max - 1`).
    starts: Vec<u32>,
    /// Bins `0..exact` are the single counts `0..exact`.
    exact: u32,
    /// Bin of each count below `lut.len()`.
    lut: Vec<u32>,
}

/// `⌊(q/2)·√lo⌋` in integers: the largest `w` with `w² · 4·10⁶ <= q_milli² · lo`.
fn width(q_milli: u32, lo: u32) -> u32 {
    let n = u128::from(q_milli).pow(2) * u128::from(lo) / (4 * u128::from(Q_SCALE).pow(2));
    // floor(sqrt(floor(n / d))) == floor(sqrt(n / d)) for integers.
    n.isqrt() as u32
}

impl Bins {
    fn build(q_milli: u32, max: u32) -> Bins {
        let mut starts = Vec::new();
        let mut lo = 0u32;
        let mut exact = None;
        // Counts are 0..max - 1; `max` is the masked marker.
        while lo < max {
            starts.push(lo);
            let w = if q_milli == 0 { 0 } else { width(q_milli, lo) };
            if w > 0 && exact.is_none() {
                exact = Some(starts.len() as u32 - 1);
            }
            lo = match lo.checked_add(w).and_then(|hi| hi.checked_add(1)) {
                Some(next) => next,
                None => break,
            };
        }
        let exact = exact.unwrap_or(starts.len() as u32);
        let lut_len = LUT_LEN.min(max);
        let mut lut = Vec::with_capacity(lut_len as usize);
        let mut k = 0u32;
        for v in 0..lut_len {
            while (k as usize + 1) < starts.len() && starts[k as usize + 1] <= v {
                k += 1;
            }
            lut.push(k);
        }
        Bins {
            q_milli,
            max,
            starts,
            exact,
            lut,
        }
    }

    /// The bin of count `v < max`.
    #[inline(always)]
    fn bin(&self, v: u32) -> u32 {
        match self.lut.get(v as usize) {
            Some(&k) => k,
            None => (self.starts.partition_point(|&s| s <= v) - 1) as u32,
        }
    }

    fn range(&self, bin: u32) -> (u32, u32) {
        let lo = self.starts[bin as usize];
        let hi = match self.starts.get(bin as usize + 1) {
            Some(&next) => next - 1,
            None => self.max - 1,
        };
        (lo, hi)
    }
}

/// Tables built so far, most recent last. Few steps are in use at once; the cap bounds what a
/// stream of chunks with ever new parameters could pin.
static TABLES: Mutex<Vec<Arc<Bins>>> = Mutex::new(Vec::new());
const MAX_TABLES: usize = 8;

fn bins(q_milli: u32, max: u32) -> Arc<Bins> {
    let mut tables = TABLES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(b) = tables.iter().find(|b| b.q_milli == q_milli && b.max == max) {
        return Arc::clone(b);
    }
    let b = Arc::new(Bins::build(q_milli, max));
    if tables.len() == MAX_TABLES {
        tables.remove(0);
    }
    tables.push(Arc::clone(&b));
    b
}

/// Checks a step in thousandths: 0 (lossless) or [`MIN_Q_MILLI`]..=[`MAX_Q_MILLI`].
pub fn check_q_milli(q_milli: u32) -> Result<(), String> {
    if q_milli == 0 || (MIN_Q_MILLI..=MAX_Q_MILLI).contains(&q_milli) {
        Ok(())
    } else {
        Err(format!(
            "step q = {} is out of range: 0 (lossless) or {} to {}",
            f64::from(q_milli) / f64::from(Q_SCALE),
            f64::from(MIN_Q_MILLI) / f64::from(Q_SCALE),
            f64::from(MAX_Q_MILLI) / f64::from(Q_SCALE)
        ))
    }
}

/// A step `q` in σ as thousandths, rounded down so that the bound of the `q` asked for holds.
pub fn q_to_milli(q: f64) -> Result<u32, String> {
    if !q.is_finite() || q < 0.0 {
        return Err(format!("step q = {q} must be a finite number >= 0"));
    }
    let milli = (q * f64::from(Q_SCALE) + 1e-9).floor();
    if milli > f64::from(MAX_Q_MILLI) {
        return Err(format!(
            "step q = {q} is larger than {}",
            MAX_Q_MILLI / Q_SCALE
        ));
    }
    let milli = milli as u32;
    check_q_milli(milli)?;
    Ok(milli)
}

/// Context classes per code (see `Quantiser::key`).
pub const CONTEXTS: usize = 8;
/// Raster neighbours each side that set a pixel's context.
const NEIGHBOURS: usize = 1;

/// What a decoder needs besides the codes: the masked code, and for the pixels whose codes
/// cover more than one count, for each key `code · CONTEXTS + context` that occurs,
/// `d = S - n·lo`, in increasing key order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sums {
    /// The code of masked pixels: one past the largest code of a count in the chunk.
    pub masked_code: u32,
    /// `(key, d)` pairs, keys increasing.
    pub offsets: Vec<(u32, u64)>,
}

/// Per-thread counters, reused from chunk to chunk.
#[derive(Default)]
struct Counters {
    count: Vec<u32>,
    sum: Vec<u64>,
}

thread_local! {
    static COUNTERS: std::cell::RefCell<Counters> = std::cell::RefCell::default();
}

/// Runs `f` on per-key counters of `len` entries, zeroed.
fn with_counters<R>(len: usize, f: impl FnOnce(&mut [u32], &mut [u64]) -> R) -> R {
    COUNTERS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut c) => {
            let c = &mut *c;
            c.count.clear();
            c.count.resize(len, 0);
            c.sum.clear();
            c.sum.resize(len, 0);
            f(&mut c.count, &mut c.sum)
        }
        Err(_) => f(&mut vec![0; len], &mut vec![0; len]),
    })
}

/// The quantiser for one step and one count type.
#[derive(Clone, Debug)]
pub struct Quantiser {
    q_milli: u32,
    max: u32,
    /// `None` at q = 0, where every count is its own bin and no table is needed.
    bins: Option<Arc<Bins>>,
}

impl Quantiser {
    /// The quantiser of step `q_milli / 1000` σ for counts stored as `T` (whose maximum is the
    /// masked marker).
    pub fn new<T: Count>(q_milli: u32) -> Result<Quantiser, String> {
        Quantiser::with_max(q_milli, T::MAX.get())
    }

    /// The same for counts `0..max` with `max` the masked marker.
    pub fn with_max(q_milli: u32, max: u32) -> Result<Quantiser, String> {
        check_q_milli(q_milli)?;
        if max == 0 {
            return Err("the masked marker must be above 0".into());
        }
        Ok(Quantiser {
            q_milli,
            max,
            bins: (q_milli > 0).then(|| bins(q_milli, max)),
        })
    }

    pub fn q_milli(&self) -> u32 {
        self.q_milli
    }

    /// The step in σ.
    pub fn q(&self) -> f64 {
        f64::from(self.q_milli) / f64::from(Q_SCALE)
    }

    /// Counts below this come back exact: `⌈4/q²⌉` (at least 1), all counts at q = 0.
    pub fn exact_below(&self) -> u32 {
        self.bins.as_ref().map_or(self.max, |b| b.exact)
    }

    /// The largest code a chunk can hold: the masked code when the largest bin is used.
    pub fn last_code(&self) -> u32 {
        self.bins
            .as_ref()
            .map_or(self.max, |b| b.starts.len() as u32)
    }

    /// The masked marker.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// The code of a count `v < max`.
    #[inline(always)]
    pub fn code(&self, v: u32) -> u32 {
        match &self.bins {
            Some(b) => b.bin(v),
            None => v,
        }
    }

    /// The counts `[lo, hi]` of the code of a count; `None` past the last bin.
    pub fn range(&self, code: u32) -> Option<(u32, u32)> {
        if code >= self.last_code() {
            return None;
        }
        Some(match &self.bins {
            Some(b) => b.range(code),
            None => (code, code),
        })
    }

    /// The masked code of a chunk of `values`: one past the largest code of a count in it (0
    /// when every pixel is masked). No code of the chunk is larger.
    pub fn masked_code<T: Count>(&self, values: &[T]) -> u32 {
        // The masked marker wraps to 0, so this is the largest count plus one.
        let top = values
            .iter()
            .map(|v| v.get().wrapping_add(1) & T::MAX.get())
            .max()
            .unwrap_or(0);
        if top == 0 {
            0
        } else {
            self.code(top - 1) + 1
        }
    }

    /// The sum key of pixel `i`, which has a multi-count code: the code and a context class,
    /// how bright its brighter raster neighbour (bin start; 0 when masked or past an end) is
    /// compared with the pixel's own bin start `lo`: below lo/8, lo/4, lo/2, lo, 2·lo, 4·lo,
    /// 8·lo, or above.
    ///
    /// Why: the counts falling into one bin are not spread alike everywhere. A rare high count
    /// in a faint background sits near the bin's start; a pixel of a spot, among bright
    /// neighbours, is spread over the whole bin. One mean per bin for the whole chunk moves
    /// intensity from spots to the background (measured on 5x5 spot boxes: −0.03 σ_I at q = 1,
    /// −0.14 at q = 2). Sums kept per (bin, context) follow each population (about −0.005 and
    /// −0.08); totals stay exact either way. Only codes are read, so the decoder forms the same
    /// keys. Measured and not better: the sum of one, two or three neighbours each side. What
    /// is left at q = 2 comes from the first bins, {1, 2} and {3, 4}: spot wings hold more 2s
    /// per 1 than a background pixel with the same neighbours, which a row of the frame cannot
    /// tell apart.
    #[inline(always)]
    fn key<C: Count>(bins: &Bins, masked: u32, codes: &[C], i: usize) -> usize {
        let lo = |c: u32| {
            if c == masked {
                0
            } else {
                bins.starts[c as usize]
            }
        };
        let code = codes[i].get();
        let own = u64::from(lo(code));
        let left = if i > 0 { lo(codes[i - 1].get()) } else { 0 };
        let right = codes.get(i + 1).map_or(0, |c| lo(c.get()));
        let (around, mut edge) = (u64::from(left.max(right)) * 8, own);
        let mut class = 0;
        while class + 1 < CONTEXTS && around >= edge {
            class += 1;
            edge *= 2;
        }
        code as usize * CONTEXTS + class
    }

    /// Quantises `values` into `codes` (same length; `C` must hold [`Self::masked_code`]) and
    /// returns what the decoder needs besides them.
    pub fn quantise<T: Count, C: Count>(&self, values: &[T], codes: &mut [C]) -> Sums {
        assert_eq!(values.len(), codes.len(), "one code per value");
        let masked = self.masked_code(values);
        let Some(bins) = self.bins.as_deref() else {
            // Lossless: counts are their own codes.
            for (c, v) in codes.iter_mut().zip(values) {
                let v = v.get();
                *c = C::from_u32(if v == T::MAX.get() { masked } else { v });
            }
            return Sums {
                masked_code: masked,
                offsets: Vec::new(),
            };
        };
        let n = values.len();
        let exact = bins.exact;
        with_counters(masked as usize * CONTEXTS, |count, sum| {
            // A multi-count pixel is booked one step late, once its right neighbour's code is
            // known; the codes just written are still in L1.
            let mut book = |i: usize, codes: &[C]| {
                let c = codes[i].get();
                if c >= exact && c != masked {
                    let key = Self::key(bins, masked, codes, i);
                    count[key] += 1;
                    sum[key] += u64::from(values[i].get());
                }
            };
            for i in 0..n {
                let v = values[i].get();
                codes[i] = C::from_u32(if v == T::MAX.get() {
                    masked
                } else {
                    bins.bin(v)
                });
                if i >= NEIGHBOURS {
                    book(i - NEIGHBOURS, codes);
                }
            }
            for i in n.saturating_sub(NEIGHBOURS)..n {
                book(i, codes);
            }
            let mut offsets = Vec::new();
            for key in exact as usize * CONTEXTS..masked as usize * CONTEXTS {
                let c = count[key];
                if c > 0 {
                    let (lo, _) = bins.range((key / CONTEXTS) as u32);
                    offsets.push((key as u32, sum[key] - u64::from(c) * u64::from(lo)));
                }
            }
            Sums {
                masked_code: masked,
                offsets,
            }
        })
    }

    /// Reconstructs counts from `codes` and the chunk's `sums` into `out` (same length). Every
    /// code and sum is checked: a masked code past the table, a code past the masked code, a
    /// sum for a key no pixel has, a sum larger than its pixels' bins allow, or a key missing
    /// its sum, is an error.
    pub fn dequantise<C: Count, T: Count>(
        &self,
        codes: &[C],
        sums: &Sums,
        out: &mut [T],
    ) -> Result<(), String> {
        assert_eq!(codes.len(), out.len(), "one value per code");
        let masked = sums.masked_code;
        if masked > self.last_code() {
            return Err(format!(
                "masked code {masked} is past the last code {}",
                self.last_code()
            ));
        }
        let top = codes.iter().map(|c| c.get()).max().unwrap_or(0);
        if top > masked {
            return Err(format!("code {top} is past the masked code {masked}"));
        }
        let Some(bins) = self.bins.as_deref() else {
            if !sums.offsets.is_empty() {
                return Err("lossless chunk carries per-code sums".into());
            }
            for (o, c) in out.iter_mut().zip(codes) {
                let c = c.get();
                *o = T::from_u32(if c == masked { self.max } else { c });
            }
            return Ok(());
        };
        let exact = bins.exact;
        let key_of = |i: usize| Self::key(bins, masked, codes, i);
        let multi = |c: u32| c >= exact && c != masked;
        let keys = masked as usize * CONTEXTS;
        // count[k]: pixels with key k; next[k] packs the value of the key's next pixel in its
        // high half and how many more of them get the +1 in its low half.
        with_counters(keys, |count, next| {
            for (i, c) in codes.iter().enumerate() {
                if multi(c.get()) {
                    count[key_of(i)] += 1;
                }
            }
            let mut pending = sums.offsets.iter().peekable();
            for key in exact as usize * CONTEXTS..keys {
                let n = count[key];
                let entry = pending.next_if(|&&(k, _)| k as usize == key);
                if n == 0 {
                    if entry.is_some() {
                        return Err(format!("sum given for key {key}, which no pixel has"));
                    }
                    continue;
                }
                let Some(&(_, d)) = entry else {
                    return Err(format!("no sum for key {key}, held by {n} pixels"));
                };
                let (lo, hi) = bins.range((key / CONTEXTS) as u32);
                let limit = u64::from(n) * u64::from(hi - lo);
                if d > limit {
                    return Err(format!(
                        "sum offset {d} of key {key} exceeds {limit} ({n} pixels of {lo}..={hi})"
                    ));
                }
                let base = u64::from(lo) + d / u64::from(n);
                next[key] = (base << 32) | (d % u64::from(n));
            }
            if let Some(&(k, _)) = pending.next() {
                return Err(format!("sum given for key {k}, which no pixel has"));
            }
            for (i, (o, c)) in out.iter_mut().zip(codes).enumerate() {
                let c = c.get();
                let v = if c == masked {
                    self.max
                } else if c < exact {
                    c
                } else {
                    let slot = &mut next[key_of(i)];
                    let plus = *slot & 0xFFFF_FFFF;
                    let base = (*slot >> 32) as u32;
                    if plus > 0 {
                        *slot -= 1;
                        base + 1
                    } else {
                        base
                    }
                };
                *o = T::from_u32(v);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_obey_the_bound_and_tile_the_counts() {
        for q_milli in [100, 500, 1000, 2000, 7300] {
            let q = Quantiser::with_max(q_milli, 1 << 20).unwrap();
            let mut expect_lo = 0;
            for code in 0..q.last_code() {
                let (lo, hi) = q.range(code).unwrap();
                assert_eq!(lo, expect_lo, "bins tile the counts");
                assert!(f64::from(hi - lo) <= q.q() / 2.0 * f64::from(lo).sqrt() + 1e-9);
                assert_eq!((q.code(lo), q.code(hi)), (code, code));
                expect_lo = hi + 1;
            }
            assert_eq!(expect_lo, 1 << 20);
            // Exact below ⌈4/q²⌉ (the first count whose bin is wider than one).
            let threshold = 4_000_000u32.div_ceil(q_milli * q_milli).max(1);
            assert_eq!(q.exact_below(), threshold, "q = {}", q.q());
        }
    }

    #[test]
    fn masked_pixels_get_the_code_after_the_largest_and_lossless_keeps_counts() {
        let q = Quantiser::new::<u16>(0).unwrap();
        let values: Vec<u16> = vec![0, 1, 65535, 7, 65535];
        let mut codes = vec![0u16; 5];
        let sums = q.quantise(&values, &mut codes);
        assert_eq!(sums.masked_code, 8);
        assert_eq!(codes, [0, 1, 8, 7, 8]);
        let mut back = vec![0u16; 5];
        q.dequantise(&codes, &sums, &mut back).unwrap();
        assert_eq!(back, values);
        // Counts up to the largest below the marker keep their codes; the marker then takes it.
        let full: Vec<u16> = vec![65534, 65535];
        assert_eq!(q.masked_code(&full), 65535);
    }

    #[test]
    fn totals_are_exact_and_values_stay_in_their_bins() {
        let q = Quantiser::new::<u32>(1000).unwrap();
        let values: Vec<u32> = (0..5000u32).map(|i| (i * 7919) % 3000).collect();
        let mut codes = vec![0u32; values.len()];
        let sums = q.quantise(&values, &mut codes);
        let mut back = vec![0u32; values.len()];
        q.dequantise(&codes, &sums, &mut back).unwrap();
        let total = |v: &[u32]| v.iter().map(|&x| u64::from(x)).sum::<u64>();
        assert_eq!(total(&back), total(&values));
        for (&v, &b) in values.iter().zip(&back) {
            assert!(f64::from(v.abs_diff(b)) <= 0.5 * f64::from(v).sqrt());
        }
    }
}
