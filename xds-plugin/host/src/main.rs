//! `hdrmx-xds-host`: the program is `host.c`, a C host that loads `libhdrmx_xds.so` as XDS does.
//! Cargo builds it (through `build.rs` and the cc crate) so that tests and benchmarks find it
//! next to the plugin in `target/<profile>/`. No Rust runs: `main` is the C one.
#![no_main]
