//! One open master: what `plugin_get_header` and `plugin_get_data` need, read-only after open.

use std::cell::RefCell;
use std::path::Path;

use hdrmx_core::frame::xds::{self, Converter, Pixel, Pixel32};
use neggia::nxmx::Master;
use neggia::{Datatype, Element, Storage};

use crate::options::Options;

/// The error codes of the XDS plugin interface (the table in Dectris' generic_data_plugin.f90,
/// which Durin and Neggia follow).
pub mod code {
    /// plugin_get_data: the frame cannot be read; also any call before plugin_open.
    pub const FRAME: i32 = -2;
    /// plugin_get_data: the frames' datatype is not supported.
    pub const DATATYPE: i32 = -3;
    /// plugin_open: the master cannot be opened (Neggia also answers a second open with it).
    pub const OPEN: i32 = -4;
}

/// A failed call: its code and the line to print.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn new(code: i32, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

/// What `plugin_get_header` reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Header {
    /// Fast and slow pixels of the frames XDS gets (after binning).
    pub nx: i32,
    pub ny: i32,
    /// Bytes per stored pixel.
    pub nbytes: i32,
    /// Pixel size in metres (after binning); 0 when the master does not say.
    pub qx: f32,
    pub qy: f32,
    /// Frames in the whole stack.
    pub frames: i32,
}

/// The stored pixel types get_data converts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PixelType {
    U8,
    U16,
    U32,
    I8,
    I16,
    I32,
}

pub struct Plugin {
    master: Master,
    pub options: Options,
    /// None: frames of a type get_data refuses with [`code::DATATYPE`].
    pixel: Option<PixelType>,
    /// The stored frame, fast and slow.
    nx: usize,
    ny: usize,
    pub header: Header,
    converter: Converter,
}

thread_local! {
    // Per-thread scratch, grown once: XDS keeps its threads, so steady state allocates nothing.
    /// A frame as stored, for types narrower than int32 (u64 words: aligned for any type).
    static RAW: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    /// A converted frame at full size, before binning.
    static FULL: RefCell<Vec<i32>> = const { RefCell::new(Vec::new()) };
}

fn frame_failed(message: impl Into<String>) -> Failure {
    Failure::new(code::FRAME, message)
}

/// `buf` with at least `len` elements; a size the machine cannot allocate is an error, not an
/// abort.
fn grow<T: Copy + Default>(buf: &mut Vec<T>, len: usize) -> Result<&mut [T], Failure> {
    if buf.len() < len {
        buf.try_reserve_exact(len - buf.len()).map_err(|_| {
            frame_failed(format!(
                "cannot allocate {len} x {} bytes of scratch",
                size_of::<T>()
            ))
        })?;
        buf.resize(len, T::default());
    }
    Ok(&mut buf[..len])
}

impl Plugin {
    /// Opens a master (`*_master.h5`, `.nxs`, or XDS's `name_??????.h5` template).
    pub fn open(path: &Path, options: Options) -> Result<Plugin, Failure> {
        let fail = |m: String| Failure::new(code::OPEN, m);
        let master = Master::open(path).map_err(|e| fail(e.to_string()))?;
        let file = master.file().path().display().to_string();
        let [ny, nx] = master
            .shape()
            .map(|v| usize::try_from(v).unwrap_or(usize::MAX));
        let (bx, by) = xds::binned_shape(nx, ny, options.bin);
        let small = |v: usize| i32::try_from(v).ok().filter(|&v| v > 0);
        let (Some(hx), Some(hy), Some(_)) = (small(bx), small(by), nx.checked_mul(ny)) else {
            return Err(fail(format!(
                "{file}: frames of {nx} x {ny} pixels cannot be handed to XDS binned {b} x {b}",
                b = options.bin
            )));
        };
        let frames = i32::try_from(master.frames()).map_err(|_| {
            fail(format!(
                "{file}: {} frames, more than XDS counts",
                master.frames()
            ))
        })?;
        let (size, pixel) = match *master.dtype() {
            Datatype::Int { size, signed, .. } => (
                size,
                match (size, signed) {
                    (1, false) => Some(PixelType::U8),
                    (2, false) => Some(PixelType::U16),
                    (4, false) => Some(PixelType::U32),
                    (1, true) => Some(PixelType::I8),
                    (2, true) => Some(PixelType::I16),
                    (4, true) => Some(PixelType::I32),
                    _ => None,
                },
            ),
            ref other => (other.size(), None),
        };
        let bin = options.bin as f64;
        let (qx, qy) = master
            .pixel_size
            .map_or((0.0, 0.0), |(x, y)| ((x * bin) as f32, (y * bin) as f32));
        let converter = Converter::new(master.mask(), options.saturated);
        Ok(Plugin {
            header: Header {
                nx: hx,
                ny: hy,
                nbytes: size as i32,
                qx,
                qy,
                frames,
            },
            master,
            options,
            pixel,
            nx,
            ny,
            converter,
        })
    }

