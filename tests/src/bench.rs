//! Pieces of the benchmarks in `tests/benches/`: the generated multi-platform workspace (its cargo-hive metadata,
//! its bake file and the script that stages cross-compiled binaries for bake), reading back what a run pushed, and
//! the arithmetic of the printed tables (the totals, and the per-phase breakdown read from `--progress json`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hive_build::progress::{Event, Phase, Record};
use serde_json::Value;

/// One platform of the multi-platform benchmark: its OCI name, Docker's `TARGETARCH` and the Rust target that
/// builds it (musl, so both link without a system cross linker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchPlatform {
    /// The OCI platform, `linux/arm64`.
    pub name: &'static str,
    /// Docker's `TARGETARCH` for it, `arm64`.
    pub arch: &'static str,
    /// The Rust target triple cargo builds for it.
    pub triple: &'static str,
}

/// The platforms every image of the multi-platform benchmark has.
pub const PLATFORMS: [BenchPlatform; 2] = [
    BenchPlatform {
        name: "linux/amd64",
        arch: "amd64",
        triple: "x86_64-unknown-linux-musl",
    },
    BenchPlatform {
        name: "linux/arm64",
        arch: "arm64",
        triple: "aarch64-unknown-linux-musl",
    },
];

/// The registry both sides of the multi-platform benchmark push to (plain HTTP).
pub const REGISTRY: &str = "localhost:5000";

/// Every repository the multi-platform benchmark pushes lives under this path of [`REGISTRY`].
pub const REPOSITORY_ROOT: &str = "bench-mp";

/// The tag both sides push.
pub const TAG: &str = "latest";

/// The script (relative to the workspace) that is bake's side of a run: cargo, staging, `docker buildx bake`.
pub const BAKE_SCRIPT: &str = "bench-bake.sh";

/// A generated workspace of binary crates `bin01`…, each one image for [`PLATFORMS`] on `scratch`, with a bake file
/// that builds the same images from the same cross-compiled binaries.
#[derive(Debug, Clone)]
pub struct MultiPlatformWorkspace {
    root: PathBuf,
    crates: usize,
}

