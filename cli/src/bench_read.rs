//! `hdrmx bench read`: how fast neggia-rs opens a master file and reads its frames, on one
//! thread and on several. The reference half (h5py + hdf5plugin on the same files) is
//! `tests/python/bench_read.py`; `cargo xtask bench read` runs both.
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use hdrmx_core::codec::transpose::Kernel;
use neggia::nxmx::Master;
use neggia::{Datatype, Element};
use serde::Serialize;

use crate::cli::BenchReadArgs;

/// A pixel type the benchmark reads.
trait Pixel: Element + Send + Into<i64> {}
impl<T: Element + Send + Into<i64>> Pixel for T {}

#[derive(Serialize)]
struct Report {
    master: String,
    frames: u64,
    shape: [u64; 2],
    dtype: String,
    mask: bool,
    kernel: &'static str,
    /// Seconds per timed open of the master (after one untimed open).
    open_seconds: Vec<f64>,
    open_ms: f64,
    /// Seconds per timed pass over every frame, one thread, one buffer.
    read_1t_seconds: Vec<f64>,
    read_1t_ms_per_frame: f64,
    threads: usize,
    /// The same with `threads` threads, frames handed out one at a time; absent for 1 thread.
    read_nt_seconds: Option<Vec<f64>>,
    read_nt_ms_per_frame: Option<f64>,
    /// Per-frame time on one thread over that on `threads` threads.
    speedup: Option<f64>,
    /// Sum of each frame's pixels, from the warm-up pass (the reference computes the same).
    frame_sums: Vec<i64>,
}

fn best(seconds: &[f64]) -> f64 {
    seconds.iter().copied().fold(f64::INFINITY, f64::min)
}

fn open(path: &Path) -> Result<Master> {
    Master::open(path).with_context(|| format!("opening {}", path.display()))
}

pub fn read(args: &BenchReadArgs) -> Result<()> {
    ensure!(args.threads >= 1, "--threads must be at least 1");
    ensure!(args.passes >= 1, "--passes must be at least 1");
    ensure!(args.opens >= 1, "--opens must be at least 1");
    // The first open is not timed: it brings the master (and the data files a links master
    // opens) into the page cache.
    let master = open(&args.master)?;
    let Datatype::Int { size, signed, .. } = *master.dtype() else {
        bail!(
            "frames of type {}, expected integers",
            master.dtype().numpy()
        );
    };
    let dtype = format!("{}int{}", if signed { "" } else { "u" }, size * 8);
    match (size, signed) {
        (1, false) => run::<u8>(&master, &dtype, args),
        (2, false) => run::<u16>(&master, &dtype, args),
        (4, false) => run::<u32>(&master, &dtype, args),
        (1, true) => run::<i8>(&master, &dtype, args),
        (2, true) => run::<i16>(&master, &dtype, args),
        (4, true) => run::<i32>(&master, &dtype, args),
        _ => bail!(
            "frames of type {}: not a detector pixel type",
            master.dtype().numpy()
        ),
    }
}

fn run<T: Pixel>(master: &Master, dtype: &str, args: &BenchReadArgs) -> Result<()> {
    let [ny, nx] = master.shape();
    let len = usize::try_from(ny * nx).context("frame size")?;
    if !args.dump_frames.is_empty() {
        let out = args.dump_out.as_deref().expect("clap requires --dump-out");
        return dump::<T>(master, len, &args.dump_frames, out);
    }
    let n = master.frames();
    ensure!(n > 0, "{}: no frames", args.master.display());

    let mut open_seconds = Vec::new();
    for _ in 0..args.opens {
        let t = Instant::now();
        let m = open(&args.master)?;
        open_seconds.push(t.elapsed().as_secs_f64());
        drop(m);
    }

    // Warm-up: every frame once on each path (page cache, buffers faulted in), checking that the
    // threaded path reads what the single-threaded one does.
    let mut one = vec![T::zeroed(); len];
    let mut many: Vec<Vec<T>> = (0..args.threads).map(|_| vec![T::zeroed(); len]).collect();
    let mut frame_sums = vec![0i64; n as usize];
    single_pass(master, &mut one, |i, f| frame_sums[i as usize] = sum(f))?;
    if args.threads > 1 {
        let seen: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
        parallel_pass(master, &mut many, |i, f| {
            seen[i as usize].store(sum(f) as u64, Ordering::Relaxed)
        })?;
        for (i, (s, t)) in frame_sums.iter().zip(&seen).enumerate() {
            ensure!(
                *s as u64 == t.load(Ordering::Relaxed),
                "frame {i}: {} threads read other pixels than one thread",
                args.threads
            );
        }
    }

    // One-thread and threaded passes alternate, so that a disturbance hits both alike.
    let mut read_1t_seconds = Vec::new();
    let mut read_nt_seconds = Vec::new();
    for _ in 0..args.passes {
        let t = Instant::now();
        single_pass(master, &mut one, |_, _| {})?;
        read_1t_seconds.push(t.elapsed().as_secs_f64());
        if args.threads > 1 {
            let t = Instant::now();
            parallel_pass(master, &mut many, |_, _| {})?;
            read_nt_seconds.push(t.elapsed().as_secs_f64());
        }
    }
    let read_nt_seconds = (args.threads > 1).then_some(read_nt_seconds);

    let per_frame = |s: &[f64]| best(s) / n as f64 * 1e3;
    let read_1t_ms_per_frame = per_frame(&read_1t_seconds);
    let read_nt_ms_per_frame = read_nt_seconds.as_deref().map(per_frame);
    let report = Report {
        master: args.master.display().to_string(),
        frames: n,
        shape: [ny, nx],
        dtype: dtype.to_string(),
        mask: master.mask().is_some(),
        kernel: Kernel::best().name(),
        open_ms: best(&open_seconds) * 1e3,
        open_seconds,
        read_1t_ms_per_frame,
        read_1t_seconds,
        threads: args.threads,
        read_nt_ms_per_frame,
        speedup: read_nt_ms_per_frame.map(|t| read_1t_ms_per_frame / t),
        read_nt_seconds,
        frame_sums,
    };
    if args.json {
        outln!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report, len * size_of::<T>(), args)?;
    }
    Ok(())
}