    pub fn path(&self) -> &Path {
        self.master.file().path()
    }

    /// One line about what was opened, for `HDRMX_LOG`.
    pub fn describe(&self) -> String {
        let stack = match self.master.locate(0) {
            Ok((d, _)) if d.storage() == Storage::Virtual => "VDS",
            Ok(_) => "datasets",
            Err(_) => "missing data",
        };
        let h = &self.header;
        let bin = match self.options.bin {
            1 => String::new(),
            b => format!(", binned {b} x {b} to {} x {}", h.nx, h.ny),
        };
        format!(
            "{}: {} frames of {} x {} {} ({stack}){bin}, {} masked pixels, pixel {} x {} m, \
             image number offset {}, saturated pixels as {}",
            self.path().display(),
            h.frames,
            self.nx,
            self.ny,
            self.master.dtype().numpy(),
            self.converter.masked_pixels(),
            h.qx,
            h.qy,
            self.options.offset,
            self.options.saturated.value(),
        )
    }

    /// Reads XDS frame `number` (1-based, before the offset) into `out`, of `nx * ny` of the
    /// header, in the XDS convention.
    pub fn read(&self, number: i32, out: &mut [i32]) -> Result<(), Failure> {
        let frames = self.master.frames();
        let i = i64::from(number) - self.options.offset - 1;
        if i < 0 || i as u64 >= frames {
            let offset = self.options.offset;
            return Err(frame_failed(format!(
                "{}: frame {number} is outside the data: frames {} to {}{}",
                self.path().display(),
                1 + offset,
                frames as i64 + offset,
                if offset != 0 {
                    format!(" (HDRMX_IMAGE_NUMBER_OFFSET={offset})")
                } else {
                    String::new()
                }
            )));
        }
        let pixel = self.pixel.ok_or_else(|| {
            Failure::new(
                code::DATATYPE,
                format!(
                    "{}: frames of {} are not supported (uint8/16/32 or int8/16/32)",
                    self.path().display(),
                    self.master.dtype().numpy()
                ),
            )
        })?;
        let i = i as u64;
        let whole = |out: &mut [i32]| {
            self.read_stored(pixel, i, out).map_err(|mut f| {
                f.message = format!("frame {number}: {}", f.message);
                f
            })
        };
        match self.options.bin {
            1 => whole(out),
            n => FULL.with(|cell| {
                let mut full = cell.borrow_mut();
                let full = grow(&mut full, self.nx * self.ny)?;
                whole(full)?;
                xds::bin(full, self.nx, self.ny, n, out);
                Ok(())
            }),
        }
    }

    /// Stored frame `i` (0-based), converted, into `out` of the stored size.
    fn read_stored(&self, pixel: PixelType, i: u64, out: &mut [i32]) -> Result<(), Failure> {
        match pixel {
            PixelType::U32 => self.wide::<u32>(i, out),
            PixelType::I32 => self.wide::<i32>(i, out),
            PixelType::U16 => self.narrow::<u16>(i, out),
            PixelType::U8 => self.narrow::<u8>(i, out),
            PixelType::I16 => self.narrow::<i16>(i, out),
            PixelType::I8 => self.narrow::<i8>(i, out),
        }
    }

    /// 4-byte pixels: decoded straight into `out` and converted there, block by block while
    /// each block is in cache (neggia hands a frame stored as one bitshuffle chunk over block by
    /// block, VDS frames followed to their source; anything else whole).
    fn wide<T: Pixel32 + Element>(&self, i: u64, out: &mut [i32]) -> Result<(), Failure> {
        self.master
            .read_frame_with::<T>(i, bytemuck::cast_slice_mut(out), |at, part| {
                self.converter
                    .convert_in_place::<T>(at / 4, bytemuck::cast_slice_mut(part))
            })
            .map_err(|e| frame_failed(e.to_string()))
    }

