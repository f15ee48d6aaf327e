//! An LZ4 block decoder for bit planes.
//!
//! lz4_flex copies every overlapping match one byte at a time, and bitshuffled detector data is
//! almost nothing else: a plane is copied from the plane before it (offset 256 for a default u32
//! block, length up to thousands) and zero runs repeat a few bytes back. Here a match with an
//! offset of 16 or more is copied in 16-byte steps or period-long memmoves (each reads bytes
//! already written), and a shorter offset is expanded into a 16-byte pattern written in steps of
//! a whole number of periods.
//!
//! Copies may run up to 31 bytes past the end of a literal run or match when the buffer has room
//! beyond the decoded length (a decoder gives it [`SLACK`] spare bytes); those bytes are
//! overwritten by what follows or lie beyond the block. Without room, it copies exactly. Every
//! length and offset is checked before use, so corrupt input gives an error, never a panic.
#![forbid(unsafe_code)]

/// Spare bytes after the decoded length that let copies run in whole 16-byte steps.
pub(crate) const SLACK: usize = 32;

const MIN_MATCH: usize = 4;

/// Decodes one LZ4 block into `out[..len]`; `out[len..]` is scratch room. The block must decode
/// to exactly `len` bytes.
pub(crate) fn decompress(input: &[u8], out: &mut [u8], len: usize) -> Result<(), String> {
    debug_assert!(out.len() >= len);
    let mut i = 0; // input position
    let mut d = 0; // output position
    loop {
        let token = *input
            .get(i)
            .ok_or("LZ4 block ends before its last sequence")?;
        i += 1;
        // Literals.
        let mut lit = usize::from(token >> 4);
        if lit == 15 {
            lit += read_length(input, &mut i)?;
        }
        if lit > input.len() - i {
            return Err(format!(
                "LZ4 literal run of {lit} bytes passes the end of the block"
            ));
        }
        if lit > len - d {
            return Err(format!("LZ4 data decompresses to more than {len} bytes"));
        }
        if input.len() - i >= lit + 16 && out.len() - d >= lit + 16 {
            // Whole 16-byte steps, running past the literals into room that is overwritten next.
            let mut k = 0;
            loop {
                let chunk: [u8; 16] = input[i + k..i + k + 16].try_into().expect("16 bytes");
                out[d + k..d + k + 16].copy_from_slice(&chunk);
                k += 16;
                if k >= lit {
                    break;
                }
            }
        } else {
            out[d..d + lit].copy_from_slice(&input[i..i + lit]);
        }
        i += lit;
        d += lit;
        if i == input.len() {
            break; // the last sequence has literals only
        }
        // Match.
        let offset = match input.get(i..i + 2) {
            Some(&[lo, hi]) => usize::from(u16::from_le_bytes([lo, hi])),
            _ => return Err("LZ4 block ends inside a match offset".into()),
        };
        i += 2;
        let mut length = usize::from(token & 15);
        if length == 15 {
            length += read_length(input, &mut i)?;
        }
        length += MIN_MATCH;
        if offset == 0 || offset > d {
            return Err(format!(
                "LZ4 match offset {offset} at output byte {d} points before the block"
            ));
        }
        if length > len - d {
            return Err(format!("LZ4 data decompresses to more than {len} bytes"));
        }
        copy_match(out, d, offset, length);
        d += length;
    }
    if d != len {
        return Err(format!(
            "LZ4 data decompresses to {d} bytes, expected {len}"
        ));
    }
    Ok(())
}

/// Reads the 255-continued extension of a length.
fn read_length(input: &[u8], i: &mut usize) -> Result<usize, String> {
    let mut n = 0usize;
    loop {
        let b = *input.get(*i).ok_or("LZ4 block ends inside a length")?;
        *i += 1;
        n += usize::from(b);
        if b != 255 {
            return Ok(n);
        }
    }
}

/// The largest whole number of `offset`-byte periods in 16 bytes (a table: a division here costs
/// more than the copy).
const PERIOD_STEP: [u8; 16] = {
    let mut t = [0u8; 16];
    let mut o = 1;
    while o < 16 {
        t[o] = (16 - 16 % o) as u8;
        o += 1;
    }
    t
};

/// Copies `length` bytes from `offset` back to `d` (checked: `offset <= d`, `d + length` within
/// the decoded length).
#[inline(always)]
fn copy_match(out: &mut [u8], d: usize, offset: usize, length: usize) {
    let src = d - offset;
    if out.len() - d < length + 32 {
        // Near the end of a buffer without slack: exactly, front to back.
        for k in 0..length {
            out[d + k] = out[src + k];
        }
        return;
    }
    if offset >= 16 {
        if length <= 32 {
            // Short matches, the most common: two fixed 16-byte steps, each reading bytes
            // written before it (offset >= 16).
            copy16(out, src, d);
            if length > 16 {
                copy16(out, src + 16, d + 16);
            }
        } else if offset >= 64 {
            // Long, like a plane copied from the one before: a whole period at a time, each
            // piece a non-overlapping memmove.
            let mut k = 0;
            while k < length {
                let n = offset.min(length - k);
                out.copy_within(src + k..src + k + n, d + k);
                k += n;
            }
        } else {
            let mut k = 0;
            while k < length {
                copy16(out, src + k, d + k);
                k += 16;
            }
        }
    } else {
        // Repeat the period in 16-byte stores, advancing by a whole number of periods.
        let head: [u8; 16] = out[src..src + 16].try_into().expect("16 bytes");
        let mut pattern = u128::from_le_bytes(head) & (u128::MAX >> (128 - 8 * offset));
        let mut period = offset;
        while period < 16 {
            pattern |= pattern << (8 * period);
            period *= 2;
        }
        let pattern = pattern.to_le_bytes();
        let step = usize::from(PERIOD_STEP[offset]);
        let mut k = 0;
        while k < length {
            out[d + k..d + k + 16].copy_from_slice(&pattern);
            k += step;
        }
    }
}

#[inline(always)]
fn copy16(out: &mut [u8], src: usize, d: usize) {
    let chunk: [u8; 16] = out[src..src + 16].try_into().expect("16 bytes");
    out[d..d + 16].copy_from_slice(&chunk);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(data: &[u8]) {
        let c = lz4_flex::block::compress(data);
        for slack in [0, SLACK] {
            let mut out = vec![0xEE; data.len() + slack];
            decompress(&c, &mut out, data.len()).unwrap();
            assert_eq!(&out[..data.len()], data, "slack {slack}");
        }
    }

    #[test]
    fn decodes_what_lz4_flex_encodes() {
        check(b"");
        check(b"a");
        check(&[0u8; 1000]);
        for period in 1..40 {
            let v: Vec<u8> = (0..3000)
                .map(|i| ((i % period) * 7 + i / 1000) as u8)
                .collect();
            check(&v);
        }
        let mut x = 12345u32;
        let noisy: Vec<u8> = (0..10_000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if (x >> 16).is_multiple_of(5) {
                    (x >> 24) as u8
                } else {
                    0
                }
            })
            .collect();
        check(&noisy);
    }

    #[test]
    fn rejects_offsets_before_the_block() {
        // token: 1 literal, match length 4; literal 'x'; offset 2 (only 1 byte written).
        let err = decompress(&[0x10, b'x', 2, 0], &mut [0; 64], 5).unwrap_err();
        assert!(err.contains("points before the block"), "{err}");
        let err = decompress(&[0x10, b'x', 0, 0], &mut [0; 64], 5).unwrap_err();
        assert!(err.contains("offset 0"), "{err}");
    }
}
