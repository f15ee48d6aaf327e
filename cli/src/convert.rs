//! `hdrmx convert`: re-chunk and recompress a dataset. Frames are read by neggia-rs (any master
//! it reads: VDS, DECTRIS links, HDF5 2.0 files) and written by durin-rs, one frame per chunk,
//! with the input's NXmx metadata carried over where it has it.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use durin::{Layout, Metadata, Writer, WriterOptions};
use indicatif::{ProgressBar, ProgressStyle};
use neggia::nxmx::Master;
use neggia::Datatype;

use crate::simulate::SimCodec;

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// The input master (`*_master.h5`, `.nxs`, ...).
    pub input: PathBuf,
    /// The output master, `DIR/NAME_master.h5`: data files go beside it as NAME_data_NNNNNN.h5.
    pub output: PathBuf,
    #[arg(long, value_enum, default_value_t = SimCodec::Bslz4)]
    pub codec: SimCodec,
    #[arg(long, default_value_t = 1000)]
    pub frames_per_file: usize,
    /// DECTRIS-style data_NNNNNN external links instead of a virtual dataset.
    #[arg(long)]
    pub links: bool,
}

/// `DIR/NAME_master.h5` -> (DIR, NAME).
pub(crate) fn output_name(path: &Path) -> Result<(PathBuf, String)> {
    let file = path
        .file_name()
        .and_then(|f| f.to_str())
        .with_context(|| format!("{}: no file name", path.display()))?;
    let Some(name) = file.strip_suffix("_master.h5") else {
        bail!(
            "{}: the output must be named NAME_master.h5",
            path.display()
        );
    };
    if name.is_empty() {
        bail!("{}: empty NAME", path.display());
    }
    let dir = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    Ok((
        if dir.as_os_str().is_empty() {
            ".".into()
        } else {
            dir
        },
        name.to_string(),
    ))
}

/// A number at `path` (its first element), scaled by its `units` attribute with `scale`.
fn number(m: &Master, path: &str, scale: fn(&str) -> Option<f64>) -> Option<f64> {
    let d = m.file().dataset(path).ok()?;
    let v = d.read_value().ok()?.as_f64()?;
    let units = d.attr("units").ok().flatten();
    let factor = match units.as_ref().and_then(|u| u.as_str()) {
        Some(u) => scale(u.trim())?,
        None => 1.0,
    };
    Some(v * factor)
}

fn metres(u: &str) -> Option<f64> {
    match u {
        "m" | "metre" | "meter" | "metres" | "meters" => Some(1.0),
        "mm" => Some(1e-3),
        "um" | "µm" | "micron" | "microns" => Some(1e-6),
        "nm" => Some(1e-9),
        _ => None,
    }
}

fn angstrom(u: &str) -> Option<f64> {
    match u {
        "angstrom" | "Angstrom" | "A" | "Å" => Some(1.0),
        "nm" => Some(10.0),
        "m" => Some(1e10),
        _ => None,
    }
}

fn plain(_: &str) -> Option<f64> {
    Some(1.0)
}

fn text(m: &Master, path: &str) -> Option<String> {
    let v = m.file().dataset(path).ok()?.read_value().ok()?;
    v.as_str().map(str::to_string)
}

