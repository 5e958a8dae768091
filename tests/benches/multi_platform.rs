//! `cargo hive build --release --push` against `cargo build --release --target … --target … && docker buildx bake
//! --push` for a generated workspace of 20 binary crates, each one image for `linux/amd64` and `linux/arm64` on
//! `scratch`, from the same host-cross-compiled musl binaries (no emulation on either side). Both push a
//! two-platform index per image to the local registry; every run is checked by reading the indexes back. Scenarios:
//! cold (BuildKit cache pruned, the bench's local images removed, fresh registry repositories), nothing changed,
//! nothing changed without cargo hive's fingerprints, one binary changed. Prints a markdown table of medians, and
//! where cargo hive's time went: the median of each phase its `--progress json` reports, per scenario. Every timed
//! run waits for the daemons to go idle first (a prune or a replaced image makes containerd collect garbage a few
//! seconds later).
//!
//! Run: `cargo bench -p hive-e2e --bench multi_platform` (needs `scripts/buildkit-up` and the rustup targets
//! `x86_64-unknown-linux-musl` and `aarch64-unknown-linux-musl`). `HIVE_BENCH_RUNS` sets the runs per cell
//! (default 3), `HIVE_BENCH_CRATES` the number of crates (default 20); `HIVE_BENCH_BAKE_ONLY=1` runs bake's side
//! alone (to check the harness where cargo hive cannot build several platforms).
//!
//! `HIVE_BENCH_SCALE=1` measures scale instead (crates default to 200): `cargo hive plan` and the no-op
//! `cargo hive build --push` (after one untimed build), with their phases; it neither prunes BuildKit nor runs bake,
//! so it can run beside other work on the daemon.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hive_build::progress::Phase;
use hive_e2e::bench::{
    BAKE_SCRIPT, MultiPlatformWorkspace, PLATFORMS, REGISTRY, REPOSITORY_ROOT, assert_pushed_index,
    human_bytes, median, median_phases, must, phase_table, phase_times, ratio, settle_daemons,
    time_output,
};

/// The sides of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Hive,
    Bake,
}

/// The scenarios, in the order they run (each leaves the state the next one starts from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Cold,
    NothingChanged,
    NothingChangedNoFingerprints,
    OneBinaryChanged,
}

impl Scenario {
    const ALL: [Scenario; 4] = [
        Scenario::Cold,
        Scenario::NothingChanged,
        Scenario::NothingChangedNoFingerprints,
        Scenario::OneBinaryChanged,
    ];

    fn label(self) -> &'static str {
        match self {
            Scenario::Cold => "cold",
            Scenario::NothingChanged => "nothing changed",
            Scenario::NothingChangedNoFingerprints => "nothing changed, no fingerprints",
            Scenario::OneBinaryChanged => "one binary changed",
        }
    }

    /// The target for `cargo hive / bake`.
    fn target(self) -> &'static str {
        match self {
            Scenario::Cold | Scenario::OneBinaryChanged => "≤ 0.50",
            Scenario::NothingChanged | Scenario::NothingChangedNoFingerprints => "≤ 0.20",
        }
    }
}

/// What one scenario measured.
struct Row {
    scenario: Scenario,
    hive: Option<Duration>,
    bake: Duration,
    bytes: Option<u64>,
    /// cargo hive's phases, the median of each.
    phases: BTreeMap<Phase, Duration>,
}

/// The bench's settings and the things every run needs.
struct Bench {
    runs: usize,
    bake_only: bool,
    hive: PathBuf,
    workspace: MultiPlatformWorkspace,
    /// Unique to this process, so a run never meets a repository an earlier one pushed.
    run_id: String,
    generation: u32,
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let runs = env_number("HIVE_BENCH_RUNS", 3);
    if std::env::var("HIVE_BENCH_SCALE").is_ok_and(|v| v == "1") {
        let crates = env_number("HIVE_BENCH_CRATES", 200);
        let mut bench = Bench::prepare(runs, crates, false);
        bench.scale(crates);
        return;
    }
    let crates = env_number("HIVE_BENCH_CRATES", 20);
    let bake_only = std::env::var("HIVE_BENCH_BAKE_ONLY").is_ok_and(|v| v == "1");
    let mut bench = Bench::prepare(runs, crates, bake_only);
    let rows: Vec<Row> = Scenario::ALL
        .into_iter()
        .map(|scenario| bench.scenario(scenario))
        .collect();
    forget_local_images();
    print_table(&rows, crates, runs, bench.changed_size());
}

impl Bench {
    /// Checks the tools, builds cargo-hive, generates the workspace and warms cargo's cache for both targets.
    fn prepare(runs: usize, crates: usize, bake_only: bool) -> Bench {
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
        let run_id = format!("r{}", std::process::id());
        let workspace = MultiPlatformWorkspace::generate(
            &root.join("target/bench/multi-platform"),
            crates,
            &format!("{run_id}-warm"),
        );
        eprintln!("warming cargo's cache for the generated workspace (both targets)…");
        let mut cargo = Command::new("cargo");
        cargo.args(["build", "--release", "--quiet"]);
        for platform in PLATFORMS {
            cargo.args(["--target", platform.triple]);
        }
        must(cargo.current_dir(workspace.root()));
        Bench {
            runs,
            bake_only,
            hive: root.join("target/release/cargo-hive"),
            workspace,
            run_id,
            generation: 0,
        }
    }

