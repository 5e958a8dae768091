//! Adjusts the `server` image from the build environment and declares a debug image on top of it.
//!
//! A build script runs before its crate compiles, so it cannot package its own binary: it only declares, and
//! `cargo hive` packages.

fn main() {
    // Cargo sets TARGET and PROFILE for every build script.
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    let profile = std::env::var("PROFILE").expect("cargo sets PROFILE");
    // A fully static (musl) binary needs no libc from its base.
    let base = if target.ends_with("-musl") {
        "scratch"
    } else {
        "localhost:5000/hive/glibc"
    };

    hive_build::images()
        .modify("server", |image| {
            image
                .base(base)
                .env("SERVER_BUILD_PROFILE", profile.as_str())
                .label(
                    "org.example.rust-target-family",
                    if target.contains("linux") {
                        "linux"
                    } else {
                        "other"
                    },
                )
        })
        .declare(
            hive_build::Image::new("server-debug")
                .bin("server")
                .base("hive:server")
                .env("RUST_LOG", "debug")
                .cmd(["--verbose"])
                .tag("{version}-debug"),
        )
        .emit();
    println!("cargo::rerun-if-changed=build.rs");
}
