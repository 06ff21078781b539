//! Gives libpsm.so its SONAME and generates the C header with cbindgen.
//!
//! The header is written to `target/<profile>/include/psm.h`; `make header`
//! copies it to `include/psm.h` (committed) and `make test` fails when the two
//! differ, so the committed header always matches the code.

use std::path::PathBuf;

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libpsm.so.0");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");

    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // OUT_DIR is target/<profile>/build/psm-<hash>/out.
    let profile_dir = out_dir.ancestors().nth(3).expect("OUT_DIR has the cargo layout").to_path_buf();
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen failed to generate psm.h");
    let include = profile_dir.join("include");
    std::fs::create_dir_all(&include).unwrap();
    bindings.write_to_file(include.join("psm.h"));
}
