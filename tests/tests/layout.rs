//! The layering that Cargo enforces, held to what the README's Layout says: the sans-IO
//! crates depend on nothing that does IO — no async runtime, no logging, no wasm runtime —
//! not even through another crate.

use std::process::Command;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Every crate `package` depends on (normal dependencies, transitively), by name.
fn dependencies(package: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(ROOT)
        .args(["tree", "--locked", "-p", package, "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "cargo tree -p {package}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect()
}

#[test]
fn the_sans_io_crates_depend_on_nothing_that_does_io() {
    for package in ["wasmail-proto", "wasmail-mime"] {
        let deps = dependencies(package);
        assert!(deps.iter().any(|d| d == package), "{package} not found: {deps:?}");
        for banned in ["tokio", "tracing", "wasmtime", "rustls", "hickory-resolver", "wasmail"] {
            assert!(!deps.iter().any(|d| d == banned), "{package} depends on {banned}: {deps:?}");
        }
    }
}
