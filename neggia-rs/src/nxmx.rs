//! The NXmx / EIGER facade: open a master file and read its frames, mask and detector facts.
//!
//! The frame stack is, in order of preference: the dataset `/entry/data/data` (a VDS in most
//! NXmx writers), the DECTRIS FileWriter links `/entry/data/data_000001`, `data_000002`, ...
//! in number order, or the signal of the `/entry/data` NXdata group.

use std::path::{Path, PathBuf};

use hdrmx_core::codec::Codec;

use crate::dataset::{Dataset, Element, Kind, Storage};
use crate::datatype::Datatype;
use crate::error::{ChunkError, Error, Result};
use crate::file::{File, Node, Options};
use crate::group::Link;

const DETECTOR: &str = "/entry/instrument/detector";

/// No detector has a billion pixels; a mask shape beyond this is a lie, refused before allocating.
const MAX_MASK_PIXELS: u64 = 1 << 30;

/// One part of the frame stack: a dataset, or a data file that could not be opened.
enum Part {
    Data(Dataset),
    Missing { link: String, why: String },
}

/// An open master file.
pub struct Master {
    file: File,
    /// (first frame, frames, part), in frame order.
    parts: Vec<(u64, u64, Part)>,
    frames: u64,
    shape: [u64; 2],
    dtype: Datatype,
    mask: Option<Vec<u32>>,
    /// Bits per pixel the detector read out (`bit_depth_readout` or `bit_depth_image`).
    pub bit_depth: Option<u32>,
    /// Counts at and above which a pixel is saturated, when the file says.
    pub saturation_value: Option<u64>,
    /// Pixel size in metres, (fast / x, slow / y).
    pub pixel_size: Option<(f64, f64)>,
}

/// The master a path names: XDS's `name_??????.h5` template means `name_master.h5`.
pub fn master_path(path: &Path) -> PathBuf {
    let s = path.to_string_lossy();
    match s.find("??????") {
        Some(i) => {
            let head = s[..i].trim_end_matches('_');
            PathBuf::from(format!("{head}_master.h5"))
        }
        None => path.to_path_buf(),
    }
}

impl Master {
    /// Opens a master (`*_master.h5`, `.nxs`, or the `_??????.h5` template form).
    pub fn open(path: impl AsRef<Path>) -> Result<Master> {
        Self::open_with(path, Options::default())
    }

    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Master> {
        Self::open_file(File::open_with(master_path(path.as_ref()), options)?)
    }

