//! `cargo hive doctor`: which BuildKit, why, what it can do, and whether a real solve works.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;

use crate::buildkit::{Attempt, Buildkit, ConnectError, ConnectOptions, DockerFacts};
use crate::errors::{HiveError, exit_codes};
use crate::term::Term;

/// Version of doctor's JSON output.
const FORMAT_VERSION: u32 = 1;
/// How long the live solve may take (a cold daemon may need a moment).
const LIVE_CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything doctor found, as printed with `--format json`.
#[derive(Debug, Serialize)]
struct Report {
    format_version: u32,
    ready: bool,
    endpoint: Option<Endpoint>,
    candidates: Vec<CandidateReport>,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Endpoint {
    address: String,
    origin: String,
    reason: String,
    transport: String,
    buildkit_version: Option<String>,
    /// Why there is no version, when there is none.
    version_note: Option<String>,
    daemon: DaemonReport,
    workers: Vec<Worker>,
    exporters: Vec<&'static str>,
    live_check: LiveCheck,
}

#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum DaemonReport {
    Buildkitd,
    Docker {
        version: String,
        storage_driver: String,
        containerd_image_store: bool,
    },
    DockerUnknown {
        error: String,
    },
}

#[derive(Debug, Serialize)]
struct Worker {
    id: String,
    platforms: Vec<String>,
    labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
struct LiveCheck {
    ok: bool,
    millis: u64,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct CandidateReport {
    address: String,
    origin: String,
    ok: bool,
    millis: Option<u64>,
    error: Option<String>,
}

/// What `cargo hive doctor` is asked.
#[derive(Debug, Clone)]
pub(crate) struct DoctorRequest {
    /// `--manifest-path`: whose workspace's connection settings apply (none outside a workspace).
    pub(crate) manifest_path: Option<std::path::PathBuf>,
    /// How to reach BuildKit, before the manifest's settings are added.
    pub(crate) connect: ConnectOptions,
    /// Versioned JSON on stdout instead of text.
    pub(crate) json: bool,
}

/// Runs doctor; exit 0 when the daemon is ready, 1 otherwise.
pub(crate) async fn run(request: &DoctorRequest, term: &Term) -> Result<i32, HiveError> {
    let settings = crate::config::connection_settings(request.manifest_path.as_deref())?;
    let mut options = request.connect.clone();
    options.manifest = settings.map(|settings| settings.to_buildkit());
    // An error here is reported by the connection below, in the chosen format.
    for warning in options.check_tls().unwrap_or_default() {
        term.warning(&warning);
    }
    let report = match Buildkit::connect(&options).await {
        Ok(buildkit) => examine(&buildkit).await,
        Err(err) if !request.json => return Err(err.into()),
        Err(err) => {
            let candidates = match &err {
                ConnectError::NothingReachable { tried } => tried
                    .iter()
                    .map(|line| CandidateReport {
                        address: line.split(' ').next().unwrap_or_default().to_owned(),
                        origin: String::new(),
                        ok: false,
                        millis: None,
                        error: Some(line.clone()),
                    })
                    .collect(),
                _ => Vec::new(),
            };
            Report {
                format_version: FORMAT_VERSION,
                ready: false,
                endpoint: None,
                candidates,
                error: Some(err.to_string()),
            }
        }
    };
    let code = if report.ready {
        exit_codes::SUCCESS
    } else {
        exit_codes::FAILURE
    };
    if request.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &report)
            .map_err(|err| HiveError::Output(err.into()))?;
        writeln!(out).map_err(HiveError::Output)?;
    } else {
        print_human(&report, term).map_err(HiveError::Output)?;
    }
    Ok(code)
}

async fn examine(buildkit: &Buildkit) -> Report {
    let candidates = buildkit.attempts.iter().map(candidate_report).collect();
    let facts = &buildkit.daemon;
    let daemon = match &facts.docker {
        None => DaemonReport::Buildkitd,
        Some(DockerFacts::Known(info)) => DaemonReport::Docker {
            version: info.version.clone(),
            storage_driver: info.driver.clone(),
            containerd_image_store: info.containerd_store,
        },
        Some(DockerFacts::Unreadable(error)) => DaemonReport::DockerUnknown {
            error: error.clone(),
        },
    };
    let workers: Vec<Worker> = buildkit
        .workers()
        .into_iter()
        .map(|worker| Worker {
            id: worker.id,
            platforms: worker.platforms,
            labels: worker.labels,
        })
        .collect();
    let (elapsed, result) = buildkit.live_check(LIVE_CHECK_TIMEOUT).await;
    let live_check = LiveCheck {
        ok: result.is_ok(),
        millis: elapsed.as_millis() as u64,
        error: result.err().map(|err| err.to_string()),
    };
    let ready = live_check.ok;
    Report {
        format_version: FORMAT_VERSION,
        ready,
        endpoint: Some(Endpoint {
            address: buildkit.address.to_string(),
            origin: buildkit.origin.key().to_owned(),
            reason: reason(buildkit),
            transport: buildkit.address.transport().to_owned(),
            buildkit_version: facts.version.clone(),
            version_note: facts.version_note.clone(),
            exporters: facts.exporters(),
            daemon,
            workers,
            live_check,
        }),
        candidates,
        error: None,
    }
}

