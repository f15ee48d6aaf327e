//! The NXmx writer.
use crate::h5::{self, types, Handle, Mapping};
use crate::{Error, Result};
use hdrmx_core::codec::Codec;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// How the master reaches the frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `/entry/data/data` is a virtual dataset over the data files (DLS, DESY).
    Vds,
    /// `/entry/data/data_000001`, ... external links (DECTRIS FileWriter).
    Links,
}

#[derive(Clone, Debug)]
pub struct WriterOptions {
    pub frames_per_file: usize,
    pub layout: Layout,
    /// The chunk codec: frames given raw are encoded with it, pre-compressed chunks must be in it.
    pub codec: Codec,
}

/// What the master says about the experiment. Lengths in metres, angles in degrees,
/// wavelength in ångström, times in seconds.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Metadata {
    pub nx: usize,
    pub ny: usize,
    /// 2 (uint16) or 4 (uint32).
    pub elem_size: usize,
    pub x_pixel_size: f64,
    pub y_pixel_size: f64,
    pub distance: f64,
    pub beam_center_x: f64,
    pub beam_center_y: f64,
    pub wavelength: f64,
    pub omega_start: f64,
    pub omega_increment: f64,
    pub count_time: f64,
    pub frame_time: f64,
    pub sensor_material: String,
    pub sensor_thickness: f64,
    pub saturation_value: i64,
    pub underload_value: i64,
    pub bit_depth_readout: i64,
    pub description: String,
    pub start_time: String,
    /// NXmx pixel_mask, `ny * nx` values (empty: none written).
    #[serde(skip)]
    pub pixel_mask: Vec<u32>,
}

/// Writes one dataset: `<dir>/<name>_master.h5` and `<dir>/<name>_data_NNNNNN.h5`.
pub struct Writer {
    dir: PathBuf,
    name: String,
    meta: Metadata,
    opts: WriterOptions,
    frame_bytes: usize,
    current: Option<(Handle, Handle)>,
    in_file: usize,
    files: Vec<(String, usize)>,
    frames: usize,
    scratch: Vec<u8>,
}

const DATA_PATH: &str = "/entry/data/data";
const DEFLATE: u32 = 1;

impl Writer {
    pub fn create(dir: &Path, name: &str, meta: Metadata, opts: WriterOptions) -> Result<Writer> {
        if !matches!(meta.elem_size, 2 | 4) {
            return Err(Error::Invalid(format!(
                "pixel size {} bytes: 2 or 4",
                meta.elem_size
            )));
        }
        if opts.frames_per_file == 0 {
            return Err(Error::Invalid("frames per file must be at least 1".into()));
        }
        if !meta.pixel_mask.is_empty() && meta.pixel_mask.len() != meta.nx * meta.ny {
            return Err(Error::Invalid(format!(
                "pixel mask of {} values for {} x {} pixels",
                meta.pixel_mask.len(),
                meta.ny,
                meta.nx
            )));
        }
        let frame_bytes = meta.nx * meta.ny * meta.elem_size;
        Ok(Writer {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            frame_bytes,
            scratch: vec![0; opts.codec.max_encoded_len(frame_bytes)],
            meta,
            opts,
            current: None,
            in_file: 0,
            files: Vec::new(),
            frames: 0,
        })
    }

    fn data_type(&self) -> i64 {
        if self.meta.elem_size == 2 {
            types::u16_le()
        } else {
            types::u32_le()
        }
    }