impl MultiPlatformWorkspace {
    /// Writes the workspace under `root` (files already up to date are left alone, so cargo's cache stays valid);
    /// both sides push under `repositories` (a path below [`REPOSITORY_ROOT`]) until [`Self::push_to`] says
    /// otherwise.
    pub fn generate(root: &Path, crates: usize, repositories: &str) -> MultiPlatformWorkspace {
        let workspace = MultiPlatformWorkspace {
            root: root.to_path_buf(),
            crates,
        };
        std::fs::create_dir_all(root.join("crates")).unwrap();
        std::fs::create_dir_all(root.join(".cargo")).unwrap();
        // cargo picks its linker from here, as a user's project would: rust-lld links static musl for aarch64.
        write(
            &root.join(".cargo/config.toml"),
            "[target.aarch64-unknown-linux-musl]\nlinker = \"rust-lld\"\n",
        );
        for name in workspace.names() {
            let dir = root.join("crates").join(&name);
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
                workspace.set_message(&name, 0);
            }
        }
        for platform in PLATFORMS {
            std::fs::create_dir_all(root.join("bake/bin").join(platform.arch)).unwrap();
        }
        write(&root.join(BAKE_SCRIPT), &workspace.bake_script());
        workspace.push_to(repositories);
        workspace
    }

    /// The workspace directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The crate (and image) names, `bin01`….
    pub fn names(&self) -> Vec<String> {
        (1..=self.crates).map(|i| format!("bin{i:02}")).collect()
    }

    /// Points both sides at new repositories: cargo hive pushes `<repositories>/hive/<name>`, bake
    /// `<repositories>/bake/<name>` (paths below `REGISTRY/REPOSITORY_ROOT`). Fresh repositories make a cold push
    /// honest: a registry skips blobs a repository already has.
    pub fn push_to(&self, repositories: &str) {
        write(&self.root.join("Cargo.toml"), &self.manifest(repositories));
        write(
            &self.root.join("docker-bake.hcl"),
            &self.bake_file(repositories),
        );
    }

    /// Rewrites one crate's `main.rs` so its binaries change: `generation` goes into what it prints.
    pub fn set_message(&self, name: &str, generation: u32) {
        write(
            &self.root.join("crates").join(name).join("src/main.rs"),
            &format!("fn main() {{\n    println!(\"{name} {generation}\");\n}}\n"),
        );
    }

    /// The registry path (no host, no tag) cargo hive pushes `name` to, below `repositories`.
    pub fn hive_repository(repositories: &str, name: &str) -> String {
        format!("{REPOSITORY_ROOT}/{repositories}/hive/{name}")
    }

    /// The registry path (no host, no tag) bake pushes `name` to, below `repositories`.
    pub fn bake_repository(repositories: &str, name: &str) -> String {
        format!("{REPOSITORY_ROOT}/{repositories}/bake/{name}")
    }

    fn manifest(&self, repositories: &str) -> String {
        let members: Vec<String> = self
            .names()
            .iter()
            .map(|name| format!("\"crates/{name}\""))
            .collect();
        let platforms: Vec<String> = PLATFORMS
            .iter()
            .map(|p| format!("\"{}\"", p.name))
            .collect();
        let targets: Vec<String> = PLATFORMS
            .iter()
            .map(|p| format!("\"{}\" = \"{}\"", p.name, p.triple))
            .collect();
        format!(
            "[workspace]\nresolver = \"3\"\nmembers = [{members}]\n\n\
             [workspace.package]\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [workspace.metadata.hive]\nregistry = \"{REGISTRY}/{REPOSITORY_ROOT}/{repositories}/hive\"\n\
             base = \"scratch\"\nplatforms = [{platforms}]\ntargets = {{ {targets} }}\ntags = [\"{TAG}\"]\n\n\
             [profile.release]\nopt-level = 1\nstrip = true\n",
            members = members.join(", "),
            platforms = platforms.join(", "),
            targets = targets.join(", "),
        )
    }

    /// One bake target per image, all platforms in one build; the inline Dockerfile makes the image cargo hive
    /// makes (the binary at `/usr/local/bin/<name>`, its entrypoint) from the binaries staged under `bake/bin/`.
    fn bake_file(&self, repositories: &str) -> String {
        let names = self.names();
        let platforms: Vec<String> = PLATFORMS
            .iter()
            .map(|p| format!("\"{}\"", p.name))
            .collect();
        let mut text = format!(
            "group \"default\" {{\n  targets = [{}]\n}}\n",
            names
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for name in &names {
            let repository = Self::bake_repository(repositories, name);
            text.push_str(&format!(
                "\ntarget \"{name}\" {{\n  context = \"bake\"\n  dockerfile-inline = <<EOT\nFROM scratch\n\
                 ARG TARGETARCH\nCOPY bin/$${{TARGETARCH}}/{name} /usr/local/bin/{name}\n\
                 ENTRYPOINT [\"/usr/local/bin/{name}\"]\nEOT\n  platforms = [{}]\n  \
                 tags = [\"{REGISTRY}/{repository}:{TAG}\"]\n}}\n",
                platforms.join(", ")
            ));
        }
        text
    }

    /// Bake's side of a run, as a user would script it: one cargo run for both targets, hard links of the binaries
    /// into the build context by `TARGETARCH` (they keep cargo's mtimes, so BuildKit re-sends only changed ones),
    /// then `docker buildx bake --push`. Without default attestations: cargo hive runs with `--provenance=false`, so
    /// neither side makes any.
    fn bake_script(&self) -> String {
        let targets: Vec<String> = PLATFORMS
            .iter()
            .map(|p| format!("--target {}", p.triple))
            .collect();
        let mut script = format!(
            "#!/bin/sh\n# Bake's side of the multi-platform benchmark (generated by hive-e2e).\nset -e\n\
             cargo build --release --quiet {}\n",
            targets.join(" ")
        );
        for platform in PLATFORMS {
            script.push_str(&format!(
                "for bin in {}; do ln -f target/{}/release/$bin bake/bin/{}/$bin; done\n",
                self.names().join(" "),
                platform.triple,
                platform.arch
            ));
        }
        script.push_str(
            "BUILDX_NO_DEFAULT_ATTESTATIONS=1 exec docker buildx bake --push --progress quiet >/dev/null\n",
        );
        script
    }
}

/// The platforms (`os/architecture[/variant]`) of the images an index or manifest list names, or `None` when
/// `manifest` is not an index (a single-platform manifest, an error document).
pub fn index_platforms(manifest: &Value) -> Option<BTreeSet<String>> {
    let media_type = manifest["mediaType"].as_str()?;
    if !matches!(
        media_type,
        "application/vnd.oci.image.index.v1+json"
            | "application/vnd.docker.distribution.manifest.list.v2+json"
    ) {
        return None;
    }
    let platforms = manifest["manifests"]
        .as_array()?
        .iter()
        .filter_map(|entry| {
            let platform = &entry["platform"];
            let os = platform["os"].as_str()?;
            let architecture = platform["architecture"].as_str()?;
            Some(match platform["variant"].as_str() {
                Some(variant) => format!("{os}/{architecture}/{variant}"),
                None => format!("{os}/{architecture}"),
            })
        })
        .collect();
    Some(platforms)
}