fn reason(buildkit: &Buildkit) -> String {
    if buildkit.origin.is_explicit() {
        format!("given by {}", buildkit.origin)
    } else {
        let failed = buildkit.attempts.len() - 1;
        if failed == 0 {
            format!("auto-detected: the {} answered first", buildkit.origin)
        } else {
            format!(
                "auto-detected: the {} answered after {failed} earlier candidate{} did not",
                buildkit.origin,
                if failed == 1 { "" } else { "s" }
            )
        }
    }
}

fn candidate_report(attempt: &Attempt) -> CandidateReport {
    CandidateReport {
        address: attempt.address.clone(),
        origin: attempt.origin.key().to_owned(),
        ok: attempt.outcome.is_ok(),
        millis: attempt
            .outcome
            .as_ref()
            .ok()
            .map(|elapsed| elapsed.as_millis() as u64),
        error: attempt.outcome.as_ref().err().map(ToString::to_string),
    }
}

fn print_human(report: &Report, term: &Term) -> std::io::Result<()> {
    use owo_colors::OwoColorize;
    let color = term.stdout_color();
    let paint = |text: &str, good: bool| -> String {
        match (color, good) {
            (false, _) => text.to_owned(),
            (true, true) => text.green().bold().to_string(),
            (true, false) => text.red().bold().to_string(),
        }
    };
    let mut out = std::io::stdout().lock();
    let Some(endpoint) = &report.endpoint else {
        writeln!(
            out,
            "{} {}",
            paint("not ready:", false),
            report.error.as_deref().unwrap_or("unknown error")
        )?;
        return Ok(());
    };
    writeln!(out, "BuildKit      {}", endpoint.address)?;
    writeln!(out, "  chosen      {}", endpoint.reason)?;
    writeln!(out, "  transport   {}", endpoint.transport)?;
    match (&endpoint.buildkit_version, &endpoint.version_note) {
        (Some(version), _) => writeln!(out, "  version     {version}")?,
        (None, Some(note)) => writeln!(out, "  version     unknown: {note}")?,
        (None, None) => writeln!(out, "  version     unknown")?,
    }
    match &endpoint.daemon {
        DaemonReport::Buildkitd => writeln!(out, "  daemon      buildkitd")?,
        DaemonReport::Docker {
            version,
            storage_driver,
            containerd_image_store,
        } => writeln!(
            out,
            "  daemon      Docker {version} ({})",
            if *containerd_image_store {
                "containerd image store".to_owned()
            } else {
                format!("{storage_driver} graph driver, no containerd image store")
            }
        )?,
        DaemonReport::DockerUnknown { error } => {
            writeln!(out, "  daemon      Docker (its /info failed: {error})")?
        }
    }
    print_candidates(&mut out, &report.candidates, &paint)?;
    writeln!(out, "Workers")?;
    for worker in &endpoint.workers {
        writeln!(out, "  {}  {}", worker.id, worker.platforms.join(", "))?;
        for (key, value) in &worker.labels {
            writeln!(out, "      {key}={value}")?;
        }
    }
    writeln!(out, "Exporters     {}", endpoint.exporters.join(", "))?;
    if let DaemonReport::Docker {
        containerd_image_store: false,
        ..
    } = endpoint.daemon
    {
        writeln!(
            out,
            "              (turn on Docker's containerd image store for image, oci and docker: \
             {{\"features\":{{\"containerd-snapshotter\":true}}}} in daemon.json)"
        )?;
    }
    match &endpoint.live_check.error {
        None => writeln!(
            out,
            "Live check    {} a file on scratch solved in {} ms",
            paint("ok", true),
            endpoint.live_check.millis
        )?,
        Some(error) => writeln!(out, "Live check    {} {error}", paint("failed", false))?,
    }
    if report.ready {
        writeln!(out, "{}", paint("Ready.", true))?;
    } else {
        writeln!(out, "{}", paint("Not ready.", false))?;
    }
    Ok(())
}

/// The candidates doctor tried, one line each.
fn print_candidates(
    out: &mut impl Write,
    candidates: &[CandidateReport],
    paint: &impl Fn(&str, bool) -> String,
) -> std::io::Result<()> {
    writeln!(out, "Candidates")?;
    for candidate in candidates {
        let address = if candidate.address.is_empty() {
            "(invalid)"
        } else {
            candidate.address.as_str()
        };
        match (&candidate.millis, &candidate.error) {
            (Some(millis), _) => writeln!(
                out,
                "  {} {address} ({}) answered in {millis} ms",
                paint("ok", true),
                candidate.origin
            )?,
            (None, error) => writeln!(
                out,
                "  {} {address} ({}): {}",
                paint("--", false),
                candidate.origin,
                error.as_deref().unwrap_or_default()
            )?,
        }
    }
    Ok(())
}
