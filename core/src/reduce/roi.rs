//! Regions of interest: a rectangle cut out of each frame.

/// A rectangle of a frame: first column `x`, first row `y`, `width` columns and `height` rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roi {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

impl Roi {
    /// Parses `"x,y,width,height"` (spaces around the numbers allowed).
    pub fn parse(s: &str) -> Result<Roi, String> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let [x, y, width, height] = parts[..] else {
            return Err(format!(
                "ROI {s:?}: expected x,y,width,height (four integers), found {} fields",
                parts.len()
            ));
        };
        let num = |name: &str, v: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("ROI {s:?}: {name} {v:?} is not a non-negative integer"))
        };
        let roi = Roi {
            x: num("x", x)?,
            y: num("y", y)?,
            width: num("width", width)?,
            height: num("height", height)?,
        };
        if roi.width == 0 || roi.height == 0 {
            return Err(format!("ROI {s:?}: width and height must be at least 1"));
        }
        Ok(roi)
    }

    /// Fails unless the rectangle is non-empty and lies inside a frame of `nx` by `ny` pixels.
    pub fn check(&self, nx: usize, ny: usize) -> Result<(), String> {
        if self.width == 0 || self.height == 0 {
            return Err(format!("ROI {self}: width and height must be at least 1"));
        }
        let inside = |start: usize, len: usize, size: usize| {
            start.checked_add(len).is_some_and(|end| end <= size)
        };
        if !inside(self.x, self.width, nx) || !inside(self.y, self.height, ny) {
            return Err(format!(
                "ROI {self} does not fit in a frame of {nx} x {ny} pixels (columns x rows)"
            ));
        }
        Ok(())
    }

    /// Pixels in the rectangle.
    pub fn len(&self) -> usize {
        self.width * self.height
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for Roi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{},{},{},{}", self.x, self.y, self.width, self.height)
    }
}

/// Copies the rectangle `roi` of a row-major frame `nx` pixels wide into `out` (`roi.width *
/// roi.height` values, row-major). Works for pixels and for the pixel mask alike.
///
/// # Panics
/// If the rectangle does not fit the frame (see [`Roi::check`]) or `out` has the wrong length.
pub fn cut<T: Copy>(src: &[T], nx: usize, roi: &Roi, out: &mut [T]) {
    let ny = src.len().checked_div(nx).unwrap_or(0);
    if let Err(e) = roi.check(nx, ny) {
        panic!("{e}");
    }
    assert_eq!(out.len(), roi.len(), "ROI output length");
    for (dy, row) in out.chunks_exact_mut(roi.width).enumerate() {
        let start = (roi.y + dy) * nx + roi.x;
        row.copy_from_slice(&src[start..start + roi.width]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(
            Roi::parse("10, 20,30,40"),
            Ok(Roi {
                x: 10,
                y: 20,
                width: 30,
                height: 40
            })
        );
        for bad in [
            "",
            "1,2,3",
            "1,2,3,4,5",
            "a,2,3,4",
            "-1,2,3,4",
            "1,2,0,4",
            "1,2,3,0",
        ] {
            assert!(Roi::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn checks_the_frame() {
        let r = Roi {
            x: 2,
            y: 1,
            width: 3,
            height: 2,
        };
        assert!(r.check(5, 3).is_ok());
        assert!(r.check(4, 3).is_err());
        assert!(r.check(5, 2).is_err());
        let huge = Roi {
            x: usize::MAX,
            y: 0,
            width: 2,
            height: 1,
        };
        assert!(huge.check(5, 3).is_err());
    }

    #[test]
    fn cuts_the_rectangle() {
        let src: Vec<u16> = (0..30).collect();
        let r = Roi {
            x: 1,
            y: 2,
            width: 3,
            height: 2,
        };
        let mut out = [0u16; 6];
        cut(&src, 6, &r, &mut out);
        assert_eq!(out, [13, 14, 15, 19, 20, 21]);
        let whole = Roi {
            x: 0,
            y: 0,
            width: 6,
            height: 5,
        };
        let mut all = vec![0u16; 30];
        cut(&src, 6, &whole, &mut all);
        assert_eq!(all, src);
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn cut_outside_panics() {
        let mut out = [0u8; 4];
        cut(
            &[0u8; 9],
            3,
            &Roi {
                x: 2,
                y: 2,
                width: 2,
                height: 2,
            },
            &mut out,
        );
    }
}
