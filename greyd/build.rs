//! Builds the eBPF programs (greyd-ebpf's `programs`) for bpfel-unknown-none
//! with the nightly toolchain and bpf-linker, so greyd can embed them. When
//! the toolchain is missing greyd is built without `--firewall ebpf` and the
//! build says how to get it; no other mode needs it.

use std::process::Command;

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// bpf-linker, and a nightly toolchain with rust-src for `-Z build-std=core`.
fn toolchain_missing() -> Option<&'static str> {
    if !succeeds("bpf-linker", &["--version"]) {
        return Some("bpf-linker is not installed");
    }
    let sysroot = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output();
    match sysroot {
        Ok(o) if o.status.success() => {
            let root = String::from_utf8_lossy(&o.stdout).trim().to_string();
            let src = std::path::Path::new(&root).join("lib/rustlib/src/rust/library/core");
            (!src.exists()).then_some("the nightly toolchain has no rust-src component")
        }
        _ => Some("there is no nightly toolchain"),
    }
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(greyd_ebpf)");
    println!("cargo:rerun-if-env-changed=GREYD_NO_EBPF");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") || std::env::var_os("GREYD_NO_EBPF").is_some() {
        return;
    }
    if let Some(why) = toolchain_missing() {
        // Look again once bpf-linker appears (a missing path makes cargo rerun this script every build).
        if let Some(home) = std::env::var_os("CARGO_HOME")
            .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo").into()))
        {
            println!(
                "cargo:rerun-if-changed={}",
                std::path::Path::new(&home).join("bin/bpf-linker").display()
            );
        }
        println!(
            "cargo:warning=greyd is built without --firewall ebpf: {why}; `cargo xtask deps` installs the eBPF toolchain"
        );
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../greyd-ebpf");
    let root = root.to_str().expect("UTF-8 path");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "greyd-ebpf",
            root_dir: root,
            features: &["programs"],
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .expect("building the eBPF programs (set GREYD_NO_EBPF=1 to build greyd without them)");
    println!("cargo:rustc-cfg=greyd_ebpf");
}
