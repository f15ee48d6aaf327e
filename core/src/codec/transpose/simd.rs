//! The bit transpose written once over a small vector trait; `sse2`, `avx2` and `avx512` are
//! thin instances of it.
//!
//! A group of `V::BYTES` elements is handled in registers: its `e` byte rows are separated with an
//! in-lane deinterleave network (the inverse of `unpacklo/hi_epi8`), a cross-lane permutation puts
//! each row in element order, and each row's eight bit planes are read off with one instruction
//! per plane (`movemask` or `test_mask`). Decoding runs the same steps backwards.

/// One SIMD register's worth of bytes, with the handful of operations the transpose needs.
///
/// All methods are `unsafe` because they use instructions the CPU may lack; callers run inside a
/// `#[target_feature]` function that has checked for them.
pub(super) trait Vector: Copy {
    /// Register width in bytes, which is also the number of elements per group.
    const BYTES: usize;
    /// One bit plane of a group (`BYTES` bits).
    type Plane: Copy + Default;

    unsafe fn zero() -> Self;
    unsafe fn load(p: *const u8) -> Self;
    unsafe fn store(self, p: *mut u8);
    /// Per 128-bit lane: the even bytes of `a` then of `b`, and the odd ones.
    unsafe fn even_odd(a: Self, b: Self) -> (Self, Self);
    /// Per 128-bit lane: bytes of `a` and `b` interleaved (low halves, high halves).
    unsafe fn zip(a: Self, b: Self) -> (Self, Self);
    /// Reorders a byte row from element order into the lane order the `e`-way networks produce.
    unsafe fn to_lane_order(self, e: usize) -> Self;
    /// The inverse of [`Vector::to_lane_order`].
    unsafe fn to_element_order(self, e: usize) -> Self;
    /// Bit `k` of every byte, as plane `k`.
    unsafe fn planes(self) -> [Self::Plane; 8];
    /// Bytes whose bit `k` is taken from plane `k`.
    unsafe fn from_planes(planes: [Self::Plane; 8]) -> Self;
    unsafe fn load_plane(p: *const u8) -> Self::Plane;
    unsafe fn store_plane(plane: Self::Plane, p: *mut u8);
}

#[inline(always)]
unsafe fn deinterleave2<V: Vector>([a, b]: [V; 2]) -> [V; 2] {
    let (even, odd) = V::even_odd(a, b);
    [even, odd]
}

#[inline(always)]
unsafe fn deinterleave4<V: Vector>([a, b, c, d]: [V; 4]) -> [V; 4] {
    let (e01, o01) = V::even_odd(a, b);
    let (e23, o23) = V::even_odd(c, d);
    let [r0, r2] = deinterleave2([e01, e23]);
    let [r1, r3] = deinterleave2([o01, o23]);
    [r0, r1, r2, r3]
}

#[inline(always)]
unsafe fn deinterleave8<V: Vector>(o: [V; 8]) -> [V; 8] {
    let (e0, o0) = V::even_odd(o[0], o[1]);
    let (e1, o1) = V::even_odd(o[2], o[3]);
    let (e2, o2) = V::even_odd(o[4], o[5]);
    let (e3, o3) = V::even_odd(o[6], o[7]);
    let [r0, r2, r4, r6] = deinterleave4([e0, e1, e2, e3]);
    let [r1, r3, r5, r7] = deinterleave4([o0, o1, o2, o3]);
    [r0, r1, r2, r3, r4, r5, r6, r7]
}

#[inline(always)]
unsafe fn interleave2<V: Vector>([r0, r1]: [V; 2]) -> [V; 2] {
    let (lo, hi) = V::zip(r0, r1);
    [lo, hi]
}

#[inline(always)]
unsafe fn interleave4<V: Vector>([r0, r1, r2, r3]: [V; 4]) -> [V; 4] {
    let [e01, e23] = interleave2([r0, r2]);
    let [o01, o23] = interleave2([r1, r3]);
    let (a, b) = V::zip(e01, o01);
    let (c, d) = V::zip(e23, o23);
    [a, b, c, d]
}

#[inline(always)]
unsafe fn interleave8<V: Vector>(r: [V; 8]) -> [V; 8] {
    let [e0, e1, e2, e3] = interleave4([r[0], r[2], r[4], r[6]]);
    let [o0, o1, o2, o3] = interleave4([r[1], r[3], r[5], r[7]]);
    let (a, b) = V::zip(e0, o0);
    let (c, d) = V::zip(e1, o1);
    let (f, g) = V::zip(e2, o2);
    let (h, i) = V::zip(e3, o3);
    [a, b, c, d, f, g, h, i]
}

