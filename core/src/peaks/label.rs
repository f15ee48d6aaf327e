//! Connected components of a sparse set of pixels: 4-connected as DIALS labels strong pixels,
//! 8-connected as peakfinder8 grows peaks.

/// Groups `pixels` (row-major indices in increasing order) into 4- or 8-connected components,
/// two neighbours joining only when `joins(a, b)` says so (same module). Returns the components
/// as runs of `order` (positions into `pixels`, increasing within a component): component `c`
/// is `order[starts[c]..starts[c + 1]]`, components in raster order of their first pixel.
pub(crate) fn components(
    pixels: &[u32],
    nx: usize,
    eight: bool,
    joins: impl Fn(u32, u32) -> bool,
    order: &mut Vec<u32>,
    starts: &mut Vec<u32>,
) {
    let n = pixels.len();
    let mut parent: Vec<u32> = (0..n as u32).collect();
    fn root(parent: &mut [u32], mut k: u32) -> u32 {
        while parent[k as usize] != k {
            // Path halving keeps the trees flat.
            parent[k as usize] = parent[parent[k as usize] as usize];
            k = parent[k as usize];
        }
        k
    }
    let mut up = 0;
    for k in 0..n {
        let p = pixels[k];
        if k > 0
            && pixels[k - 1] + 1 == p
            && !(p as usize).is_multiple_of(nx)
            && joins(pixels[k - 1], p)
        {
            let (a, b) = (root(&mut parent, k as u32 - 1), root(&mut parent, k as u32));
            parent[a.max(b) as usize] = a.min(b);
        }
        let x = p as usize % nx;
        if let Some(above) = (p as usize).checked_sub(nx) {
            // The neighbours in the row above: up-left, up, up-right for 8-connectivity.
            let (first, last) = if eight {
                (above - usize::from(x > 0), above + usize::from(x + 1 < nx))
            } else {
                (above, above)
            };
            while up < k && (pixels[up] as usize) < first {
                up += 1;
            }
            let mut u = up;
            while u < k && pixels[u] as usize <= last {
                if joins(pixels[u], p) {
                    let (a, b) = (root(&mut parent, u as u32), root(&mut parent, k as u32));
                    parent[a.max(b) as usize] = a.min(b);
                }
                u += 1;
            }
        }
    }
    // Roots are the smallest position of their component, so numbering roots in order numbers
    // components by their first pixel.
    let mut id = vec![u32::MAX; n];
    let mut count = 0u32;
    let mut label = vec![0u32; n];
    for k in 0..n as u32 {
        let r = root(&mut parent, k) as usize;
        if id[r] == u32::MAX {
            id[r] = count;
            count += 1;
        }
        label[k as usize] = id[r];
    }
    starts.clear();
    starts.resize(count as usize + 1, 0);
    for &l in &label {
        starts[l as usize + 1] += 1;
    }
    for c in 0..count as usize {
        starts[c + 1] += starts[c];
    }
    order.clear();
    order.resize(n, 0);
    let mut next = starts.clone();
    for (k, &l) in label.iter().enumerate() {
        order[next[l as usize] as usize] = k as u32;
        next[l as usize] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(pixels: &[u32], nx: usize) -> Vec<Vec<u32>> {
        let (mut order, mut starts) = (Vec::new(), Vec::new());
        components(pixels, nx, false, |_, _| true, &mut order, &mut starts);
        starts
            .windows(2)
            .map(|w| {
                order[w[0] as usize..w[1] as usize]
                    .iter()
                    .map(|&k| pixels[k as usize])
                    .collect()
            })
            .collect()
    }

    #[test]
    fn four_connected_not_eight_and_not_across_rows_ends() {
        // 5 x 4 frame:
        //   X X . . X
        //   . X . X .
        //   . . . X X
        //   X . . . .
        let px = [0, 1, 4, 6, 8, 13, 14, 15];
        assert_eq!(
            groups(&px, 5),
            vec![vec![0, 1, 6], vec![4], vec![8, 13, 14], vec![15]]
        );
        // A U shape joins through its bottom row, after both arms started apart.
        let u = [0, 2, 3, 5, 6, 7, 8];
        assert_eq!(groups(&u, 3), vec![u.to_vec()]);
    }

    #[test]
    fn eight_connected_joins_diagonals_but_not_across_row_ends() {
        let (mut order, mut starts) = (Vec::new(), Vec::new());
        // 4 x 3:  X . . X
        //         . X . .
        //         X . X .
        components(
            &[0, 3, 5, 8, 10],
            4,
            true,
            |_, _| true,
            &mut order,
            &mut starts,
        );
        assert_eq!(starts, [0, 4, 5]);
        let first: Vec<u32> = order[..4].to_vec();
        assert_eq!(first, [0, 2, 3, 4]);
    }

    #[test]
    fn joins_can_refuse() {
        let (mut order, mut starts) = (Vec::new(), Vec::new());
        // Columns 0-1 and 2-3 are different modules.
        components(
            &[1, 2, 5, 6],
            4,
            false,
            |a, b| (a % 4 < 2) == (b % 4 < 2),
            &mut order,
            &mut starts,
        );
        assert_eq!(starts, [0, 2, 4]);
    }
}
