//! Builds the web UI into `$OUT_DIR/dist`, which `src/http/ui.rs` embeds.
//!
//! Three ways in:
//! - `HDP_UI_DIST=/path/to/dist`: copy a prebuilt UI (cross builds, packaging).
//! - a fuzzing build (`--cfg fuzzing`, set by cargo-fuzz for tests/fuzz/):
//!   one page saying so, since fuzz targets never serve the UI and the
//!   nested wasm build would only slow them down.
//! - otherwise a nested `cargo build` of `web-ui` for `wasm32-unknown-unknown`
//!   with its own target dir (so it never waits on the outer build's lock),
//!   then `wasm-bindgen-cli-support` writes the JS glue next to the wasm.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, exit};

const WASM_TARGET: &str = "wasm32-unknown-unknown";
const UI_PROFILE: &str = "wasm-release";
const OUT_NAME: &str = "hdp_web_ui";

fn main() {
    println!("cargo:rerun-if-env-changed=HDP_UI_DIST");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dist = out_dir.join("dist");
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.parent().expect("node/ lives in the workspace").to_path_buf();

    if let Some(prebuilt) = env::var_os("HDP_UI_DIST") {
        let prebuilt = PathBuf::from(prebuilt);
        println!("cargo:rerun-if-changed={}", prebuilt.display());
        if !prebuilt.join("index.html").is_file() && !prebuilt.join("index.html.gz").is_file() {
            fail(&format!(
                "HDP_UI_DIST={} has no index.html(.gz): point it at a built UI directory, or unset it to build the UI here",
                prebuilt.display()
            ));
        }
        replace_dir(&dist);
        copy_dir(&prebuilt, &dist);
        precompress(&dist);
        return;
    }

    if env::var_os("CARGO_CFG_FUZZING").is_some() {
        replace_dir(&dist);
        fs::write(dist.join("index.html"), "<!doctype html><title>hdp</title><p>A fuzzing build has no web UI.</p>\n")
            .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", dist.display())));
        return;
    }

    let ui = workspace.join("web-ui");
    for p in ["src", "Cargo.toml", "index.html", "style.css"] {
        println!("cargo:rerun-if-changed={}", ui.join(p).display());
    }
    println!("cargo:rerun-if-changed={}", workspace.join("proto/src").display());
    println!("cargo:rerun-if-changed={}", workspace.join("Cargo.lock").display());
    println!("cargo:rerun-if-changed={}", workspace.join("Cargo.toml").display());

    check_wasm_target();

    let target_dir = nested_target_dir(&out_dir);
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace)
        .args(["build", "-p", "hdp-web-ui", "--lib", "--target", WASM_TARGET, "--profile", UI_PROFILE])
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's flags, target and wrappers (clippy, sccache) are for the
    // host binary; none of them belongs to the wasm build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "CARGO_PROFILE_RELEASE_LTO",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().unwrap_or_else(|e| fail(&format!("could not run cargo for the web UI: {e}")));
    if !status.success() {
        fail("building the web UI (web-ui/) for wasm32 failed; the compiler's messages are above");
    }

    let wasm = target_dir.join(WASM_TARGET).join(UI_PROFILE).join(format!("{OUT_NAME}.wasm"));
    replace_dir(&dist);
    let mut bindgen = wasm_bindgen_cli_support::Bindgen::new();
    // The name section (function names for stack traces) is over half of the
    // module; browsers do not need it to run the UI.
    bindgen
        .input_path(&wasm)
        .out_name(OUT_NAME)
        .typescript(false)
        .remove_name_section(true)
        .remove_producers_section(true);
    if let Err(e) = bindgen.web(true) {
        fail(&format!("wasm-bindgen: {e}"));
    }
    if let Err(e) = bindgen.generate(&dist) {
        fail(&format!("wasm-bindgen could not process {}: {e}", wasm.display()));
    }
    for f in ["index.html", "style.css"] {
        if let Err(e) = fs::copy(ui.join(f), dist.join(f)) {
            fail(&format!("copying web-ui/{f}: {e}"));
        }
    }
    precompress(&dist);
}

/// Replaces every compressible file of `dist` with a gzip copy `NAME.gz`:
/// a phone gets a third of the bytes without the node compressing at run
/// time, and the binary carries each file once (the node unpacks it for
/// the rare client that refuses gzip). Files already packed are left alone.
fn precompress(dist: &Path) {
    use std::io::Write;
    let entries = fs::read_dir(dist).unwrap_or_else(|e| fail(&format!("reading {}: {e}", dist.display())));
    for entry in entries.flatten() {
        let path = entry.path();
        let compressible = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "wasm" | "js" | "css" | "html" | "svg" | "json"));
        if !compressible || !path.is_file() {
            continue;
        }
        let data = fs::read(&path).unwrap_or_else(|e| fail(&format!("reading {}: {e}", path.display())));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let packed = gz.write_all(&data).and_then(|()| gz.finish());
        let mut name = path.clone().into_os_string();
        name.push(".gz");
        match packed.and_then(|bytes| fs::write(&name, bytes)).and_then(|()| fs::remove_file(&path)) {
            Ok(()) => {}
            Err(e) => fail(&format!("compressing {}: {e}", path.display())),
        }
    }
}

/// The outer target dir (marked by cargo's CACHEDIR.TAG) plus `ui-wasm`, so the
/// UI build is shared by debug, release and clippy runs and stays incremental.
fn nested_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|p| p.join("CACHEDIR.TAG").is_file())
        .map(|t| t.join("ui-wasm"))
        .unwrap_or_else(|| out_dir.join("ui-wasm"))
}

fn check_wasm_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc).args(["--print", "target-libdir", "--target", WASM_TARGET]).output();
    let installed = match out {
        Ok(o) if o.status.success() => {
            let dir = String::from_utf8_lossy(&o.stdout).trim().to_string();
            Path::new(&dir).is_dir()
        }
        _ => false,
    };
    if !installed {
        fail(
            "the web UI needs Rust's wasm32 target, which is not installed.\n\
             Run:  rustup target add wasm32-unknown-unknown\n\
             (or set HDP_UI_DIST to a prebuilt UI directory)",
        );
    }
}

fn replace_dir(dir: &Path) {
    if dir.exists()
        && let Err(e) = fs::remove_dir_all(dir)
    {
        fail(&format!("removing {}: {e}", dir.display()));
    }
    if let Err(e) = fs::create_dir_all(dir) {
        fail(&format!("creating {}: {e}", dir.display()));
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let entries = fs::read_dir(from).unwrap_or_else(|e| fail(&format!("reading {}: {e}", from.display())));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| fail(&format!("reading {}: {e}", from.display())));
        let path = entry.path();
        let dest = to.join(entry.file_name());
        if path.is_dir() {
            fs::create_dir_all(&dest).unwrap_or_else(|e| fail(&format!("creating {}: {e}", dest.display())));
            copy_dir(&path, &dest);
        } else if let Err(e) = fs::copy(&path, &dest) {
            fail(&format!("copying {}: {e}", path.display()));
        }
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    exit(1)
}
