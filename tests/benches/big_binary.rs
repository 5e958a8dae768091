//! One ~100 MB binary in one image on `scratch`, built with `--no-cache` to an OCI archive, `--load` and `--push`,
//! each against the floor measured in the same run: the physical work every tool must do once, `sha256sum` plus
//! `gzip -6` (single-threaded) of the binary, or `zstd -3` for the zstd rows. Also the peak memory (VmHWM) of
//! `cargo hive`. Prints a markdown table of medians. The floor and each build wait for the daemons to go idle first
//! (the previous run's garbage collection is neither's cost).
//!
//! The binary `include_bytes!`s 100 MiB generated deterministically to compress like real binaries (~3.3× with
//! `gzip -6`, ~3.0× with `zstd -3`; cargo-hive's own release binary is ~2.8×, Docker's CLI ~3.3×): a skewed choice
//! among 1024 short "instruction" tokens, with 10% recent runs repeated (as code repeats) and 10% short random
//! "immediates". Its gzip speed is close to a real binary's.
//!
//! This harness never prunes BuildKit (`--no-cache` makes the daemon redo the work): it can run beside other
//! builds, whose load makes absolute numbers noisy; the ratios of one run are what count.
//!
//! Run: `cargo bench -p hive-e2e --bench big_binary` (needs `scripts/buildkit-up` first). `HIVE_BENCH_RUNS` sets
//! the runs per row (default 3); `HIVE_BENCH_ROWS` picks rows by name, comma-separated (`archive,load,push`, each
//! optionally `:zstd`; default all); `HIVE_BENCH_HIVE` runs that `cargo-hive` binary instead of building this
//! checkout's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hive_e2e::bench::{human_bytes, median, must, settle_daemons};

/// The generated data's size: with the code around it, a binary of ~100 MB.
const DATA_BYTES: usize = 100 << 20;
/// The Rust target: a static binary, so `scratch` is a base it runs on.
const TRIPLE: &str = "x86_64-unknown-linux-musl";
/// Where pushes go: a new repository per run below this, so no run finds its blobs already there.
const PUSH_ROOT: &str = "localhost:5000/bench-big";

/// One row of the table: an output and a compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Row {
    output: Output,
    zstd: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Archive,
    Load,
    Push,
}

impl Row {
    fn name(self) -> String {
        let output = match self.output {
            Output::Archive => "archive",
            Output::Load => "load",
            Output::Push => "push",
        };
        if self.zstd {
            format!("{output}:zstd")
        } else {
            output.to_owned()
        }
    }

    /// The row's target against `gzip -6`. The zstd rows are shown against their own floor without one: it is a
    /// third of gzip's, so the daemon's fixed costs (streaming an archive back, a registry upload) dominate it.
    fn target(self) -> &'static str {
        match (self.output, self.zstd) {
            (_, true) => "—",
            (Output::Load, false) => "≤ 1.10",
            (Output::Archive | Output::Push, false) => "≤ 1.30",
        }
    }
}

/// One measured run of a row.
#[derive(Debug, Clone, Copy)]
struct Sample {
    hive: Duration,
    floor: Duration,
    peak_rss: u64,
}

