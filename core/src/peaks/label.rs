//! Connected components of a sparse set of pixels: 4-connected as DIALS labels strong pixels,
//! 8-connected as peakfinder8 grows peaks.

/// Connected components, with buffers kept from frame to frame.
#[derive(Clone, Debug, Default)]
pub(crate) struct Components {
    /// Positions into the labelled pixels, component by component; component `c` is
    /// `order[starts[c]..starts[c + 1]]`.
    order: Vec<u32>,
    starts: Vec<u32>,
    parent: Vec<u32>,
    label: Vec<u32>,
}

impl Components {
    /// Groups `pixels` (row-major indices in increasing order) into 4- or 8-connected
    /// components, two neighbours joining only when `joins(a, b)` says so (same module).
    /// Components come in raster order of their first pixel, positions increasing within each.
    pub fn label(
        &mut self,
        pixels: &[u32],
        nx: usize,
        eight: bool,
        joins: impl Fn(u32, u32) -> bool,
    ) {
        let n = pixels.len();
        let parent = &mut self.parent;
        parent.clear();
        parent.extend(0..n as u32);
        fn root(parent: &mut [u32], mut k: u32) -> u32 {
            while parent[k as usize] != k {
                // Path halving keeps the trees flat.
                parent[k as usize] = parent[parent[k as usize] as usize];
                k = parent[k as usize];
            }
            k
        }
        let union = |parent: &mut Vec<u32>, a: u32, b: u32| {
            let (a, b) = (root(parent, a), root(parent, b));
            parent[a.max(b) as usize] = a.min(b);
        };
        let mut up = 0;
        for k in 0..n {
            let p = pixels[k];
            if k > 0
                && pixels[k - 1] + 1 == p
                && !(p as usize).is_multiple_of(nx)
                && joins(pixels[k - 1], p)
            {
                union(parent, k as u32 - 1, k as u32);
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
                        union(parent, u as u32, k as u32);
                    }
                    u += 1;
                }
            }
        }
        // A root is the smallest position of its component, so numbering the roots in order
        // numbers the components by their first pixel (and a root's number is known before any
        // other member's).
        let label = &mut self.label;
        label.clear();
        label.resize(n, 0);
        let mut count = 0u32;
        for k in 0..n {
            let r = root(parent, k as u32) as usize;
            label[k] = if r == k {
                count += 1;
                count - 1
            } else {
                label[r]
            };
        }
        let starts = &mut self.starts;
        starts.clear();
        starts.resize(count as usize + 1, 0);
        for &l in label.iter() {
            starts[l as usize + 1] += 1;
        }
        for c in 0..count as usize {
            starts[c + 1] += starts[c];
        }
        // Place each position, reusing `parent` as the next free slot of each component.
        let next = parent;
        next.clear();
        next.extend_from_slice(&starts[..count as usize]);
        let order = &mut self.order;
        order.clear();
        order.resize(n, 0);
        for (k, &l) in label.iter().enumerate() {
            order[next[l as usize] as usize] = k as u32;
            next[l as usize] += 1;
        }
    }

    /// The components, each as positions into the labelled pixels.
    pub fn iter(&self) -> impl Iterator<Item = &[u32]> + '_ {
        self.starts
            .windows(2)
            .map(|w| &self.order[w[0] as usize..w[1] as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(pixels: &[u32], nx: usize, eight: bool) -> Vec<Vec<u32>> {
        let mut c = Components::default();
        c.label(pixels, nx, eight, |_, _| true);
        c.iter()
            .map(|g| g.iter().map(|&k| pixels[k as usize]).collect())
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
            groups(&px, 5, false),
            vec![vec![0, 1, 6], vec![4], vec![8, 13, 14], vec![15]]
        );
        // The same pixels 8-connected: 4 and 8 touch diagonally, 15 does not wrap to 14's row.
        assert_eq!(
            groups(&px, 5, true),
            vec![vec![0, 1, 6], vec![4, 8, 13, 14], vec![15]]
        );
        // A U shape joins through its bottom row, after both arms started apart.
        let u = [0, 2, 3, 5, 6, 7, 8];
        assert_eq!(groups(&u, 3, false), vec![u.to_vec()]);
    }

    #[test]
    fn eight_connected_joins_diagonals_but_not_across_row_ends() {
        // 4 x 3:  X . . X
        //         . X . .
        //         X . X .
        assert_eq!(
            groups(&[0, 3, 5, 8, 10], 4, true),
            vec![vec![0, 5, 8, 10], vec![3]]
        );
        // 3 pixels wide: 2 (end of row 0) and 3 (start of row 1) are not neighbours.
        assert_eq!(groups(&[2, 3], 3, true), vec![vec![2], vec![3]]);
    }

    #[test]
    fn joins_can_refuse() {
        let mut c = Components::default();
        // Columns 0-1 and 2-3 are different modules.
        c.label(&[1, 2, 5, 6], 4, false, |a, b| (a % 4 < 2) == (b % 4 < 2));
        assert_eq!(c.iter().collect::<Vec<_>>(), [&[0, 2][..], &[1, 3][..]]);
        // And the buffers serve the next frame.
        c.label(&[], 4, false, |_, _| true);
        assert_eq!(c.iter().count(), 0);
    }
}
