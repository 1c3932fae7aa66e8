//! Release builds of `mcpctl` link the functions a running daemon uses first, in the
//! order of `bench/daemon-layout.txt` (hottest first; `bench/daemon-layout.sh` writes
//! it): the code an idle daemon has touched then sits in about 1.5 MiB instead of being
//! spread over the whole binary, so fewer of its pages are resident. The names in the
//! list are those of `bench/build-release.sh`'s build (they depend on the target);
//! other builds find few of them, which costs nothing but the gain.
// Cargo reads a build script's stdout.
#![allow(clippy::print_stderr, clippy::print_stdout)]

fn main() {
    println!("cargo::rerun-if-changed=bench/daemon-layout.txt");
    println!("cargo::rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let env = |name: &str| std::env::var(name).unwrap_or_default();
    // The ordering flag is rust-lld's (the default linker of this target); a build
    // that picks its own linker (in RUSTFLAGS, or `linker` in .cargo/config.toml, which
    // Cargo passes as RUSTC_LINKER) keeps the linker's own order.
    let default_linker = env("TARGET") == "x86_64-unknown-linux-gnu"
        && env("RUSTC_LINKER").is_empty()
        && !env("CARGO_ENCODED_RUSTFLAGS").contains("link");
    let layout = std::path::Path::new(&env("CARGO_MANIFEST_DIR")).join("bench/daemon-layout.txt");
    if env("PROFILE") == "release" && default_linker && layout.is_file() {
        println!(
            "cargo::rustc-link-arg-bin=mcpctl=-Wl,--symbol-ordering-file={}",
            layout.display()
        );
        // Functions renamed since the list was written are simply placed as usual.
        println!("cargo::rustc-link-arg-bin=mcpctl=-Wl,--no-warn-symbol-ordering");
    }
}