fn print_table(r: &Report, frame_bytes: usize, args: &BenchReadArgs) -> Result<()> {
    let mbps = |ms: f64| frame_bytes as f64 / 1e6 / (ms / 1e3);
    outln!("hdrmx bench read: {}", r.master);
    outln!(
        "  {} frames of {} x {} {}, pixel mask {}, transpose kernel {}",
        r.frames,
        r.shape[1],
        r.shape[0],
        r.dtype,
        if r.mask { "read" } else { "absent" },
        r.kernel
    );
    outln!(
        "  open master (best of {:>2})      {:>8.2} ms",
        args.opens,
        r.open_ms
    );
    outln!(
        "  read, 1 thread (best of {:>2})   {:>8.2} ms/frame  {:>7.0} MB/s",
        args.passes,
        r.read_1t_ms_per_frame,
        mbps(r.read_1t_ms_per_frame)
    );
    if let (Some(ms), Some(x)) = (r.read_nt_ms_per_frame, r.speedup) {
        outln!(
            "  read, {} threads (best of {:>2})  {:>8.2} ms/frame  {:>7.0} MB/s  {x:.2}x one thread",
            r.threads,
            args.passes,
            ms,
            mbps(ms)
        );
    }
    Ok(())
}

fn sum<T: Pixel>(frame: &[T]) -> i64 {
    frame.iter().map(|&v| v.into()).sum()
}

/// Every frame in order into one buffer; `check` sees each.
fn single_pass<T: Pixel>(
    master: &Master,
    buf: &mut [T],
    mut check: impl FnMut(u64, &[T]),
) -> Result<()> {
    for i in 0..master.frames() {
        master.read_frame_into(i, buf)?;
        check(i, buf);
    }
    Ok(())
}

/// Every frame once, one thread per buffer, each taking the next unread frame.
fn parallel_pass<T: Pixel>(
    master: &Master,
    bufs: &mut [Vec<T>],
    check: impl Fn(u64, &[T]) + Sync,
) -> Result<()> {
    let next = AtomicU64::new(0);
    let n = master.frames();
    std::thread::scope(|s| {
        let workers: Vec<_> = bufs
            .iter_mut()
            .map(|buf| {
                let (next, check) = (&next, &check);
                s.spawn(move || -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return Ok(());
                        }
                        master.read_frame_into(i, buf)?;
                        check(i, buf);
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("reader thread panicked"))
    })
}

/// Writes the frames, in the order asked, as raw little-endian pixels one after another.
fn dump<T: Pixel>(master: &Master, len: usize, frames: &[u64], out: &Path) -> Result<()> {
    ensure!(
        cfg!(target_endian = "little"),
        "--dump-frame writes native bytes: little-endian hosts only"
    );
    let mut buf = vec![T::zeroed(); len];
    let mut bytes = Vec::with_capacity(frames.len() * len * size_of::<T>());
    for &i in frames {
        master.read_frame_into(i, &mut buf)?;
        bytes.extend_from_slice(bytemuck::cast_slice(&buf));
    }
    std::fs::write(out, bytes).with_context(|| format!("writing {}", out.display()))
}
