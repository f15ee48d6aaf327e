//! `hdrmx chunk`: one chunk at a time, for inspecting files and for testing against other
//! implementations.
use anyhow::{bail, Context, Result};
use hdrmx_core::codec::Codec;

use crate::cli::ChunkCommand;

pub fn run(cmd: ChunkCommand) -> Result<()> {
    match cmd {
        ChunkCommand::Encode {
            codec,
            input,
            output,
        } => {
            let raw =
                std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
            let chunk = codec.codec()?.encode(&raw)?;
            std::fs::write(&output, chunk).with_context(|| format!("writing {}", output.display()))
        }
        ChunkCommand::Decode {
            codec,
            size,
            input,
            output,
        } => {
            let chunk =
                std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
            let codec = codec.codec()?;
            let size = match size {
                Some(size) => size,
                None => header_size(&codec, &chunk)?,
            };
            let mut out = vec![0u8; size];
            codec
                .decode(&chunk, &mut out)
                .with_context(|| format!("decoding {}", input.display()))?;
            std::fs::write(&output, out).with_context(|| format!("writing {}", output.display()))
        }
    }
}

/// The size a chunk declares, accepted up to 4 GiB so that a lying header cannot make us
/// allocate without limit.
fn header_size(codec: &Codec, chunk: &[u8]) -> Result<usize> {
    let Some(declared) = codec.decoded_len(chunk)? else {
        bail!("the chunk does not declare its size: pass --size")
    };
    const LIMIT: u64 = 1 << 32;
    if declared > LIMIT {
        bail!("the chunk claims {declared} bytes; pass --size if that is right");
    }
    Ok(declared as usize)
}
