//! `cargo hive build --release --load` against `cargo build --release && docker buildx bake --load` on the same
//! daemon, for a generated workspace of 20 binary crates: cold (BuildKit cache pruned, images removed from Docker),
//! nothing changed, nothing changed without cargo hive's records (a fresh CI checkout), one binary changed; median
//! of several runs; plus the bytes our session sent. Prints a markdown table, and the median of
//! each phase cargo hive's `--progress json` reports, per scenario; then the no-op over cargo's own, in pairs. Every
//! timed run waits for the daemons to go idle first (containerd collects garbage a few seconds after images are
//! replaced: neither tool's cost, but it lands in whichever run comes next).
//!
//! Run: `cargo bench -p hive-e2e --bench build_vs_bake` (needs `scripts/buildkit-up` first). `HIVE_BENCH_RUNS`
//! sets the runs per cell (default 5), `HIVE_BENCH_CRATES` the number of crates (default 20).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hive_build::progress::Phase;
use hive_e2e::bench::{
    human_bytes, median, median_phases, must, phase_table, phase_times, settle_daemons, time,
    time_output,
};

const BASE: &str = "localhost:5000/hive/glibc:latest";

/// Pairs of no-op runs (cargo hive, then cargo) for the row over cargo's own no-op: each takes a tenth of a second.
const NOOP_PAIRS: usize = 30;

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let runs: usize = std::env::var("HIVE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let crates: usize = std::env::var("HIVE_BENCH_CRATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let root = hive_e2e::workspace_root();
    hive_e2e::buildkit_addr();
    assert!(
        Command::new("docker")
            .args(["buildx", "version"])
            .output()
            .is_ok_and(|o| o.status.success()),
        "docker buildx is missing: scripts/buildkit-up installs the plugin"
    );
    eprintln!("building cargo-hive (release)…");
    must(
        Command::new("cargo")
            .args(["build", "--release", "--quiet", "-p", "cargo-hive"])
            .current_dir(&root),
    );
    let hive = root.join("target/release/cargo-hive");
    let ws = root.join("target/bench/workspace");
    generate(&ws, crates);
    eprintln!("warming cargo's cache for the generated workspace…");
    must(
        Command::new("cargo")
            .args(["build", "--release", "--quiet"])
            .current_dir(&ws),
    );

    let hive_cmd = || {
        let mut command = Command::new(&hive);
        command
            .args([
                "hive",
                "build",
                "--release",
                "--load",
                "--quiet",
                // Data, not drawing: the phases for the breakdown (-q leaves JSON on).
                "--progress",
                "json",
                "--metadata-file",
                "target/hive-metadata.json",
            ])
            .current_dir(&ws);
        command
    };
    let bake_cmd = || {
        let mut command = Command::new("sh");
        command
            .args([
                "-c",
                "cargo build --release --quiet && docker buildx bake --load --progress quiet",
            ])
            .current_dir(&ws);
        command
    };

    let mut table = Vec::new();
    let mut phases: Vec<(String, BTreeMap<Phase, Duration>)> = Vec::new();
    let mut counter = 0u32;
    let scenarios = [
        "cold",
        "nothing changed",
        "nothing changed, no fingerprints",
        "one binary changed",
    ];
    for scenario in scenarios {
        let mut hive_times = Vec::new();
        let mut hive_phases = Vec::new();
        let mut bake_times = Vec::new();
        let mut bytes = Vec::new();
        if scenario != "cold" {
            // The cold scenario's prunes leave one side cold: one untimed run each puts both in the same state.
            time_output(&mut hive_cmd());
            must(&mut bake_cmd());
        }
        for run in 0..runs {
            for tool in ["hive", "bake"] {
                match scenario {
                    // Cold on both sides: BuildKit's cache, cargo hive's own up-to-date records, and the images
                    // in Docker (an unchanged image there is found by its fingerprint).
                    "cold" => {
                        prune();
                        forget_fingerprints(&ws);
                        forget_images(crates);
                    }
                    // BuildKit does all the work again (from its cache): what a build costs without the shortcut.
                    "nothing changed, no fingerprints" => forget_fingerprints(&ws),
                    "one binary changed" => {
                        counter += 1;
                        touch_binary(&ws, crates, counter);
                    }
                    _ => {}
                }
                settle_daemons();
                let mut command = if tool == "hive" {
                    hive_cmd()
                } else {
                    bake_cmd()
                };
                let (elapsed, progress) = if tool == "hive" {
                    time_output(&mut command)
                } else {
                    (time(&mut command), String::new())
                };
                eprintln!(
                    "{scenario:>20} run {run} {tool}: {:.3}s",
                    elapsed.as_secs_f64()
                );
                if tool == "hive" {
                    hive_times.push(elapsed);
                    hive_phases.push(phase_times(&progress));
                    bytes.push(bytes_sent(&ws));
                } else {
                    bake_times.push(elapsed);
                }
            }
        }
        phases.push((scenario.to_owned(), median_phases(&hive_phases)));
        table.push((
            scenario,
            median(&hive_times),
            median(&bake_times),
            median(&bytes),
        ));
    }
    let noop = noop_over_cargo(&hive, &ws, NOOP_PAIRS);
    let changed_size = std::fs::metadata(ws.join("target/release").join(changed_crate(crates)))
        .map(|m| m.len())
        .unwrap_or(0);

    println!(
        "\n| scenario ({crates} images, median of {runs}) | cargo hive | cargo + bake | ratio | target | bytes sent |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (scenario, hive, bake, bytes) in &table {
        let target = match *scenario {
            "cold" => "≤ 0.50",
            "nothing changed" | "nothing changed, no fingerprints" => "≤ 0.20",
            _ => "≤ 0.50",
        };
        println!(
            "| {scenario} | {:.3} s | {:.3} s | {:.2} | {target} | {} |",
            hive.as_secs_f64(),
            bake.as_secs_f64(),
            hive.as_secs_f64() / bake.as_secs_f64(),
            human_bytes(*bytes)
        );
    }
    println!(
        "\n{}",
        phase_table(&format!("cargo hive's phases (median of {runs})"), &phases)
    );
    println!(
        "\n| nothing changed, over cargo's own no-op (median of {}) | cargo hive build --release --load | cargo build --release | over (median of the pairs) | target |",
        NOOP_PAIRS
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    println!(
        "| {crates} images | {:.3} s | {:.3} s | {:.3} s | ≤ 0.060 s |",
        noop.hive.as_secs_f64(),
        noop.cargo.as_secs_f64(),
        noop.over.as_secs_f64()
    );
    let one_changed_bytes = table.last().map(|row| row.3).unwrap_or(0);
    println!(
        "\nbytes sent for one changed binary: {} for a {} binary ({:.3}×; target ≤ 1.05×)",
        human_bytes(one_changed_bytes),
        human_bytes(changed_size),
        one_changed_bytes as f64 / changed_size.max(1) as f64
    );
}

/// The no-op `cargo hive build --release --load` and cargo's own no-op, timed in pairs.
struct NoopOverCargo {
    /// The median of cargo hive's runs.
    hive: Duration,
    /// The median of cargo's runs.
    cargo: Duration,
    /// The median of each pair's difference: a pair runs within a fraction of a second, so a slow stretch of a
    /// noisy machine slows both of its runs rather than one side's median.
    over: Duration,
}

/// The no-op `cargo hive build --release --load` (as a user types it, output not a terminal) and cargo's own no-op,
/// alternated `runs` times after one untimed run of each.
fn noop_over_cargo(hive: &Path, ws: &Path, runs: usize) -> NoopOverCargo {
    let hive_cmd = || {
        let mut command = Command::new(hive);
        command
            .args(["hive", "build", "--release", "--load", "--quiet"])
            .current_dir(ws);
        command
    };
    let cargo_cmd = || {
        let mut command = Command::new("cargo");
        command
            .args(["build", "--release", "--quiet"])
            .current_dir(ws);
        command
    };
    time_output(&mut hive_cmd());
    time_output(&mut cargo_cmd());
    settle_daemons();
    let (mut hive_times, mut cargo_times, mut overs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let hive = time_output(&mut hive_cmd()).0;
        let cargo = time_output(&mut cargo_cmd()).0;
        hive_times.push(hive);
        cargo_times.push(cargo);
        overs.push(hive.saturating_sub(cargo));
    }
    NoopOverCargo {
        hive: median(&hive_times),
        cargo: median(&cargo_times),
        over: median(&overs),
    }
}

fn generate(ws: &Path, crates: usize) {
    std::fs::create_dir_all(ws.join("crates")).unwrap();
    let members: Vec<String> = (1..=crates)
        .map(|i| format!("\"crates/bin{i:02}\""))
        .collect();
    write(
        &ws.join("Cargo.toml"),
        &format!(
            "[workspace]\nresolver = \"3\"\nmembers = [{}]\n\n[workspace.package]\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [workspace.metadata.hive]\nregistry = \"localhost:5000/bench\"\nbase = \"{BASE}\"\ntags = [\"latest\"]\n\n\
             [profile.release]\nopt-level = 1\n",
            members.join(", ")
        ),
    );
    let mut targets = Vec::new();
    for i in 1..=crates {
        let name = format!("bin{i:02}");
        let dir = ws.join("crates").join(&name);
        std::fs::create_dir_all(dir.join("src")).unwrap();
        write(
            &dir.join("Cargo.toml"),
            &format!(
                "[package]\nname = \"{name}\"\nversion.workspace = true\nedition.workspace = true\n\n\
                 [package.metadata.hive.images.{name}]\n"
            ),
        );
        let main = dir.join("src/main.rs");
        if !main.exists() {
            write(
                &main,
                &format!("fn main() {{\n    println!(\"{name} 0\");\n}}\n"),
            );
        }
        targets.push(format!(
            "target \"{name}\" {{\n  dockerfile = \"Dockerfile\"\n  args = {{ BIN = \"{name}\" }}\n  tags = [\"localhost:5000/bench-bake/{name}:latest\"]\n}}\n"
        ));
    }
    let names: Vec<String> = (1..=crates).map(|i| format!("\"bin{i:02}\"")).collect();
    write(
        &ws.join("docker-bake.hcl"),
        &format!(
            "group \"default\" {{\n  targets = [{}]\n}}\n\n{}",
            names.join(", "),
            targets.join("\n")
        ),
    );
    write(
        &ws.join("Dockerfile"),
        &format!(
            "FROM {BASE}\nARG BIN\nCOPY target/release/${{BIN}} /usr/local/bin/app\nENTRYPOINT [\"/usr/local/bin/app\"]\n"
        ),
    );
    write(
        &ws.join(".dockerignore"),
        "*\n!target/release/bin*\ntarget/release/*.d\n",
    );
}

fn write(path: &Path, text: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).unwrap();
    }
}