fn main() {
    let runs: usize = std::env::var("HIVE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let rows = rows();
    let root = hive_e2e::workspace_root();
    let addr = hive_e2e::buildkit_addr();
    // Another build of cargo hive (an older commit's, to compare) when HIVE_BENCH_HIVE names one.
    let hive = match std::env::var_os("HIVE_BENCH_HIVE") {
        Some(path) => PathBuf::from(path),
        None => {
            eprintln!("building cargo-hive (release)…");
            must(
                Command::new("cargo")
                    .args(["build", "--release", "--quiet", "-p", "cargo-hive"])
                    .current_dir(&root),
            );
            root.join("target/release/cargo-hive")
        }
    };
    let ws = root.join("target/bench/big-binary");
    generate(&ws);
    eprintln!("building the big binary (once)…");
    must(
        Command::new("cargo")
            .args(["build", "--release", "--quiet", "--target", TRIPLE])
            .current_dir(&ws),
    );
    let binary = ws.join("target").join(TRIPLE).join("release/big");
    let size = std::fs::metadata(&binary)
        .expect("the binary is built")
        .len();
    let mut table = Vec::new();
    for row in rows {
        let mut samples = Vec::new();
        for run in 0..runs {
            settle_daemons();
            let floor = floor(&binary, row.zstd);
            // Only a push needs a new repository per run; the others keep one name (and one Docker tag).
            let repository = match row.output {
                Output::Push => format!(
                    "{PUSH_ROOT}/r{}-{run}-{}",
                    std::process::id(),
                    row.name().replace(':', "-")
                ),
                Output::Archive | Output::Load => format!("{PUSH_ROOT}/local"),
            };
            write_manifest(&ws, &repository);
            settle_daemons();
            let (hive, peak_rss) = run_hive(&hive, &ws, &addr, row);
            eprintln!(
                "{:>13} run {run}: cargo hive {:.3}s, floor {:.3}s, peak {}",
                row.name(),
                hive.as_secs_f64(),
                floor.as_secs_f64(),
                human_bytes(peak_rss)
            );
            samples.push(Sample {
                hive,
                floor,
                peak_rss,
            });
        }
        table.push((row, samples));
    }
    print_table(&table, runs, size);
}

/// The rows `HIVE_BENCH_ROWS` names, else all of them.
fn rows() -> Vec<Row> {
    let all: Vec<Row> = [false, true]
        .into_iter()
        .flat_map(|zstd| {
            [Output::Archive, Output::Load, Output::Push].map(|output| Row { output, zstd })
        })
        .collect();
    match std::env::var("HIVE_BENCH_ROWS") {
        Ok(names) => {
            let wanted: Vec<&str> = names.split(',').map(str::trim).collect();
            let rows: Vec<Row> = all
                .into_iter()
                .filter(|row| wanted.contains(&row.name().as_str()))
                .collect();
            assert!(
                !rows.is_empty(),
                "HIVE_BENCH_ROWS={names} names no row (archive, load, push, each optionally :zstd)"
            );
            rows
        }
        Err(_) => all,
    }
}

fn print_table(table: &[(Row, Vec<Sample>)], runs: usize, size: u64) {
    println!(
        "\n| output ({} binary, `--no-cache`, median of {runs}) | cargo hive | floor | ratio | target | peak RSS |",
        human_bytes(size)
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (row, samples) in table {
        let hive = median(&samples.iter().map(|s| s.hive).collect::<Vec<_>>());
        let floor = median(&samples.iter().map(|s| s.floor).collect::<Vec<_>>());
        // The ratio of each run against its own floor, then the median: the floor moves with the machine's load.
        let ratios: Vec<u64> = samples
            .iter()
            .map(|s| (s.hive.as_secs_f64() / s.floor.as_secs_f64() * 1000.0) as u64)
            .collect();
        let peak = samples.iter().map(|s| s.peak_rss).max().unwrap_or(0);
        let floor_name = if row.zstd { "zstd -3" } else { "gzip -6" };
        println!(
            "| {} | {:.3} s | {:.3} s ({floor_name}) | {:.2} | {} | {} |",
            row.name(),
            hive.as_secs_f64(),
            floor.as_secs_f64(),
            median(&ratios) as f64 / 1000.0,
            row.target(),
            human_bytes(peak)
        );
    }
    println!(
        "\npeak RSS: the most of the runs' VmHWM of the cargo-hive process, sampled every 5 ms; target ≤ 64 MiB"
    );
}

/// The floor: `sha256sum` then the compressor, one after the other, single-threaded, output thrown away.
fn floor(binary: &Path, zstd: bool) -> Duration {
    let started = Instant::now();
    let sink = || Stdio::null();
    must(Command::new("sha256sum").arg(binary).stdout(sink()));
    let mut compress = if zstd {
        let mut command = Command::new("zstd");
        command.args(["-3", "-T1", "-q", "-c"]);
        command
    } else {
        let mut command = Command::new("gzip");
        command.args(["-6", "-c"]);
        command
    };
    must(compress.arg(binary).stdout(sink()));
    started.elapsed()
}

/// One `cargo hive build --no-cache` of the row; its wall time and its peak resident memory.
fn run_hive(hive: &Path, ws: &Path, addr: &str, row: Row) -> (Duration, u64) {
    let mut command = Command::new(hive);
    command
        .args(["hive", "build", "--release", "--no-cache", "--quiet"])
        .args(["--addr", addr])
        .current_dir(ws)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    match row.output {
        Output::Archive => {}
        Output::Load => {
            command.arg("--load");
        }
        Output::Push => {
            command.arg("--push");
        }
    }
    if row.zstd {
        command.args(["--compression", "zstd"]);
    }
    let started = Instant::now();
    let mut child = command.spawn().expect("cargo hive starts");
    let status_path = PathBuf::from(format!("/proc/{}/status", child.id()));
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting works") {
            break status;
        }
        // VmHWM is the process's own high-water mark: the last reading before it exits is its peak.
        if let Some(kib) = std::fs::read_to_string(&status_path)
            .ok()
            .as_deref()
            .and_then(vm_hwm_kib)
        {
            peak = peak.max(kib * 1024);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = started.elapsed();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut stderr);
    }
    assert!(
        status.success(),
        "cargo hive build ({}) failed ({status}):\n{stderr}",
        row.name()
    );
    (elapsed, peak)
}