    /// 1- and 2-byte pixels: decoded into per-thread scratch and converted into `out` block by
    /// block, while each block is in cache.
    fn narrow<T: Pixel + Element>(&self, i: u64, out: &mut [i32]) -> Result<(), Failure> {
        let size = size_of::<T>();
        RAW.with(|cell| {
            let mut raw = cell.borrow_mut();
            let words = grow(&mut raw, (out.len() * size).div_ceil(8))?;
            let scratch = &mut bytemuck::cast_slice_mut::<u64, T>(words)[..out.len()];
            self.master
                .read_frame_with::<T>(i, scratch, |at, part| {
                    let first = at / size;
                    let src: &[T] = bytemuck::cast_slice(part);
                    self.converter
                        .convert(first, src, &mut out[first..first + src.len()]);
                })
                .map_err(|e| frame_failed(e.to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrmx_core::frame::xds::Saturated;
    use std::path::PathBuf;

    fn corpus(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/corpus/files")
            .join(name)
    }

    /// Every frame as neggia reads it, converted pixel by pixel with the rules.
    fn expected(path: &Path, saturated: Saturated) -> Vec<Vec<i32>> {
        let m = Master::open(path).unwrap();
        let n = (m.shape()[0] * m.shape()[1]) as usize;
        let mask = m.mask().map(<[u32]>::to_vec).unwrap_or(vec![0; n]);
        (0..m.frames())
            .map(|i| match m.dtype() {
                Datatype::Int { size: 2, .. } => {
                    let mut raw = vec![0u16; n];
                    m.read_frame_into(i, &mut raw).unwrap();
                    raw.iter()
                        .zip(&mask)
                        .map(|(&v, &b)| xds::pixel(v, b, saturated))
                        .collect()
                }
                _ => {
                    let mut raw = vec![0u32; n];
                    m.read_frame_into(i, &mut raw).unwrap();
                    raw.iter()
                        .zip(&mask)
                        .map(|(&v, &b)| xds::pixel(v, b, saturated))
                        .collect()
                }
            })
            .collect()
    }

    #[test]
    fn frames_follow_the_rules_links_and_vds() {
        for name in [
            "eiger1_master.h5",
            "eiger2_master.h5",
            "dls.h5",
            "ib_b_master.h5",
        ] {
            let path = corpus(name);
            let want = expected(&path, Saturated::MinusOne);
            let options = Options {
                saturated: Saturated::MinusOne,
                ..Options::default()
            };
            let p = Plugin::open(&path, options).unwrap();
            assert_eq!(p.header.frames as usize, want.len());
            let mut out = vec![0x5A5A_5A5A; want[0].len()];
            for (i, w) in want.iter().enumerate() {
                p.read(i as i32 + 1, &mut out).unwrap();
                assert!(&out == w, "{name} frame {}", i + 1);
            }
        }
    }

    #[test]
    fn offset_binning_and_errors() {
        let path = corpus("eiger2_master.h5");
        let want = expected(&path, Saturated::Overload);
        let options = Options {
            offset: 100,
            bin: 2,
            ..Options::default()
        };
        let p = Plugin::open(&path, options).unwrap();
        assert_eq!((p.header.nx, p.header.ny), (32, 24));
        let mut out = vec![0; 32 * 24];
        let mut binned = vec![0; 32 * 24];
        p.read(102, &mut out).unwrap();
        xds::bin(&want[1], 64, 48, 2, &mut binned);
        assert_eq!(out, binned);
        for n in [100, 108, 0, -1, i32::MIN, i32::MAX] {
            let e = p.read(n, &mut out).unwrap_err();
            assert_eq!(e.code, code::FRAME, "{n}");
            assert!(e.message.contains("frames 101 to 107"), "{}", e.message);
        }
        let e = Plugin::open(&corpus("no_such_master.h5"), Options::default()).err();
        assert_eq!(e.map(|e| e.code), Some(code::OPEN));
    }
}