/// The crate the "one binary changed" scenario changes: `bin07`, or the last one of a smaller workspace.
fn changed_crate(crates: usize) -> String {
    format!("bin{:02}", crates.clamp(1, 7))
}

fn touch_binary(ws: &Path, crates: usize, counter: u32) {
    let name = changed_crate(crates);
    let main: PathBuf = ws.join("crates").join(&name).join("src/main.rs");
    std::fs::write(
        &main,
        format!("fn main() {{\n    println!(\"{name} {counter}\");\n}}\n"),
    )
    .unwrap();
}

fn forget_fingerprints(ws: &Path) {
    let _ = std::fs::remove_dir_all(ws.join("target/hive/.fresh"));
}

/// Removes both tools' images from Docker.
fn forget_images(crates: usize) {
    let names: Vec<String> = (1..=crates)
        .flat_map(|i| {
            let name = format!("bin{i:02}");
            [
                format!("localhost:5000/bench/{name}:latest"),
                format!("localhost:5000/bench-bake/{name}:latest"),
            ]
        })
        .collect();
    // Missing images are no failure: the first cold run has none of bake's.
    let _ = Command::new("docker")
        .args(["rmi", "--force"])
        .args(&names)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

fn prune() {
    must(
        Command::new("docker")
            .args(["builder", "prune", "-af"])
            .stdout(std::process::Stdio::null()),
    );
}

fn bytes_sent(ws: &Path) -> u64 {
    let text = std::fs::read_to_string(ws.join("target/hive-metadata.json")).unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    value["images"].as_object().map_or(0, |images| {
        images
            .values()
            .filter_map(|i| i["bytes_sent"].as_u64())
            .sum()
    })
}