    fn tools(&self) -> &'static [Tool] {
        if self.bake_only {
            &[Tool::Bake]
        } else {
            &[Tool::Hive, Tool::Bake]
        }
    }

    /// The runs of one scenario, alternating the tools, each run checked in the registry.
    fn scenario(&mut self, scenario: Scenario) -> Row {
        let warm = format!("{}-warm", self.run_id);
        if scenario != Scenario::Cold {
            // Cold leaves each side's repositories elsewhere: one untimed run each puts both in the same state.
            self.workspace.push_to(&warm);
            for &tool in self.tools() {
                self.run(tool, scenario);
            }
        }
        let mut hive_times = Vec::new();
        let mut hive_phases = Vec::new();
        let mut bake_times = Vec::new();
        let mut bytes = Vec::new();
        for run in 0..self.runs {
            for &tool in self.tools() {
                let repositories = self.prepare_run(scenario, tool, run, &warm);
                settle_daemons();
                let (elapsed, progress) = self.run(tool, scenario);
                self.check_pushed(tool, &repositories);
                eprintln!(
                    "{:>32} run {run} {tool:?}: {:.3}s",
                    scenario.label(),
                    elapsed.as_secs_f64()
                );
                match tool {
                    Tool::Hive => {
                        hive_times.push(elapsed);
                        hive_phases.push(phase_times(&progress));
                        bytes.push(bytes_sent(self.workspace.root()));
                    }
                    Tool::Bake => bake_times.push(elapsed),
                }
            }
        }
        Row {
            scenario,
            hive: (!hive_times.is_empty()).then(|| median(&hive_times)),
            bake: median(&bake_times),
            bytes: (!bytes.is_empty()).then(|| median(&bytes)),
            phases: median_phases(&hive_phases),
        }
    }

    /// The scale mode: `cargo hive plan` and the no-op build of a big workspace, timed; nothing pruned, no bake.
    fn scale(&mut self, crates: usize) {
        let warm = format!("{}-scale", self.run_id);
        self.workspace.push_to(&warm);
        eprintln!("building the {crates} images once (untimed)…");
        self.run(Tool::Hive, Scenario::NothingChanged);
        let mut plans = Vec::new();
        let mut builds = Vec::new();
        let mut phases = Vec::new();
        for run in 0..self.runs {
            let mut plan = Command::new(&self.hive);
            plan.args(["hive", "plan", "--quiet", "--format", "json"])
                .current_dir(self.workspace.root());
            settle_daemons();
            let (planned, _) = time_output(&mut plan);
            let (built, progress) = self.run(Tool::Hive, Scenario::NothingChanged);
            self.check_pushed(Tool::Hive, &warm);
            eprintln!(
                "scale run {run}: plan {:.3}s, no-op build {:.3}s",
                planned.as_secs_f64(),
                built.as_secs_f64()
            );
            plans.push(planned);
            builds.push(built);
            phases.push(phase_times(&progress));
        }
        println!(
            "\n| {crates} images × {} (median of {}) | time | target |",
            PLATFORMS.len(),
            self.runs
        );
        println!("| --- | ---: | ---: |");
        println!(
            "| `cargo hive plan` | {:.3} s | ≤ 1 s |",
            median(&plans).as_secs_f64()
        );
        println!(
            "| no-op `cargo hive build --release --push` | {:.3} s | ≤ 1.5 s |",
            median(&builds).as_secs_f64()
        );
        println!(
            "\n{}",
            phase_table(
                "phase (no-op build, median)",
                &[(format!("{crates} images"), median_phases(&phases))]
            )
        );
    }

    /// Puts the daemon, the workspace and the registry in the scenario's starting state for one timed run;
    /// returns the repositories (below [`REPOSITORY_ROOT`]) the run pushes to.
    fn prepare_run(&mut self, scenario: Scenario, tool: Tool, run: usize, warm: &str) -> String {
        match scenario {
            Scenario::Cold => {
                // Cold on both sides: BuildKit's cache, the images (and so the blobs) a push left in Docker's
                // store, cargo hive's up-to-date records, and repositories the registry has never seen.
                let fresh = format!("{}-cold-{run}", self.run_id);
                self.workspace.push_to(&fresh);
                forget_local_images();
                prune();
                forget_fingerprints(self.workspace.root());
                return fresh;
            }
            // BuildKit does all the work again (from its cache): what a build costs without the shortcut.
            Scenario::NothingChangedNoFingerprints if tool == Tool::Hive => {
                forget_fingerprints(self.workspace.root())
            }
            Scenario::OneBinaryChanged => {
                self.generation += 1;
                self.workspace.set_message(&self.changed(), self.generation);
            }
            _ => {}
        }
        warm.to_owned()
    }

    /// One timed run of `tool`, with its stdout (cargo hive's `--progress json`); panics with its stderr when it
    /// fails.
    fn run(&self, tool: Tool, scenario: Scenario) -> (Duration, String) {
        let mut command = match tool {
            Tool::Hive => {
                let mut command = Command::new(&self.hive);
                command.args([
                    "hive",
                    "build",
                    "--release",
                    "--push",
                    // Like for like: bake runs without its default attestations (see `bake_script`).
                    "--provenance=false",
                    "--quiet",
                    // Data, not drawing: the phases for the breakdown (-q leaves JSON on).
                    "--progress",
                    "json",
                    "--color",
                    "never",
                    "--metadata-file",
                    "target/hive-metadata.json",
                ]);
                command
            }
            Tool::Bake => {
                let mut command = Command::new("sh");
                command.arg(BAKE_SCRIPT);
                command
            }
        };
        command.current_dir(self.workspace.root());
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| time_output(&mut command)));
        result.unwrap_or_else(|panic| {
            eprintln!(
                "{tool:?} failed in scenario \"{}\" on the {}-platform workspace{}",
                scenario.label(),
                PLATFORMS.len(),
                if tool == Tool::Hive {
                    " (does this cargo-hive build several platforms yet? HIVE_BENCH_BAKE_ONLY=1 runs bake alone)"
                } else {
                    ""
                }
            );
            std::panic::resume_unwind(panic)
        })
    }

    /// Panics unless every image of the run is a two-platform index in the registry.
    fn check_pushed(&self, tool: Tool, repositories: &str) {
        for name in self.workspace.names() {
            assert_pushed_index(&match tool {
                Tool::Hive => MultiPlatformWorkspace::hive_repository(repositories, &name),
                Tool::Bake => MultiPlatformWorkspace::bake_repository(repositories, &name),
            });
        }
    }

    /// The crate whose source the "one binary changed" scenario edits: `bin07`, or the last of fewer.
    fn changed(&self) -> String {
        let names = self.workspace.names();
        names[names.len().min(7) - 1].clone()
    }

    /// The size of the changed binary (the amd64 one; the arm64 one is about the same).
    fn changed_size(&self) -> u64 {
        let path = self
            .workspace
            .root()
            .join("target")
            .join(PLATFORMS[0].triple)
            .join("release")
            .join(self.changed());
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }
}

