//! Cross-built binaries (packaging/build.sh) run under qemu-user beside a native node: list, download both ways, SIGTERM.

use std::path::{Path, PathBuf};

use hdp_e2e::{Hdp, Node, random_file, read_tree};

/// The cross-built binaries to run: `$HDP_CROSS_BINS`, paths separated by
/// spaces. scripts/test.sh builds the aarch64 and armv7 glibc and the
/// x86_64 and aarch64 musl ones and sets it.
fn cross_bins() -> Vec<PathBuf> {
    std::env::var("HDP_CROSS_BINS").unwrap_or_default().split_whitespace().map(PathBuf::from).collect()
}

/// How to run `bin` on this machine, from the CPU its ELF header names:
/// directly for x86_64, through qemu-user with the Debian cross sysroot
/// (packages libc6-arm64-cross, libc6-armhf-cross) for ARM. The sysroot only
/// matters for the glibc builds; the static musl ones ignore it.
fn runner(bin: &Path) -> Hdp {
    use std::io::Read;
    let mut head = [0u8; 20];
    std::fs::File::open(bin)
        .and_then(|mut f| f.read_exact(&mut head))
        .unwrap_or_else(|e| panic!("cannot read the ELF header of {}: {e}", bin.display()));
    assert!(head.starts_with(b"\x7fELF"), "{} is not an ELF binary", bin.display());
    let machine = u16::from_le_bytes([head[18], head[19]]);
    let wrapper: &[&str] = match machine {
        0x3e => &[],
        0xb7 => &["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"],
        0x28 => &["qemu-arm", "-L", "/usr/arm-linux-gnueabihf"],
        other => panic!("{}: no emulator known for ELF machine {other:#x}", bin.display()),
    };
    Hdp { program: bin.to_owned(), wrapper: wrapper.iter().map(|w| w.to_string()).collect() }
}

#[test]
fn cross_built_binaries_serve_and_download_beside_a_native_node() {
    let bins = cross_bins();
    if bins.is_empty() {
        // CI must never pass without running a cross build.
        assert!(std::env::var_os("CI").is_none(), "HDP_CROSS_BINS is unset: scripts/test.sh builds and sets it");
        eprintln!("SKIP: set HDP_CROSS_BINS to cross-built hdp binaries (scripts/test.sh does)");
        return;
    }
    for bin in bins {
        smoke(&bin);
    }
}

fn smoke(bin: &Path) {
    let hdp = runner(bin);
    let tmp = tempfile::tempdir().unwrap();
    let native_share = tmp.path().join("Native");
    std::fs::create_dir_all(native_share.join("Album")).unwrap();
    random_file(&native_share.join("Album/01 big.flac"), 3 << 20, 1);
    std::fs::write(native_share.join("Album/cover.txt"), "a cover").unwrap();
    std::fs::write(native_share.join("empty"), "").unwrap();
    let cross_share = tmp.path().join("Cross");
    std::fs::create_dir_all(&cross_share).unwrap();
    random_file(&cross_share.join("photo.jpg"), 1 << 20, 2);
    let (dl_native, dl_cross) = (tmp.path().join("dl-native"), tmp.path().join("dl-cross"));

    let topic = ["--topic", "cross-smoke"];
    let native = Node::start_in(
        &tmp.path().join("native"),
        &[&native_share],
        &[&topic[..], &["--download-dir", dl_native.to_str().unwrap()]].concat(),
    );
    let cross = Node::start_with(
        &hdp,
        &tmp.path().join("cross"),
        &[&cross_share],
        &[&topic[..], &["--download-dir", dl_cross.to_str().unwrap()]].concat(),
    );
    native.wait_scanned();
    cross.wait_scanned();
    let info = cross.cli_json(&["info"]);
    assert_eq!(info["version"], native.cli_json(&["info"])["version"], "{}", bin.display());

    // The cross-built node (CLI included) browses and downloads a folder.
    let native_name = cross.connect(&native);
    let listed = cross.cli_json(&["ls", &format!("{native_name}/Native"), "-r"]);
    assert_eq!(listed.as_array().unwrap().iter().filter(|e| e["kind"] == "file").count(), 3, "{listed}");
    let out = cross.cli_ok(&["download", &format!("{native_name}/Native"), "--wait"]);
    assert!(out.contains("done"), "{out}");
    assert_eq!(read_tree(&dl_cross.join("Native")), read_tree(&native_share), "{}", bin.display());

    // And it serves: the native node downloads from it over the same connection.
    let cross_name = info["name"].as_str().unwrap();
    let out = native.cli_ok(&["download", &format!("{cross_name}/Cross"), "--wait"]);
    assert!(out.contains("done"), "{out}");
    assert_eq!(read_tree(&dl_native.join("Cross")), read_tree(&cross_share), "{}", bin.display());

    // Both stop cleanly on SIGTERM (qemu-user hands the signal to the guest).
    cross.stop();
    native.stop();
}