/// The manifest `repository:tag` has in [`REGISTRY`], asking for an index first (as `docker pull` does). Panics
/// when the registry cannot be read.
pub fn registry_manifest(repository: &str, tag: &str) -> Value {
    let url = format!("http://{REGISTRY}/v2/{repository}/manifests/{tag}");
    let output = Command::new("curl")
        .args(["-sS", "--fail-with-body", "-H"])
        .arg(
            "Accept: application/vnd.oci.image.index.v1+json, \
             application/vnd.docker.distribution.manifest.list.v2+json, \
             application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
        )
        .arg(&url)
        .output()
        .expect("curl runs");
    let body = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "GET {url} failed: {}{body}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&body).unwrap_or_else(|err| panic!("GET {url}: not JSON ({err}): {body}"))
}

/// Panics unless `repository:TAG` in [`REGISTRY`] is an index of exactly [`PLATFORMS`] (attestation entries,
/// `unknown/unknown`, are not allowed either: neither side makes any).
pub fn assert_pushed_index(repository: &str) {
    let manifest = registry_manifest(repository, TAG);
    let expected: BTreeSet<String> = PLATFORMS.iter().map(|p| p.name.to_owned()).collect();
    match index_platforms(&manifest) {
        Some(platforms) if platforms == expected => {}
        Some(platforms) => {
            panic!(
                "{REGISTRY}/{repository}:{TAG} is an index of {platforms:?}, expected {expected:?}"
            )
        }
        None => panic!("{REGISTRY}/{repository}:{TAG} is not an index: {manifest}"),
    }
}

/// The daemons whose background work (containerd's garbage collection after images are replaced or removed,
/// BuildKit's cache pruning) would land in the next timed run.
const DAEMONS: [&str; 3] = ["dockerd", "containerd", "buildkitd"];

/// Waits until the daemons are idle (under 5% of one core for half a second), at most a minute (containerd stayed
/// busy for over 20 s after the 200-image build). Both tools are timed after it: the burst a previous run left
/// behind is neither tool's cost.
pub fn settle_daemons() {
    const WINDOW: Duration = Duration::from_millis(500);
    const IDLE: Duration = Duration::from_millis(25);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let before = daemons_cpu();
        std::thread::sleep(WINDOW);
        if daemons_cpu().saturating_sub(before) < IDLE {
            break;
        }
    }
}

/// CPU time the daemons have used so far (user + system, from `/proc`).
fn daemons_cpu() -> Duration {
    let ticks: u64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter_map(|stat| {
            let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // After the name: state is field 3, utime and stime are fields 14 and 15.
            let used =
                fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            DAEMONS.contains(&name).then_some(used)
        })
        .sum();
    // Linux reports in USER_HZ, 100 per second on every architecture we run on.
    Duration::from_millis(ticks * 10)
}

/// Runs `command` and panics, with its stderr, unless it succeeds; returns how long it took.
pub fn time(command: &mut Command) -> Duration {
    let started = Instant::now();
    must(command);
    started.elapsed()
}

/// Runs `command` and panics, quoting the command, its exit status and its stderr, unless it succeeds.
pub fn must(command: &mut Command) {
    must_output(command);
}

/// Runs `command` and panics, with its stderr, unless it succeeds; returns how long it took and its stdout.
pub fn time_output(command: &mut Command) -> (Duration, String) {
    let started = Instant::now();
    let stdout = must_output(command);
    (started.elapsed(), stdout)
}