fn print_table(rows: &[Row], crates: usize, runs: usize, changed_size: u64) {
    let platforms: Vec<&str> = PLATFORMS.iter().map(|p| p.name).collect();
    println!(
        "\n| scenario ({crates} images × {}, --push, median of {runs}) | cargo hive | cargo + bake | ratio | target | bytes sent |",
        platforms.join(" + ")
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for row in rows {
        let (hive, ratio) = match row.hive {
            Some(hive) => (
                format!("{:.3} s", hive.as_secs_f64()),
                format!("{:.2}", ratio(hive, row.bake)),
            ),
            None => ("—".to_owned(), "—".to_owned()),
        };
        println!(
            "| {} | {hive} | {:.3} s | {ratio} | {} | {} |",
            row.scenario.label(),
            row.bake.as_secs_f64(),
            row.scenario.target(),
            row.bytes.map_or("—".to_owned(), human_bytes),
        );
    }
    let phases: Vec<(String, BTreeMap<Phase, Duration>)> = (rows.iter())
        .filter(|row| row.hive.is_some())
        .map(|row| (row.scenario.label().to_owned(), row.phases.clone()))
        .collect();
    if !phases.is_empty() {
        println!(
            "\n{}",
            phase_table(&format!("cargo hive's phases (median of {runs})"), &phases)
        );
    }
    if let Some(bytes) = rows.last().and_then(|row| row.bytes) {
        println!(
            "\nbytes sent for one changed binary ({} platforms): {} for a {} binary per platform",
            PLATFORMS.len(),
            human_bytes(bytes),
            human_bytes(changed_size),
        );
    }
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn forget_fingerprints(ws: &Path) {
    let _ = std::fs::remove_dir_all(ws.join("target/hive/.fresh"));
}

fn prune() {
    must(Command::new("docker").args(["builder", "prune", "-af"]));
}

/// Removes every image this bench left in Docker's store (only ours: `localhost:5000/bench-mp/…`), so a cold push
/// cannot borrow blobs from an earlier one.
fn forget_local_images() {
    let output = Command::new("docker")
        .args(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
        .output()
        .expect("docker runs");
    assert!(output.status.success(), "docker image ls failed");
    let prefix = format!("{REGISTRY}/{REPOSITORY_ROOT}/");
    let ours: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|reference| reference.starts_with(&prefix))
        .map(str::to_owned)
        .collect();
    if !ours.is_empty() {
        must(Command::new("docker").args(["rmi", "--force"]).args(&ours));
    }
}

/// The bytes cargo hive's sessions sent in its last run, from `--metadata-file`.
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
