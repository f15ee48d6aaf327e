//! The command-line definition, in one place.
use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};
use hdrmx_core::codec::{Bitshuffle, Codec, Compression, Lz4, Zstd};

#[derive(Parser, Debug)]
#[command(
    name = "hdrmx",
    version,
    about = "Fast codecs, reduction and peak search for EIGER-class detector data"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Encode or decode single HDF5 chunks (raw little-endian elements <-> filter bytes).
    #[command(subcommand)]
    Chunk(ChunkCommand),
    /// Measure the codecs on simulated EIGER2 frames, or reading a master file.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Simulate frames, round-trip them through every codec and print sizes and speeds.
    Demo(DemoArgs),
    /// Find Bragg peaks in a master's frames (or simulated ones): hits, peaks, a drawing.
    Spots(crate::spots::SpotsArgs),
    /// Write a gold-standard NXmx dataset (master + data files) of simulated frames, with the
    /// simulator's ground truth as JSON.
    Simulate(crate::simulate::SimulateArgs),
    /// Re-chunk and recompress a dataset (one frame per chunk) into a new master + data files.
    Convert(crate::convert::ConvertArgs),
    /// Bin N x N pixels into one (uint32 sums, mask-aware) and write the binned dataset with
    /// its geometry (pixel size x N, beam centre / N).
    Bin(crate::reduce::BinArgs),
    /// Sum every K consecutive frames into one (uint32) and write the summed dataset (count
    /// time and omega step x K).
    Sum(crate::reduce::SumArgs),
    /// Cut a rectangle out of every frame and write it with its geometry (beam centre moved).
    Roi(crate::reduce::RoiArgs),
    /// Recompress a dataset with the noise-bounded lossy filter (311); q=0 is lossless.
    Compress(crate::reduce::CompressArgs),
}

#[derive(Subcommand, Debug)]
pub enum ChunkCommand {
    /// Raw elements in, the chunk bytes HDF5 stores out.
    Encode {
        #[command(flatten)]
        codec: CodecArgs,
        input: PathBuf,
        output: PathBuf,
    },
    /// Chunk bytes in, raw elements out.
    Decode {
        #[command(flatten)]
        codec: CodecArgs,
        /// The chunk's uncompressed size in bytes (default: from the chunk header).
        #[arg(long)]
        size: Option<usize>,
        input: PathBuf,
        output: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Encode and decode speed and size of every codec, one thread.
    Codecs(BenchArgs),
    /// Only write the benchmark frames (`NAME.raw` + `NAME.json`), for other programs to measure.
    Frames {
        #[arg(long)]
        out: PathBuf,
        /// Only the smaller frame (2068 x 2162 uint16).
        #[arg(long)]
        quick: bool,
    },
    /// Open a master file and read every frame through neggia-rs (pure Rust, no libhdf5), on one
    /// thread and on several.
    Read(BenchReadArgs),
    /// What binning and lossy compression buy on simulated uint32 frames: sizes, speeds,
    /// binning time against a memory-bandwidth reference, spot-intensity bias.
    Reduce(BenchReduceArgs),
}

#[derive(Args, Debug)]
pub struct BenchReduceArgs {
    /// Only the 4M frame.
    #[arg(long)]
    pub quick: bool,
    /// Seconds to spend on each measurement (at least 3 runs).
    #[arg(long, default_value_t = 0.5)]
    pub seconds: f64,
    /// Also write the results as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct BenchReadArgs {
    /// The master file (`*_master.h5`, `.nxs`, or the `name_??????.h5` template).
    #[arg(long)]
    pub master: PathBuf,
    /// Threads of the parallel pass; each has its own buffer and takes the next unread frame.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Timed passes over every frame after one warm-up pass; the best counts.
    #[arg(long, default_value_t = 3)]
    pub passes: usize,
    /// Timed opens of the master (pixel mask included) after one untimed; the best counts.
    #[arg(long, default_value_t = 5)]
    pub opens: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Measure nothing: write these frames (0-based, repeatable) to --dump-out as raw
    /// little-endian pixels, one after another.
    #[arg(long = "dump-frame", requires = "dump_out")]
    pub dump_frames: Vec<u64>,
    #[arg(long, requires = "dump_frames")]
    pub dump_out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Also write the frames here (`NAME.raw` + `NAME.json`) so another program can be measured
    /// on exactly the same data.
    #[arg(long)]
    pub frames_dir: Option<PathBuf>,
    /// Write the results as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Seconds to spend on each measurement (at least 3 runs).
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
    /// Only the smaller frame (2068 x 2162 uint16).
    #[arg(long)]
    pub quick: bool,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// eiger2-1m, eiger2-4m, eiger2-9m or eiger2-16m.
    #[arg(long, default_value = "eiger2-4m")]
    pub detector: String,
    /// Frames to simulate.
    #[arg(long, default_value_t = 4)]
    pub frames: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CodecName {
    /// Filter 32008, bitshuffle + LZ4.
    Bslz4,
    /// Filter 32008, bitshuffle + zstd.
    Bszstd,
    /// Filter 32008, bitshuffle only.
    Bitshuffle,
    /// Filter 32004, LZ4 blocks.
    Lz4,
    /// Filter 32015, zstd.
    Zstd,
}

#[derive(Args, Debug)]
pub struct CodecArgs {
    #[arg(long, value_enum)]
    pub codec: CodecName,
    /// Bytes per element (bitshuffle codecs).
    #[arg(long, default_value_t = 1)]
    pub elem_size: usize,
    /// Block size: elements for bitshuffle, bytes for lz4; 0 = default.
    #[arg(long, default_value_t = 0)]
    pub block_size: usize,
    /// zstd compression level.
    #[arg(long, default_value_t = 3)]
    pub level: i32,
}

impl CodecArgs {
    pub fn codec(&self) -> Result<Codec> {
        let bitshuffle = |c| -> Result<Codec> {
            Ok(Codec::Bitshuffle(
                Bitshuffle::new(self.elem_size, c)?.with_block_size(self.block_size)?,
            ))
        };
        Ok(match self.codec {
            CodecName::Bslz4 => bitshuffle(Compression::Lz4)?,
            CodecName::Bszstd => bitshuffle(Compression::Zstd { level: self.level })?,
            CodecName::Bitshuffle => bitshuffle(Compression::None)?,
            CodecName::Lz4 => Codec::Lz4(Lz4::new(self.block_size)?),
            CodecName::Zstd => Codec::Zstd(Zstd::new(self.level)),
        })
    }
}

pub fn run(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> Result<()> {
    let cli = Cli::parse_from(args);
    match cli.command {
        Command::Chunk(cmd) => crate::chunk::run(cmd),
        Command::Bench(BenchCommand::Codecs(args)) => crate::bench::codecs(&args),
        Command::Bench(BenchCommand::Frames { out, quick }) => crate::bench::frames(&out, quick),
        Command::Bench(BenchCommand::Read(args)) => crate::bench_read::read(&args),
        Command::Bench(BenchCommand::Reduce(args)) => crate::bench_reduce::reduce(&args),
        Command::Demo(args) => crate::bench::demo(&args),
        Command::Spots(args) => crate::spots::spots(&args),
        Command::Simulate(args) => crate::simulate::simulate(&args),
        Command::Convert(args) => crate::convert::convert(&args),
        Command::Bin(args) => crate::reduce::bin(&args),
        Command::Sum(args) => crate::reduce::sum(&args),
        Command::Roi(args) => crate::reduce::roi(&args),
        Command::Compress(args) => crate::reduce::compress(&args),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
