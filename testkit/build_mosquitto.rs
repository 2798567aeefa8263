//! Build script of the crates whose tests have a Mosquitto leg. It sets
//! `cfg(mosquitto)` when a `mosquitto` binary is on this machine, or when
//! `CI` is set (there a missing Mosquitto must fail the tests, not skip
//! them). The Mosquitto tests are marked ignored without it, so the test
//! output says `ignored, mosquitto not installed` instead of a silent `ok`.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(mosquitto)");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rerun-if-env-changed=CI");
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin".into(), "/usr/local/sbin".into()]);
    // Installing Mosquitto later changes these directories: look again then.
    for d in ["/usr/sbin", "/usr/local/sbin"] {
        if Path::new(d).is_dir() {
            println!("cargo::rerun-if-changed={d}");
        }
    }
    let found = dirs.iter().any(|d| d.join("mosquitto").is_file());
    if found || std::env::var_os("CI").is_some() {
        println!("cargo::rustc-cfg=mosquitto");
    }
}