#[inline(always)]
pub(super) unsafe fn deinterleave<V: Vector, const E: usize>(o: [V; E]) -> [V; E] {
    // SAFETY of the transmutes: E is exactly the array length matched on.
    match E {
        1 => o,
        2 => core::mem::transmute_copy(&deinterleave2::<V>(core::mem::transmute_copy(&o))),
        4 => core::mem::transmute_copy(&deinterleave4::<V>(core::mem::transmute_copy(&o))),
        8 => core::mem::transmute_copy(&deinterleave8::<V>(core::mem::transmute_copy(&o))),
        _ => unreachable!("element size checked by the caller"),
    }
}

#[inline(always)]
pub(super) unsafe fn interleave<V: Vector, const E: usize>(r: [V; E]) -> [V; E] {
    // SAFETY of the transmutes: E is exactly the array length matched on.
    match E {
        1 => r,
        2 => core::mem::transmute_copy(&interleave2::<V>(core::mem::transmute_copy(&r))),
        4 => core::mem::transmute_copy(&interleave4::<V>(core::mem::transmute_copy(&r))),
        8 => core::mem::transmute_copy(&interleave8::<V>(core::mem::transmute_copy(&r))),
        _ => unreachable!("element size checked by the caller"),
    }
}

/// Transposes the whole groups from element `start` (a multiple of the group) of a block of `n`
/// elements of `E` bytes; returns where it stopped (the caller finishes with the scalar kernel).
#[inline(always)]
unsafe fn transpose_groups<V: Vector, const E: usize>(
    src: &[u8],
    dst: &mut [u8],
    n: usize,
    start: usize,
) -> usize {
    let w = V::BYTES;
    let row = n / 8;
    let groups = n / w;
    debug_assert!(src.len() >= n * E && dst.len() >= n * E && start.is_multiple_of(w));
    for g in start / w..groups {
        let base = g * w;
        // Plain loops, not `array::from_fn`: closures may not inline into the target-feature
        // function, and then every intrinsic becomes a call.
        let mut o = [V::zero(); E];
        for (t, v) in o.iter_mut().enumerate() {
            // SAFETY: elements base..base + w lie inside the block, so these E * w bytes are in src.
            *v = V::load(src.as_ptr().add((base * E) + t * w));
        }
        let rows = deinterleave::<V, E>(o);
        for (j, r) in rows.into_iter().enumerate() {
            let planes = r.to_element_order(E).planes();
            for (k, plane) in planes.into_iter().enumerate() {
                // SAFETY: plane 8j+k starts at (8j+k)*row; bytes base/8 .. (base+w)/8 are inside it.
                V::store_plane(plane, dst.as_mut_ptr().add((8 * j + k) * row + base / 8));
            }
        }
    }
    (groups * w).max(start)
}

/// The inverse of [`transpose_groups`].
#[inline(always)]
unsafe fn untranspose_groups<V: Vector, const E: usize>(
    src: &[u8],
    dst: &mut [u8],
    n: usize,
    start: usize,
) -> usize {
    let w = V::BYTES;
    let row = n / 8;
    let groups = n / w;
    debug_assert!(src.len() >= n * E && dst.len() >= n * E && start.is_multiple_of(w));
    for g in start / w..groups {
        let base = g * w;
        let mut rows = [V::zero(); E];
        for (j, r) in rows.iter_mut().enumerate() {
            let mut planes = [V::Plane::default(); 8];
            for (k, p) in planes.iter_mut().enumerate() {
                // SAFETY: as in transpose_groups, every plane read stays inside plane 8j+k.
                *p = V::load_plane(src.as_ptr().add((8 * j + k) * row + base / 8));
            }
            *r = V::from_planes(planes).to_lane_order(E);
        }
        for (t, v) in interleave::<V, E>(rows).into_iter().enumerate() {
            // SAFETY: elements base..base + w lie inside the block.
            v.store(dst.as_mut_ptr().add(base * E + t * w));
        }
    }
    (groups * w).max(start)
}

#[inline(always)]
pub(super) unsafe fn transpose<V: Vector>(
    src: &[u8],
    dst: &mut [u8],
    e: usize,
    n: usize,
    start: usize,
) -> usize {
    match e {
        1 => transpose_groups::<V, 1>(src, dst, n, start),
        2 => transpose_groups::<V, 2>(src, dst, n, start),
        4 => transpose_groups::<V, 4>(src, dst, n, start),
        8 => transpose_groups::<V, 8>(src, dst, n, start),
        _ => start,
    }
}

#[inline(always)]
pub(super) unsafe fn untranspose<V: Vector>(
    src: &[u8],
    dst: &mut [u8],
    e: usize,
    n: usize,
    start: usize,
) -> usize {
    match e {
        1 => untranspose_groups::<V, 1>(src, dst, n, start),
        2 => untranspose_groups::<V, 2>(src, dst, n, start),
        4 => untranspose_groups::<V, 4>(src, dst, n, start),
        8 => untranspose_groups::<V, 8>(src, dst, n, start),
        _ => start,
    }
}