/// The input's NXmx metadata, as far as it has it (plausible EIGER2 values for what it lacks).
pub(crate) fn metadata(m: &Master, elem_size: usize) -> Metadata {
    const DET: &str = "/entry/instrument/detector";
    let [ny, nx] = m.shape();
    let d = |name: &str| format!("{DET}/{name}");
    let omega = [
        "/entry/sample/transformations/omega",
        "/entry/sample/goniometer/omega",
    ]
    .iter()
    .find_map(|p| m.file().dataset(p).ok()?.read_value().ok()?.to_f64s());
    let omega_start = omega
        .as_ref()
        .and_then(|w| w.first().copied())
        .unwrap_or(0.0);
    let omega_increment = omega
        .as_ref()
        .filter(|w| w.len() > 1)
        .map(|w| w[1] - w[0])
        .or_else(|| {
            number(
                m,
                "/entry/sample/transformations/omega_increment_set",
                plain,
            )
        })
        .or_else(|| number(m, "/entry/sample/goniometer/omega_range_average", plain))
        .unwrap_or(0.0);
    Metadata {
        nx: nx as usize,
        ny: ny as usize,
        elem_size,
        x_pixel_size: number(m, &d("x_pixel_size"), metres).unwrap_or(75e-6),
        y_pixel_size: number(m, &d("y_pixel_size"), metres).unwrap_or(75e-6),
        distance: number(m, &d("detector_distance"), metres)
            .or_else(|| number(m, &d("distance"), metres))
            .or_else(|| number(m, &d("transformations/translation"), metres))
            .unwrap_or(0.1),
        beam_center_x: number(m, &d("beam_center_x"), plain).unwrap_or(nx as f64 / 2.0),
        beam_center_y: number(m, &d("beam_center_y"), plain).unwrap_or(ny as f64 / 2.0),
        wavelength: number(m, "/entry/instrument/beam/incident_wavelength", angstrom)
            .or_else(|| number(m, "/entry/instrument/monochromator/wavelength", angstrom))
            .unwrap_or(1.0),
        omega_start,
        omega_increment,
        count_time: number(m, &d("count_time"), plain).unwrap_or(0.0),
        frame_time: number(m, &d("frame_time"), plain).unwrap_or(0.0),
        sensor_material: text(m, &d("sensor_material")).unwrap_or_else(|| "Si".into()),
        sensor_thickness: number(m, &d("sensor_thickness"), metres).unwrap_or(450e-6),
        saturation_value: number(m, &d("saturation_value"), plain)
            .or_else(|| number(m, &d("detectorSpecific/saturation_value"), plain))
            .map_or(i64::from(i32::MAX), |v| v as i64),
        underload_value: number(m, &d("underload_value"), plain).map_or(-1, |v| v as i64),
        bit_depth_readout: number(m, &d("bit_depth_readout"), plain)
            .or_else(|| number(m, &d("bit_depth_image"), plain))
            .map_or(8 * elem_size as i64, |v| v as i64),
        description: text(m, &d("description")).unwrap_or_default(),
        start_time: text(m, "/entry/start_time").unwrap_or_default(),
        pixel_mask: m.mask().map(<[u32]>::to_vec).unwrap_or_default(),
    }
}

pub fn convert(args: &ConvertArgs) -> Result<()> {
    let input =
        Master::open(&args.input).with_context(|| format!("opening {}", args.input.display()))?;
    let elem_size = match input.dtype() {
        Datatype::Int {
            size: s @ (2 | 4),
            signed: false,
            ..
        } => *s,
        other => bail!(
            "{}: frames of {}; convert writes uint16 and uint32",
            args.input.display(),
            other.numpy()
        ),
    };
    let (dir, name) = output_name(&args.output)?;
    let codec = args.codec.codec(elem_size)?;
    let opts = WriterOptions {
        frames_per_file: args.frames_per_file,
        layout: if args.links {
            Layout::Links
        } else {
            Layout::Vds
        },
        codec,
    };
    let mut writer = Writer::create(&dir, &name, metadata(&input, elem_size), opts)?;
    let [ny, nx] = input.shape();
    let n = (ny * nx) as usize;
    let bar = ProgressBar::new(input.frames());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {pos}/{len} frames [{elapsed_precise}] {wide_bar} {per_sec}",
        )
        .expect("a valid template"),
    );
    let (mut f16, mut f32) = (Vec::new(), Vec::new());
    let mut bytes = Vec::with_capacity(n * elem_size);
    for i in 0..input.frames() {
        bytes.clear();
        if elem_size == 2 {
            f16.resize(n, 0u16);
            input.read_frame_into(i, &mut f16)?;
            bytes.extend(f16.iter().flat_map(|v| v.to_le_bytes()));
        } else {
            f32.resize(n, 0u32);
            input.read_frame_into(i, &mut f32)?;
            bytes.extend(f32.iter().flat_map(|v| v.to_le_bytes()));
        }
        writer
            .write_frame(&bytes)
            .with_context(|| format!("writing frame {i}"))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let master = writer.finish()?;
    outln!("{}", master.display());
    Ok(())
}