    pub fn open_file(file: File) -> Result<Master> {
        let parts = frame_stack(&file)?;
        let first = parts
            .iter()
            .find_map(|(_, _, p)| match p {
                Part::Data(d) => Some(d.clone()),
                Part::Missing { .. } => None,
            })
            .ok_or_else(|| not_found(&file, "any readable data file"))?;
        let shape = first.shape();
        if shape.len() != 3 {
            return Err(first.request(format_args!(
                "frame stack of shape {shape:?}, expected [frames, ny, nx]"
            )));
        }
        let shape = [shape[1], shape[2]];
        let dtype = first.dtype().clone();
        if !matches!(dtype, Datatype::Int { .. }) {
            return Err(first.request(format_args!(
                "frames of type {}, expected integers",
                dtype.numpy()
            )));
        }
        for (_, _, p) in &parts {
            if let Part::Data(d) = p {
                if d.shape()[1..] != shape || *d.dtype() != dtype {
                    return Err(d.request(format_args!(
                        "frames of {:?} {} in a stack of {shape:?} {}",
                        &d.shape()[1..],
                        d.dtype().numpy(),
                        dtype.numpy()
                    )));
                }
            }
        }
        let frames = parts.last().map_or(0, |(f, n, _)| f.saturating_add(*n));
        let mask = read_mask(&file, shape)?;
        let bit_depth = number(
            &file,
            &[
                &format!("{DETECTOR}/bit_depth_readout"),
                &format!("{DETECTOR}/bit_depth_image"),
            ],
        )
        .map(|v| v as u32);
        let saturation_value = number(
            &file,
            &[
                &format!("{DETECTOR}/saturation_value"),
                &format!("{DETECTOR}/detectorSpecific/saturation_value"),
                &format!("{DETECTOR}/detectorSpecific/countrate_correction_count_cutoff"),
            ],
        )
        .map(|v| v as u64);
        let pixel_size = match (length(&file, "x_pixel_size"), length(&file, "y_pixel_size")) {
            (Some(x), Some(y)) => Some((x, y)),
            _ => None,
        };
        Ok(Master {
            file,
            parts,
            frames,
            shape,
            dtype,
            mask,
            bit_depth,
            saturation_value,
            pixel_size,
        })
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// (ny, nx): slow, fast.
    pub fn shape(&self) -> [u64; 2] {
        self.shape
    }

    pub fn dtype(&self) -> &Datatype {
        &self.dtype
    }

    /// The NXmx pixel mask (bit 0 gap, 1 dead, ...), `ny * nx` values, if the file has one.
    pub fn mask(&self) -> Option<&[u32]> {
        self.mask.as_deref()
    }

    /// The dataset and frame index within it that hold frame `i` (0-based).
    pub fn locate(&self, i: u64) -> Result<(&Dataset, u64)> {
        if i >= self.frames {
            return Err(Error::Request {
                path: self.file.path().to_path_buf(),
                dataset: "frame stack".into(),
                what: format!(
                    "frame {i} is out of range: the stack has {} frames",
                    self.frames
                ),
            });
        }
        let k = self.parts.partition_point(|(first, _, _)| *first <= i) - 1;
        let (first, _, part) = &self.parts[k];
        match part {
            Part::Data(d) => Ok((d, i - first)),
            Part::Missing { link, why } => Err(Error::NotFound {
                path: self.file.path().to_path_buf(),
                object: format!("frame {i}: {link}: {why}"),
            }),
        }
    }

    /// Reads frame `i` (0-based) into `out` (`ny * nx` values of the stored type).
    pub fn read_frame_into<T: Element>(&self, i: u64, out: &mut [T]) -> Result<()> {
        let (d, local) = self.locate(i)?;
        d.read_frame_into(local, out)
    }

    /// Reads frame `i` like [`Master::read_frame_into`], handing it to `part(byte offset,
    /// bytes)` piece by piece while each piece is still in cache, so that a caller converts
    /// pixels without a second pass over the frame. A frame stored as one chunk through one
    /// detector codec (what EIGER and NXmx writers do) comes block by block, anything else
    /// whole. The pieces are whole elements in native byte order, come in order and cover `out`.
    /// A VDS frame is followed to the source frame that is it, so it takes the same path.
    pub fn read_frame_with<T: Element>(
        &self,
        i: u64,
        out: &mut [T],
        mut part: impl FnMut(usize, &mut [u8]),
    ) -> Result<()> {
        let (mut d, mut local) = self.locate(i)?;
        let [ny, nx] = self.shape;
        let stored = match self.dtype {
            Datatype::Int { size, signed, .. } => Kind::Int(size, signed) == T::KIND,
            _ => false,
        };
        if !stored || out.len() as u64 != ny * nx {
            return Err(d.request(format_args!(
                "frame {i}: read as {} x {}, the frames are {ny} x {nx} of {}",
                out.len(),
                std::any::type_name::<T>(),
                self.dtype.numpy()
            )));
        }
        // A few levels, for a VDS of VDS.
        for _ in 0..4 {
            if d.storage() != Storage::Virtual {
                break;
            }
            match d.frame_source(local)? {
                Some(source) => (d, local) = source,
                // Assembled from several sources or from fill: the general read.
                None => break,
            }
        }
        if let Some((codec, chunk)) = frame_chunk(d, local, self.shape)? {
            return codec
                .decode_with(chunk, bytemuck::cast_slice_mut(out), part)
                .map_err(|e| Error::Chunk {
                    path: d.file().path().to_path_buf(),
                    dataset: d.name().to_string(),
                    chunk: vec![local, 0, 0],
                    source: Box::new(ChunkError::Codec(e)),
                });
        }
        d.read_frame_into(local, out)?;
        part(0, bytemuck::cast_slice_mut(out));
        Ok(())
    }
}

/// Frame `local` of `d` as one stored chunk and the codec that decodes it straight to the
/// frame's bytes, when it is stored that way.
fn frame_chunk(d: &Dataset, local: u64, [ny, nx]: [u64; 2]) -> Result<Option<(Codec, &[u8])>> {
    let elem = match *d.dtype() {
        // Little-endian, as detectors write: the decoded bytes are the values.
        Datatype::Int {
            size, big_endian, ..
        } if size == 1 || big_endian == cfg!(target_endian = "big") => size,
        _ => return Ok(None),
    };
    if d.storage() != Storage::Chunked
        || d.shape().get(1..) != Some(&[ny, nx][..])
        || d.chunks() != Some(&[1, ny, nx][..])
    {
        return Ok(None);
    }
    let [filter] = d.filters() else {
        return Ok(None);
    };
    let Ok(codec) = Codec::from_filter(u32::from(filter.id), &filter.cd_values, elem) else {
        return Ok(None);
    };
    match d.read_raw_chunk(&[local, 0, 0])? {
        Some((chunk, 0)) => Ok(Some((codec, chunk))),
        // Not written (fill value) or stored unfiltered: the general read knows.
        _ => Ok(None),
    }
}

fn not_found(file: &File, what: &str) -> Error {
    Error::NotFound {
        path: file.path().to_path_buf(),
        object: what.to_string(),
    }
}

fn frame_stack(file: &File) -> Result<Vec<(u64, u64, Part)>> {
    if let Ok(Node::Dataset(d)) = file.get("/entry/data/data") {
        let n = d.shape().first().copied().unwrap_or(0);
        return Ok(vec![(0, n, Part::Data(d))]);
    }
    let data = file.group("/entry/data")?;
    let mut links: Vec<(u64, String, Link)> = data
        .links()?
        .into_iter()
        .filter_map(|(name, link)| {
            let num = name.strip_prefix("data_")?.parse::<u64>().ok()?;
            Some((num, name, link))
        })
        .collect();
    if !links.is_empty() {
        links.sort_by_key(|(n, _, _)| *n);
        let mut parts = Vec::new();
        let mut next = 0u64;
        let mut per_file = None;
        for (_, name, link) in links {
            let mut hops = 0;
            let part = match data.follow(&name, &link, &mut hops) {
                Ok(Node::Dataset(d)) => Part::Data(d),
                Ok(Node::Group(_)) => Part::Missing {
                    link: name.clone(),
                    why: "is a group".into(),
                },
                Err(e) => Part::Missing {
                    link: name.clone(),
                    why: e.to_string(),
                },
            };
            let n = match &part {
                Part::Data(d) => {
                    let n = d.shape().first().copied().unwrap_or(0);
                    per_file.get_or_insert(n);
                    n
                }
                // A missing data file still takes its place in the numbering.
                Part::Missing { .. } => per_file.unwrap_or(0),
            };
            parts.push((next, n, part));
            // Saturating: a data file that lies about its frame count cannot wrap the numbering.
            next = next.saturating_add(n);
        }
        return Ok(parts);
    }
    if let Some(signal) = data
        .attr("signal")?
        .and_then(|v| v.as_str().map(str::to_string))
    {
        let d = file.dataset(&format!("/entry/data/{signal}"))?;
        let n = d.shape().first().copied().unwrap_or(0);
        return Ok(vec![(0, n, Part::Data(d))]);
    }
    Err(not_found(
        file,
        "a frame stack (/entry/data/data, data_NNNNNN links or an NXdata signal)",
    ))
}

/// The pixel mask as u32, wherever the writer put it.
fn read_mask(file: &File, shape: [u64; 2]) -> Result<Option<Vec<u32>>> {
    for p in [
        format!("{DETECTOR}/pixel_mask"),
        format!("{DETECTOR}/detectorSpecific/pixel_mask"),
    ] {
        let Ok(Node::Dataset(d)) = file.get(&p) else {
            continue;
        };
        if d.shape() != shape {
            return Err(d.request(format_args!(
                "pixel mask of {:?} for frames of {shape:?}",
                d.shape()
            )));
        }
        let Datatype::Int { size, .. } = *d.dtype() else {
            return Err(d.request("pixel mask is not integer"));
        };
        if size == 4 {
            // The common case (EIGER masks are uint32): read straight into the result.
            let n = shape[0].saturating_mul(shape[1]);
            if n > MAX_MASK_PIXELS {
                return Err(d.request(format_args!("a pixel mask of {n} pixels")));
            }
            // Zeroed by the allocator (fresh pages), not by a pass of ours: first-touching 64 MB
            // is most of the cost of opening a 16M master.
            let mut mask = vec![0u32; n as usize];
            d.read_box(&[0, 0], &shape, bytemuck::cast_slice_mut(&mut mask))?;
            d.to_native(bytemuck::cast_slice_mut(&mut mask));
            return Ok(Some(mask));
        }
        let mut bytes = d.read_bytes()?;
        d.to_native(&mut bytes);
        let mask: Vec<u32> = match size {
            1 => bytes.iter().map(|&b| b as u32).collect(),
            2 => bytes
                .chunks_exact(2)
                .map(|b| u16::from_ne_bytes([b[0], b[1]]) as u32)
                .collect(),
            8 => bytes
                .chunks_exact(8)
                .map(|b| u64::from_ne_bytes(b.try_into().expect("8 bytes")) as u32)
                .collect(),
            _ => return Err(d.request("pixel mask element size")),
        };
        return Ok(Some(mask));
    }
    Ok(None)
}

/// The first of `paths` that holds a number.
fn number(file: &File, paths: &[&str]) -> Option<f64> {
    paths
        .iter()
        .find_map(|p| file.dataset(p).ok()?.read_value().ok()?.as_f64())
}

/// A detector length in metres, honouring its `units` attribute.
fn length(file: &File, name: &str) -> Option<f64> {
    let d = file.dataset(&format!("{DETECTOR}/{name}")).ok()?;
    let v = d.read_value().ok()?.as_f64()?;
    let units = d
        .attr("units")
        .ok()
        .flatten()
        .and_then(|u| u.as_str().map(str::to_string));
    let scale = match units.as_deref().map(str::trim) {
        None | Some("m") | Some("meter") | Some("metre") | Some("meters") | Some("metres") => 1.0,
        Some("mm") => 1e-3,
        Some("um") | Some("µm") | Some("micron") | Some("microns") => 1e-6,
        Some(_) => return None,
    };
    Some(v * scale)
}