/// `VmHWM:` of a `/proc/<pid>/status`, in KiB.
fn vm_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Writes the workspace (files already up to date are left alone, so cargo's cache stays valid).
fn generate(ws: &Path) {
    std::fs::create_dir_all(ws.join("src")).unwrap();
    write_manifest(ws, &format!("{PUSH_ROOT}/local"));
    write_if_changed(
        &ws.join("src/main.rs"),
        "//! A ~100 MB binary: its data compresses like code.\n\n\
         static DATA: &[u8] = include_bytes!(\"../data.bin\");\n\n\
         fn main() {\n    let data = std::hint::black_box(DATA);\n    \
         let sum: u64 = data.iter().step_by(4096).map(|&b| u64::from(b)).sum();\n    \
         println!(\"{} bytes, sampled sum {sum}\", data.len());\n}\n",
    );
    let data = ws.join("data.bin");
    if std::fs::metadata(&data).map(|m| m.len()).ok() != Some(DATA_BYTES as u64) {
        eprintln!("generating {}…", human_bytes(DATA_BYTES as u64));
        std::fs::write(&data, binary_like(DATA_BYTES)).unwrap();
    }
}

/// The workspace's manifest, pushing to `registry` (`--push` goes to a new repository per run).
fn write_manifest(ws: &Path, registry: &str) {
    write_if_changed(
        &ws.join("Cargo.toml"),
        &format!(
            "[package]\nname = \"big\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
             [workspace]\n\n[package.metadata.hive]\nregistry = \"{registry}\"\n\n\
             [package.metadata.hive.images.big]\nbase = \"scratch\"\ntags = [\"latest\"]\n\
             targets = {{ \"linux/amd64\" = \"{TRIPLE}\" }}\n\n\
             [profile.release]\nopt-level = 1\n"
        ),
    );
}

/// `len` bytes that compress like a binary's (see the module doc), the same on every run.
fn binary_like(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        // xorshift64: deterministic and fast.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let tokens: Vec<Vec<u8>> = (0..1024)
        .map(|_| {
            let len = 2 + (next() % 7) as usize;
            (0..len).map(|_| next() as u8).collect()
        })
        .collect();
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        let roll = next() % 1000;
        if roll < 100 && out.len() > 32768 {
            // A recent run again, as code repeats its sequences.
            let back = 64 + (next() % 32000) as usize;
            let run = 8 + (next() % 56) as usize;
            let start = out.len() - back;
            for i in 0..run {
                out.push(out[start + i]);
            }
        } else if roll < 200 {
            // A short immediate: addresses and constants.
            for _ in 0..1 + next() % 8 {
                out.push(next() as u8);
            }
        } else {
            // The product of two uniform draws favours small indices, as opcode frequencies do.
            let index = (next() % 32) * (next() % 32);
            out.extend_from_slice(&tokens[index as usize]);
        }
    }
    out.truncate(len);
    out
}

fn write_if_changed(path: &Path, text: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
    }
}