    /// Encodes one raw frame (little-endian pixels) with the codec and writes it.
    pub fn write_frame(&mut self, raw: &[u8]) -> Result<()> {
        if raw.len() != self.frame_bytes {
            return Err(Error::FrameSize {
                expected: self.frame_bytes,
                actual: raw.len(),
            });
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let written = match self.opts.codec.encode_into(raw, &mut scratch) {
            Ok(n) => self.write_chunk(&scratch[..n]),
            Err(e) => Err(e.into()),
        };
        self.scratch = scratch;
        written
    }

    /// Writes one frame already compressed with the codec (a detector-stream chunk), unchanged.
    pub fn write_chunk(&mut self, chunk: &[u8]) -> Result<()> {
        let _g = h5::lock();
        if self.current.is_none() {
            self.open_data_file()?;
        }
        let (_, d) = self.current.as_ref().expect("opened above");
        h5::write_chunk(d, &[self.in_file as u64, 0, 0], chunk)?;
        self.in_file += 1;
        self.frames += 1;
        if self.in_file == self.opts.frames_per_file {
            self.close_data_file()?;
        }
        Ok(())
    }

    fn open_data_file(&mut self) -> Result<()> {
        let file = format!("{}_data_{:06}.h5", self.name, self.files.len() + 1);
        let path = self.dir.join(&file);
        let f = h5::create_file(&path.to_string_lossy())?;
        let entry = h5::group(&f, "entry", "NXentry")?;
        let data = h5::group(&entry, "data", "NXdata")?;
        let (m, ny, nx) = (
            self.opts.frames_per_file as u64,
            self.meta.ny as u64,
            self.meta.nx as u64,
        );
        let cd = self.opts.codec.cd_values();
        let d = h5::chunked(
            &data,
            "data",
            self.data_type(),
            &[m, ny, nx],
            &[m, ny, nx],
            &[1, ny, nx],
            Some((self.opts.codec.filter_id(), &cd)),
        )?;
        self.current = Some((f, d));
        self.files.push((file, 0));
        self.in_file = 0;
        Ok(())
    }

    fn close_data_file(&mut self) -> Result<()> {
        if let Some((f, d)) = self.current.take() {
            let n = self.in_file as u64;
            if n < self.opts.frames_per_file as u64 {
                h5::set_extent(&d, &[n, self.meta.ny as u64, self.meta.nx as u64])?;
            }
            let low = (self.frames - self.in_file + 1) as i64;
            let high = self.frames as i64;
            h5::attr(&d, "image_nr_low", types::i64(), &[], &low.to_ne_bytes())?;
            h5::attr(&d, "image_nr_high", types::i64(), &[], &high.to_ne_bytes())?;
            if let Some(last) = self.files.last_mut() {
                last.1 = self.in_file;
            }
            drop(d);
            drop(f);
        }
        self.in_file = 0;
        Ok(())
    }

    /// Closes the last data file and writes the master; returns its path.
    pub fn finish(self) -> Result<PathBuf> {
        Ok(self.finish_with(&[])?.remove(0))
    }

    /// Like [`Writer::finish`], and writes one more master per `(name, frame ranges)` over the
    /// same data files: `<name>_master.h5` whose VDS shows those frames of the acquisition, in
    /// order, with their omega values. Two masters over alternating blocks are an inverse-beam
    /// collection; N masters over consecutive slices a multi-trigger one (as DLS writes them).
    /// Returns the full master's path, then the others'.
    pub fn finish_with(mut self, masters: &[(&str, &[Range<u64>])]) -> Result<Vec<PathBuf>> {
        let _g = h5::lock();
        self.close_data_file()?;
        if !masters.is_empty() && self.opts.layout != Layout::Vds {
            return Err(Error::Invalid(
                "partial masters need a VDS (data_NNNNNN links cannot select frames)".into(),
            ));
        }
        let all = 0..self.frames as u64;
        let path = self.dir.join(format!("{}_master.h5", self.name));
        self.write_master(&path, std::slice::from_ref(&all))?;
        let mut paths = vec![path];
        for (name, ranges) in masters {
            if let Some(r) = ranges.iter().find(|r| r.start >= r.end || r.end > all.end) {
                return Err(Error::Invalid(format!(
                    "{name}: frames {r:?} not within 0..{}",
                    all.end
                )));
            }
            let path = self.dir.join(format!("{name}_master.h5"));
            self.write_master(&path, ranges)?;
            paths.push(path);
        }
        Ok(paths)
    }

    /// A master over the acquisition's frames in `ranges`.
    fn write_master(&self, path: &Path, ranges: &[Range<u64>]) -> Result<()> {
        let m = &self.meta;
        let f = h5::create_file(&path.to_string_lossy())?;
        let entry = h5::group(&f, "entry", "NXentry")?;
        h5::write_str(&entry, "definition", "NXmx")?;
        h5::write_str(&entry, "start_time", &m.start_time)?;

        // Frames.
        let data = h5::group(&entry, "data", "NXdata")?;
        h5::attr_str(&data, "signal", "data")?;
        let selected: Vec<u64> = ranges.iter().flat_map(Clone::clone).collect();
        let dims = [selected.len() as u64, m.ny as u64, m.nx as u64];
        match self.opts.layout {
            Layout::Vds => {
                let mut maps: Vec<Mapping<'_>> = Vec::new();
                let mut at = 0;
                for r in ranges {
                    let mut file_start = 0;
                    for (file, n) in &self.files {
                        let n = *n as u64;
                        let (lo, hi) = (r.start.max(file_start), r.end.min(file_start + n));
                        if lo < hi {
                            maps.push(Mapping {
                                start: at,
                                count: hi - lo,
                                source_start: lo - file_start,
                                source_frames: n,
                                file,
                                path: DATA_PATH,
                            });
                            at += hi - lo;
                        }
                        file_start += n;
                    }
                }
                h5::virtual_dataset(&data, "data", self.data_type(), dims, &maps)?;
            }
            Layout::Links => {
                for (k, (file, _)) in self.files.iter().enumerate() {
                    h5::external_link(&data, &format!("data_{:06}", k + 1), file, DATA_PATH)?;
                }
            }
        }

        let instrument = h5::group(&entry, "instrument", "NXinstrument")?;
        let beam = h5::group(&instrument, "beam", "NXbeam")?;
        let d = scalar_f64(&beam, "incident_wavelength", m.wavelength)?;
        h5::attr_str(&d, "units", "angstrom")?;

        // Detector and its chain: detector_z <- module_offset <- fast/slow pixel directions.
        let det = h5::group(&instrument, "detector", "NXdetector")?;
        let det_path = "/entry/instrument/detector";
        h5::write_str(
            &det,
            "depends_on",
            &format!("{det_path}/transformations/translation"),
        )?;
        h5::write_str(&det, "description", &m.description)?;
        h5::write_str(&det, "sensor_material", &m.sensor_material)?;
        with_units(
            scalar_f64(&det, "sensor_thickness", m.sensor_thickness)?,
            "m",
        )?;
        with_units(scalar_f64(&det, "x_pixel_size", m.x_pixel_size)?, "m")?;
        with_units(scalar_f64(&det, "y_pixel_size", m.y_pixel_size)?, "m")?;
        with_units(scalar_f64(&det, "beam_center_x", m.beam_center_x)?, "pixel")?;
        with_units(scalar_f64(&det, "beam_center_y", m.beam_center_y)?, "pixel")?;
        with_units(scalar_f64(&det, "count_time", m.count_time)?, "s")?;
        with_units(scalar_f64(&det, "frame_time", m.frame_time)?, "s")?;
        with_units(scalar_f64(&det, "distance", m.distance)?, "m")?;
        scalar_i64(&det, "saturation_value", m.saturation_value)?;
        scalar_i64(&det, "underload_value", m.underload_value)?;
        scalar_i64(&det, "bit_depth_readout", m.bit_depth_readout)?;
        scalar_i64(&det, "bit_depth_image", 8 * m.elem_size as i64)?;
        if !m.pixel_mask.is_empty() {
            // Deflated (every HDF5 reads it; level 1, as fast as it gets), one chunk: the 72 MB mask of
            // a 16M detector becomes a few hundred kB.
            let dims = [m.ny as u64, m.nx as u64];
            let mask = h5::chunked(
                &det,
                "pixel_mask",
                types::u32_le(),
                &dims,
                &dims,
                &dims,
                Some((DEFLATE, &[1])),
            )?;
            h5::write_all(&mask, types::u32(), bytes_of_u32(&m.pixel_mask))?;
            scalar_i64(&det, "pixel_mask_applied", 0)?;
        }
        let tr = h5::group(&det, "transformations", "NXtransformations")?;
        transformation(
            &tr,
            "translation",
            &[m.distance],
            "translation",
            "m",
            [0.0, 0.0, 1.0],
            None,
            ".",
        )?;
        let module = h5::group(&det, "module", "NXdetector_module")?;
        let mpath = format!("{det_path}/module");
        h5::write_data(
            &module,
            "data_origin",
            types::i64(),
            &[2],
            bytes_of_i64(&[0, 0]),
        )?;
        let size = [m.ny as i64, m.nx as i64];
        h5::write_data(
            &module,
            "data_size",
            types::i64(),
            &[2],
            bytes_of_i64(&size),
        )?;
        h5::write_data(
            &module,
            "data_stride",
            types::i64(),
            &[2],
            bytes_of_i64(&[1, 1]),
        )?;
        // The module corner sits so that the beam (0, 0, distance) meets the beam centre:
        // fast pixels run along -x, slow along -y (McStas, looking along the beam).
        let corner = [
            m.beam_center_x * m.x_pixel_size,
            m.beam_center_y * m.y_pixel_size,
            0.0,
        ];
        transformation(
            &module,
            "module_offset",
            &[0.0],
            "translation",
            "m",
            [1.0, 0.0, 0.0],
            Some(corner),
            &format!("{det_path}/transformations/translation"),
        )?;
        let offset_path = format!("{mpath}/module_offset");
        transformation(
            &module,
            "fast_pixel_direction",
            &[m.x_pixel_size],
            "translation",
            "m",
            [-1.0, 0.0, 0.0],
            Some([0.0; 3]),
            &offset_path,
        )?;
        transformation(
            &module,
            "slow_pixel_direction",
            &[m.y_pixel_size],
            "translation",
            "m",
            [0.0, -1.0, 0.0],
            Some([0.0; 3]),
            &offset_path,
        )?;

        // Sample and the omega scan.
        let sample = h5::group(&entry, "sample", "NXsample")?;
        h5::write_str(&sample, "depends_on", "/entry/sample/transformations/omega")?;
        let str_ = h5::group(&sample, "transformations", "NXtransformations")?;
        let omega: Vec<f64> = selected
            .iter()
            .map(|&i| m.omega_start + i as f64 * m.omega_increment)
            .collect();
        let omega_end: Vec<f64> = omega.iter().map(|w| w + m.omega_increment).collect();
        transformation(
            &str_,
            "omega",
            &omega,
            "rotation",
            "deg",
            [-1.0, 0.0, 0.0],
            None,
            ".",
        )?;
        let d = h5::write_data(
            &str_,
            "omega_end",
            types::f64(),
            &[omega_end.len() as u64],
            bytes_of_f64(&omega_end),
        )?;
        h5::attr_str(&d, "units", "deg")?;
        with_units(
            scalar_f64(&str_, "omega_increment_set", m.omega_increment)?,
            "deg",
        )?;
        drop(f);
        Ok(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // An unfinished writer still closes its data file (no master is written).
        let _g = h5::lock();
        let _ = self.close_data_file();
    }
}

#[allow(clippy::too_many_arguments)]
fn transformation(
    parent: &Handle,
    name: &str,
    values: &[f64],
    kind: &str,
    units: &str,
    vector: [f64; 3],
    offset: Option<[f64; 3]>,
    depends_on: &str,
) -> Result<()> {
    let d = if values.len() == 1 && kind == "translation" {
        scalar_f64(parent, name, values[0])?
    } else {
        h5::write_data(
            parent,
            name,
            types::f64(),
            &[values.len() as u64],
            bytes_of_f64(values),
        )?
    };
    h5::attr_str(&d, "transformation_type", kind)?;
    h5::attr_str(&d, "units", units)?;
    h5::attr_str(&d, "depends_on", depends_on)?;
    h5::attr(&d, "vector", types::f64(), &[3], bytes_of_f64(&vector))?;
    if let Some(o) = offset {
        h5::attr(&d, "offset", types::f64(), &[3], bytes_of_f64(&o))?;
        h5::attr_str(&d, "offset_units", units)?;
    }
    Ok(())
}

fn scalar_f64(parent: &Handle, name: &str, v: f64) -> Result<Handle> {
    h5::write_data(parent, name, types::f64(), &[], &v.to_ne_bytes())
}

fn scalar_i64(parent: &Handle, name: &str, v: i64) -> Result<Handle> {
    h5::write_data(parent, name, types::i64(), &[], &v.to_ne_bytes())
}

fn with_units(d: Handle, units: &str) -> Result<()> {
    h5::attr_str(&d, "units", units)
}

fn bytes_of_f64(v: &[f64]) -> &[u8] {
    // SAFETY: f64 has no padding and any byte pattern is a valid u8; same length in bytes.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), std::mem::size_of_val(v)) }
}

fn bytes_of_i64(v: &[i64]) -> &[u8] {
    // SAFETY: as above.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), std::mem::size_of_val(v)) }
}

fn bytes_of_u32(v: &[u32]) -> &[u8] {
    // SAFETY: as above.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), std::mem::size_of_val(v)) }
}
