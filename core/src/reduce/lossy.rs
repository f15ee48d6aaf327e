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

/// What a decoder needs besides the codes: the masked code, and for the pixels whose codes
/// cover more than one count, for each key `code · CONTEXTS + context` that occurs, how many
/// pixels have it (`n`) and `d = S - n·lo`, in increasing key order. (With `n` given, a decoder
/// turns codes into counts in one pass, block by block while they are in cache.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sums {
    /// The code of masked pixels: one past the largest code of a count in the chunk.
    pub masked_code: u32,
    /// `(key, n, d)`, keys increasing.
    pub offsets: Vec<(u32, u32, u64)>,
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
    fn key(bins: &Bins, masked: u32, left: u32, code: u32, right: u32) -> usize {
        // A neighbour's code is not checked yet (the right one is checked when its turn comes):
        // anything from the masked code up counts as 0, so the lookup stays in the table.
        let lo = |c: u32| {
            if c >= masked {
                0
            } else {
                bins.starts[c as usize]
            }
        };
        let own = u64::from(lo(code));
        let (around, mut edge) = (u64::from(lo(left).max(lo(right))) * 8, own);
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
            // known (the codes just written are still in L1). Most pixels are exact counts and
            // skip the booking, so the check stays in the loop and the booking out of it.
            let mut book = |i: usize, codes: &[C]| {
                let left = if i > 0 { codes[i - 1].get() } else { masked };
                let right = codes.get(i + 1).map_or(masked, |c| c.get());
                let key = Self::key(bins, masked, left, codes[i].get(), right);
                count[key] += 1;
                sum[key] += u64::from(values[i].get());
            };
            let marker = T::MAX.get();
            let mut pending = false;
            for i in 0..n {
                let v = values[i].get();
                let c = if v == marker { masked } else { bins.bin(v) };
                codes[i] = C::from_u32(c);
                if pending {
                    book(i - 1, codes);
                }
                pending = c >= exact && c != masked;
            }
            if pending {
                book(n - 1, codes);
            }
            let mut offsets = Vec::new();
            for key in exact as usize * CONTEXTS..masked as usize * CONTEXTS {
                let c = count[key];
                if c > 0 {
                    let (lo, _) = bins.range((key / CONTEXTS) as u32);
                    offsets.push((key as u32, c, sum[key] - u64::from(c) * u64::from(lo)));
                }
            }
            Sums {
                masked_code: masked,
                offsets,
            }
        })
    }

    /// Reconstructs counts from `codes` and the chunk's `sums` into `out` (same length). See
    /// [`Dequantiser`] for what is checked.
    pub fn dequantise<C: Count, T: Count>(
        &self,
        codes: &[C],
        sums: &Sums,
        out: &mut [T],
    ) -> Result<(), String> {
        assert_eq!(codes.len(), out.len(), "one value per code");
        self.dequantiser(sums, codes.len(), |d| {
            d.feed(codes, out)?;
            d.finish(out)
        })
    }

    /// Runs `f` with a [`Dequantiser`] for a chunk of `len` pixels with these `sums`, after
    /// checking the sums against the table.
    pub fn dequantiser<R>(
        &self,
        sums: &Sums,
        len: usize,
        f: impl FnOnce(&mut Dequantiser<'_>) -> Result<R, String>,
    ) -> Result<R, String> {
        let masked = sums.masked_code;
        if masked > self.last_code() {
            return Err(format!(
                "masked code {masked} is past the last code {}",
                self.last_code()
            ));
        }
        let bins = self.bins.as_deref();
        if bins.is_none() && !sums.offsets.is_empty() {
            return Err("lossless chunk carries per-code sums".into());
        }
        let exact = bins.map_or(masked, |b| b.exact);
        let keys = if bins.is_some() {
            masked as usize * CONTEXTS
        } else {
            0
        };
        // left[k]: pixels of key k still to come; next[k] packs the value of the key's next
        // pixel in its high half and how many more of them get the +1 in its low half.
        with_counters(keys, |left, next| {
            let mut total = 0u64;
            let mut prev = None;
            for &(key, n, d) in &sums.offsets {
                let k = key as usize;
                if prev.is_some_and(|p| p >= k) || k >= keys || k < exact as usize * CONTEXTS {
                    return Err(format!(
                        "sum key {key} out of order or outside {}..{keys}",
                        exact as usize * CONTEXTS
                    ));
                }
                prev = Some(k);
                let (lo, hi) = bins
                    .expect("keys only with bins")
                    .range(key / CONTEXTS as u32);
                let limit = u64::from(n) * u64::from(hi - lo);
                total += u64::from(n);
                if n == 0 || d > limit || total > len as u64 {
                    return Err(format!(
                        "sum of key {key}: {n} pixels with offset {d} (at most {limit}) in a chunk \
                         of {len} pixels"
                    ));
                }
                let base = u64::from(lo) + d / u64::from(n);
                next[k] = (base << 32) | (d % u64::from(n));
                left[k] = n;
            }
            let mut d = Dequantiser {
                bins,
                masked,
                exact,
                max: self.max,
                left,
                next,
                sums,
                pos: 0,
                carry: None,
            };
            f(&mut d)
        })
    }
}

