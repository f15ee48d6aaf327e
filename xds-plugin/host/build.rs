//! Compiles the C host (`host.c`) with the cc crate; the binary's `main` is the C one.
fn main() {
    println!("cargo:rerun-if-changed=host.c");
    cc::Build::new()
        .file("host.c")
        .flag_if_supported("-std=c11")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("xdshost");
    // dlopen and pthreads live in libc on glibc 2.34 and later, in their own libraries before.
    println!("cargo:rustc-link-lib=dl");
    println!("cargo:rustc-link-lib=pthread");
}