/// [`must`], returning the command's stdout.
fn must_output(command: &mut Command) -> String {
    let output = command.output().expect("command starts");
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// How long each phase of one `cargo hive build --progress json` run took: a phase of the whole build as reported;
/// a phase of the images as the slowest image's (images run concurrently, so that is what the build waited for).
/// Lines that are not progress records (or records of a newer kind) are skipped.
pub fn phase_times(progress: &str) -> BTreeMap<Phase, Duration> {
    let mut phases: BTreeMap<Phase, Duration> = BTreeMap::new();
    let records = progress
        .lines()
        .filter_map(|line| serde_json::from_str::<Record>(line).ok());
    for record in records {
        if let Event::Phase {
            phase,
            duration_secs,
            ..
        } = record.event
        {
            let took = Duration::from_secs_f64(duration_secs.max(0.0));
            let slot = phases.entry(phase).or_default();
            *slot = if phase.per_image() {
                (*slot).max(took)
            } else {
                *slot + took
            };
        }
    }
    phases
}

/// Per phase, the median over runs; a phase a run did not report (an image found up to date is not solved) counts
/// as zero in that run, and a phase no run reported is left out.
pub fn median_phases(runs: &[BTreeMap<Phase, Duration>]) -> BTreeMap<Phase, Duration> {
    let seen: BTreeSet<Phase> = runs.iter().flat_map(|run| run.keys().copied()).collect();
    seen.into_iter()
        .map(|phase| {
            let times: Vec<Duration> = runs
                .iter()
                .map(|run| run.get(&phase).copied().unwrap_or_default())
                .collect();
            (phase, median(&times))
        })
        .collect()
}

/// A markdown table of phases (rows, in the order they run) by column (a scenario each, in the order given), in
/// milliseconds; `—` where a column has no such phase.
pub fn phase_table(title: &str, columns: &[(String, BTreeMap<Phase, Duration>)]) -> String {
    let mut text = format!("| {title} |");
    for (name, _) in columns {
        text.push_str(&format!(" {name} |"));
    }
    text.push_str("\n| --- |");
    text.push_str(&" ---: |".repeat(columns.len()));
    text.push('\n');
    for phase in Phase::ALL {
        if !columns
            .iter()
            .any(|(_, phases)| phases.contains_key(&phase))
        {
            continue;
        }
        let per_image = if phase.per_image() {
            " (slowest image)"
        } else {
            ""
        };
        text.push_str(&format!("| {}{per_image} |", phase.as_str()));
        for (_, phases) in columns {
            match phases.get(&phase) {
                Some(took) => text.push_str(&format!(" {:.1} ms |", took.as_secs_f64() * 1000.0)),
                None => text.push_str(" — |"),
            }
        }
        text.push('\n');
    }
    text
}

/// The median of `values` (the upper one of an even count). Panics when `values` is empty.
pub fn median<T: Ord + Copy>(values: &[T]) -> T {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

/// `ours / theirs`, the table's ratio column.
pub fn ratio(ours: Duration, theirs: Duration) -> f64 {
    ours.as_secs_f64() / theirs.as_secs_f64()
}

/// A byte count as the tables print it.
pub fn human_bytes(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.2} MiB", bytes as f64 / f64::from(1 << 20))
    } else if bytes >= 1 << 10 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

/// Writes `text` unless the file already holds it, so an unchanged file keeps its mtime (and cargo's cache).
fn write(path: &Path, text: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_platforms_reads_oci_indexes_and_docker_lists() {
        let index = serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"platform": {"os": "linux", "architecture": "amd64"}},
                {"platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
                {"platform": {"os": "unknown", "architecture": "unknown"}},
            ]
        });
        assert_eq!(
            index_platforms(&index),
            Some(BTreeSet::from([
                "linux/amd64".to_owned(),
                "linux/arm/v7".to_owned(),
                "unknown/unknown".to_owned()
            ]))
        );
        let list = serde_json::json!({
            "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
            "manifests": [{"platform": {"os": "linux", "architecture": "arm64"}}]
        });
        assert_eq!(
            index_platforms(&list),
            Some(BTreeSet::from(["linux/arm64".to_owned()]))
        );
    }

    #[test]
    fn index_platforms_rejects_a_single_manifest() {
        let manifest = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "layers": []
        });
        assert_eq!(index_platforms(&manifest), None);
        assert_eq!(index_platforms(&serde_json::json!({"errors": []})), None);
    }

    #[test]
    fn generated_workspace_declares_both_platforms_and_the_bake_peer() {
        let dir = tempfile::tempdir().unwrap();
        let workspace = MultiPlatformWorkspace::generate(dir.path(), 2, "r1");
        let read = |file: &str| std::fs::read_to_string(dir.path().join(file)).unwrap();
        let manifest = read("Cargo.toml");
        assert!(manifest.contains("members = [\"crates/bin01\", \"crates/bin02\"]"));
        assert!(manifest.contains("registry = \"localhost:5000/bench-mp/r1/hive\""));
        assert!(manifest.contains("platforms = [\"linux/amd64\", \"linux/arm64\"]"));
        assert!(manifest.contains(
            "targets = { \"linux/amd64\" = \"x86_64-unknown-linux-musl\", \
             \"linux/arm64\" = \"aarch64-unknown-linux-musl\" }"
        ));
        assert!(read(".cargo/config.toml").contains("linker = \"rust-lld\""));
        let bake = read("docker-bake.hcl");
        assert!(bake.contains("targets = [\"bin01\", \"bin02\"]"));
        assert!(bake.contains("COPY bin/$${TARGETARCH}/bin02 /usr/local/bin/bin02"));
        assert!(bake.contains("tags = [\"localhost:5000/bench-mp/r1/bake/bin02:latest\"]"));
        let script = read(BAKE_SCRIPT);
        assert!(script.contains(
            "cargo build --release --quiet --target x86_64-unknown-linux-musl \
             --target aarch64-unknown-linux-musl\n"
        ));
        assert!(
            script.contains(
                "ln -f target/aarch64-unknown-linux-musl/release/$bin bake/bin/arm64/$bin"
            )
        );

        workspace.push_to("r2");
        assert!(read("Cargo.toml").contains("registry = \"localhost:5000/bench-mp/r2/hive\""));
        assert!(read("docker-bake.hcl").contains("localhost:5000/bench-mp/r2/bake/bin01:latest"));
    }

    #[test]
    fn regenerating_keeps_edited_sources_and_unchanged_mtimes() {
        let dir = tempfile::tempdir().unwrap();
        let workspace = MultiPlatformWorkspace::generate(dir.path(), 1, "r1");
        workspace.set_message("bin01", 7);
        let config = dir.path().join(".cargo/config.toml");
        let before = std::fs::metadata(&config).unwrap().modified().unwrap();
        MultiPlatformWorkspace::generate(dir.path(), 1, "r1");
        let main = std::fs::read_to_string(dir.path().join("crates/bin01/src/main.rs")).unwrap();
        assert!(main.contains("\"bin01 7\""));
        assert_eq!(
            std::fs::metadata(&config).unwrap().modified().unwrap(),
            before
        );
    }

    #[test]
    fn median_takes_the_middle_value() {
        assert_eq!(median(&[3, 1, 2]), 2);
        assert_eq!(median(&[4, 1, 3, 2]), 3);
        assert_eq!(ratio(Duration::from_secs(1), Duration::from_secs(4)), 0.25);
    }

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn phase_times_keep_build_phases_and_the_slowest_image() {
        let lines = [
            r#"{"format_version":1,"type":"phase","phase":"cargo-metadata","duration_secs":0.02}"#,
            r#"{"format_version":1,"type":"cargo-started"}"#,
            r#"{"format_version":1,"type":"phase","phase":"fresh","image":"a","duration_secs":0.03}"#,
            r#"{"format_version":1,"type":"phase","phase":"fresh","image":"b","duration_secs":0.05}"#,
            r#"{"format_version":1,"type":"phase","phase":"solve","image":"a","duration_secs":0.5}"#,
            r#"{"format_version":1,"type":"a-newer-event"}"#,
            "not json",
        ];
        let phases = phase_times(&lines.join("\n"));
        assert_eq!(
            phases,
            BTreeMap::from([
                (Phase::CargoMetadata, ms(20)),
                (Phase::Fresh, ms(50)),
                (Phase::Solve, ms(500)),
            ])
        );
    }

    #[test]
    fn median_phases_count_a_missing_phase_as_zero() {
        let runs = [
            BTreeMap::from([(Phase::Plan, ms(10)), (Phase::Solve, ms(300))]),
            BTreeMap::from([(Phase::Plan, ms(30))]),
            BTreeMap::from([(Phase::Plan, ms(20)), (Phase::Solve, ms(100))]),
        ];
        assert_eq!(
            median_phases(&runs),
            BTreeMap::from([(Phase::Plan, ms(20)), (Phase::Solve, ms(100))])
        );
        assert_eq!(median_phases(&[]), BTreeMap::new());
    }

    #[test]
    fn phase_table_has_a_row_per_phase_seen_in_run_order() {
        let columns = [
            (
                "cold".to_owned(),
                BTreeMap::from([(Phase::Solve, ms(1500)), (Phase::CargoBuild, ms(2000))]),
            ),
            (
                "nothing changed".to_owned(),
                BTreeMap::from([(Phase::CargoBuild, Duration::from_micros(40_250))]),
            ),
        ];
        assert_eq!(
            phase_table("phase (cargo hive, median)", &columns),
            "| phase (cargo hive, median) | cold | nothing changed |\n\
             | --- | ---: | ---: |\n\
             | cargo-build | 2000.0 ms | 40.2 ms |\n\
             | solve (slowest image) | 1500.0 ms | — |\n"
        );
    }

    #[test]
    fn human_bytes_picks_a_unit() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 20), "3.00 MiB");
    }
}