/// Turns a chunk's codes into counts part by part, in raster order, as a block decoder hands
/// them over: a pixel is finished once its right neighbour's code is known (its context needs
/// it), so the last pixel of a part waits for the next part or [`Dequantiser::finish`].
///
/// Checked on the way: every code is at most the masked code; no key has more pixels than its
/// sum says; at the end, every key has exactly that many. A chunk that lies fails with a message
/// (`out` then holds partial values); nothing is read or written out of bounds.
pub struct Dequantiser<'a> {
    bins: Option<&'a Bins>,
    masked: u32,
    exact: u32,
    max: u32,
    left: &'a mut [u32],
    next: &'a mut [u64],
    sums: &'a Sums,
    /// Pixels finished so far.
    pos: usize,
    /// The codes of the pixel before the one waiting (if any) and of the one waiting.
    carry: Option<(u32, u32)>,
}

impl Dequantiser<'_> {
    /// The count of a pixel with `code` (at most the masked code) between `left` and `right`.
    #[inline(always)]
    fn value(&mut self, bins: &Bins, left: u32, code: u32, right: u32) -> Result<u32, String> {
        if code == self.masked {
            Ok(self.max)
        } else if code < self.exact {
            Ok(code)
        } else {
            self.multi(bins, left, code, right)
        }
    }

    /// The count of a pixel whose code covers more than one count.
    #[inline(always)]
    fn multi(&mut self, bins: &Bins, left: u32, code: u32, right: u32) -> Result<u32, String> {
        let key = Quantiser::key(bins, self.masked, left, code, right);
        let Some(n) = self.left[key].checked_sub(1) else {
            return Err(format!("more pixels have key {key} than its sum counts"));
        };
        self.left[key] = n;
        let slot = &mut self.next[key];
        let plus = *slot & 0xFFFF_FFFF;
        let base = (*slot >> 32) as u32;
        Ok(if plus > 0 {
            *slot -= 1;
            base + 1
        } else {
            base
        })
    }

    /// Takes the next `codes` of the chunk; writes the counts of the pixels it can finish into
    /// `out`, which is the whole chunk's output.
    pub fn feed<C: Count, T: Count>(&mut self, codes: &[C], out: &mut [T]) -> Result<(), String> {
        if self.pos + codes.len() > out.len() {
            return Err(format!(
                "{} codes for {} pixels",
                self.pos + codes.len(),
                out.len()
            ));
        }
        // One pass the compiler vectorises checks the codes, so the loops below need not.
        let top = codes.iter().map(|c| c.get()).max().unwrap_or(0);
        if top > self.masked {
            return Err(format!(
                "code {top} is past the masked code {}",
                self.masked
            ));
        }
        let Some(bins) = self.bins else {
            // Lossless: no contexts, only the masked code to map back.
            let (masked, max) = (self.masked, self.max);
            let dst = &mut out[self.pos..self.pos + codes.len()];
            for (o, c) in dst.iter_mut().zip(codes) {
                let c = c.get();
                *o = T::from_u32(if c == masked { max } else { c });
            }
            self.pos += codes.len();
            return Ok(());
        };
        let mut codes = codes.iter().map(|c| c.get());
        let (mut left, mut code) = match self.carry {
            Some(waiting) => waiting,
            // The chunk's first pixel: it has no left neighbour.
            None => match codes.next() {
                Some(c) => (self.masked, c),
                None => return Ok(()),
            },
        };
        let (masked, max, exact) = (self.masked, self.max, self.exact);
        let mut done = 0;
        // Each code finishes the pixel before it; the feed-length check above keeps these
        // within `out`.
        for (o, right) in out[self.pos..].iter_mut().zip(codes) {
            let v = if code == masked {
                max
            } else if code < exact {
                code
            } else {
                self.multi(bins, left, code, right)?
            };
            *o = T::from_u32(v);
            done += 1;
            (left, code) = (code, right);
        }
        self.pos += done;
        self.carry = Some((left, code));
        Ok(())
    }

    /// Finishes the last pixel and checks that every key had as many pixels as its sum says.
    pub fn finish<T: Count>(&mut self, out: &mut [T]) -> Result<(), String> {
        if let (Some((left, code)), Some(bins)) = (self.carry.take(), self.bins) {
            let masked = self.masked;
            out[self.pos] = T::from_u32(self.value(bins, left, code, masked)?);
            self.pos += 1;
        }
        if self.pos != out.len() {
            return Err(format!("{} codes for {} pixels", self.pos, out.len()));
        }
        for &(key, n, _) in &self.sums.offsets {
            let short = self.left[key as usize];
            if short > 0 {
                return Err(format!(
                    "key {key}: its sum counts {n} pixels, the codes hold {}",
                    n - short
                ));
            }
        }
        Ok(())
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

    /// The decoder finishes a pixel only once its right neighbour arrives: any split of the
    /// codes into parts (empty ones, single codes) gives what one part gives.
    #[test]
    fn any_split_of_the_codes_decodes_the_same() {
        for q_milli in [0, 1000, 2000] {
            let q = Quantiser::new::<u16>(q_milli).unwrap();
            let values: Vec<u16> = (0..997u32)
                .map(|i| match i % 13 {
                    0 => u16::MAX,
                    1..=5 => 0,
                    k => ((i * 7919) % (40 * k)) as u16,
                })
                .collect();
            let mut codes = vec![0u16; values.len()];
            let sums = q.quantise(&values, &mut codes);
            let mut whole = vec![0u16; values.len()];
            q.dequantise(&codes, &sums, &mut whole).unwrap();
            for step in [1usize, 2, 3, 7, 64, 500] {
                let mut parts = vec![0u16; values.len()];
                q.dequantiser(&sums, codes.len(), |d| {
                    // Part lengths 0..=step from a small generator: empty parts included.
                    let (mut at, mut x) = (0, 12345u32);
                    while at < codes.len() {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        let end = (at + (x >> 16) as usize % (step + 1)).min(codes.len());
                        d.feed(&codes[at..end], &mut parts)?;
                        at = end;
                    }
                    d.finish(&mut parts)
                })
                .unwrap();
                assert_eq!(parts, whole, "q_milli {q_milli}, step {step}");
            }
            let total = |v: &[u16]| {
                v.iter()
                    .filter(|&&x| x != u16::MAX)
                    .map(|&x| u64::from(x))
                    .sum::<u64>()
            };
            assert_eq!(total(&whole), total(&values));
        }
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
