//! The one conversion from BuildKit's `Control.Status` messages to progress's own [`StatusBatch`]: the wire's
//! conventions (empty strings for "none", stream numbers, signed counters, protobuf timestamps) end here.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use hive_build::progress::LogStream;
use hive_proto::control::{StatusResponse, Vertex, VertexLog, VertexStatus, VertexWarning};
use hive_proto::google::protobuf::Timestamp;

use crate::progress::{StatusBatch, StepLog, StepStatus, StepWarning, TaskStatus};

/// How much of a step's output is kept for its error: the last lines are what explains a failure.
const TRAIL_BYTES: usize = 8 * 1024;
/// How many of the last lines a failed step's error shows.
const TRAIL_LINES: usize = 10;

/// What the status stream said of the RUN steps: each step vertex's name, error and last output, so a failed
/// step can be explained once the build has failed.
#[derive(Debug, Default)]
pub(super) struct StepTrail {
    steps: BTreeMap<String, TrailEntry>,
}

#[derive(Debug, Default)]
struct TrailEntry {
    name: String,
    error: Option<String>,
    output: Vec<u8>,
}

/// A RUN step the daemon failed, as its vertex said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FailedStep {
    /// The image the step belongs to (an image of a `hive:` chain may be below the one built).
    pub(crate) image: String,
    /// Its index in that image's `run`.
    pub(crate) index: usize,
    /// The exit code, when the daemon's error names one.
    pub(crate) exit_code: Option<i32>,
    /// The last lines of its output (stdout and stderr, as they came).
    pub(crate) last_lines: Vec<String>,
    /// The daemon's error.
    pub(crate) message: String,
}

impl StepTrail {
    /// Takes what a status message says of step vertices (before it goes to progress).
    pub(super) fn record(&mut self, response: &StatusResponse) {
        for vertex in &response.vertexes {
            if super::steps::step_of_vertex(&vertex.name).is_none() {
                continue;
            }
            let entry = self.steps.entry(vertex.digest.clone()).or_default();
            entry.name.clone_from(&vertex.name);
            if !vertex.error.is_empty() {
                entry.error = Some(vertex.error.clone());
            }
        }
        for log in &response.logs {
            // Logs may come before their vertex: kept for every vertex, and only step vertices are ever read.
            let entry = self.steps.entry(log.vertex.clone()).or_default();
            entry.output.extend_from_slice(&log.msg);
            if entry.output.len() > TRAIL_BYTES {
                let cut = entry.output.len() - TRAIL_BYTES;
                entry.output.drain(..cut);
            }
        }
    }

    /// The step that failed, if one did.
    pub(crate) fn failed(&self) -> Option<FailedStep> {
        self.steps.values().find_map(|entry| {
            let message = entry.error.clone()?;
            let (image, index) = super::steps::step_of_vertex(&entry.name)?;
            let text = String::from_utf8_lossy(&entry.output);
            let lines: Vec<&str> = text.lines().collect();
            let last_lines = lines[lines.len().saturating_sub(TRAIL_LINES)..]
                .iter()
                .map(|line| (*line).to_owned())
                .collect();
            Some(FailedStep {
                image: image.to_owned(),
                index,
                exit_code: exit_code(&message),
                last_lines,
                message,
            })
        })
    }
}

/// `… did not complete successfully: exit code: 3` → 3.
fn exit_code(message: &str) -> Option<i32> {
    let (_, code) = message.rsplit_once("exit code: ")?;
    let digits: String = code
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok()
}

/// One status message as progress sees it.
pub(super) fn batch(response: StatusResponse) -> StatusBatch {
    StatusBatch {
        steps: response.vertexes.into_iter().map(step).collect(),
        tasks: response.statuses.into_iter().map(task).collect(),
        logs: response.logs.into_iter().map(log).collect(),
        warnings: response.warnings.into_iter().map(warning).collect(),
    }
}

fn step(vertex: Vertex) -> StepStatus {
    StepStatus {
        digest: vertex.digest,
        name: vertex.name,
        started: vertex.started.map(time),
        completed: vertex.completed.map(time),
        cached: vertex.cached,
        error: Some(vertex.error).filter(|error| !error.is_empty()),
    }
}

fn task(status: VertexStatus) -> TaskStatus {
    TaskStatus {
        id: status.id,
        step: status.vertex,
        current: u64::try_from(status.current).unwrap_or(0),
        // BuildKit sends 0 when the size is unknown.
        total: u64::try_from(status.total).ok().filter(|&total| total > 0),
        completed: status.completed.is_some(),
    }
}

fn log(log: VertexLog) -> StepLog {
    StepLog {
        step: log.vertex,
        // The stream is a file descriptor: 1 is stdout; 2, and anything else, stderr.
        stream: if log.stream == 1 {
            LogStream::Stdout
        } else {
            LogStream::Stderr
        },
        data: log.msg,
    }
}

fn warning(warning: VertexWarning) -> StepWarning {
    StepWarning {
        step: warning.vertex,
        message: String::from_utf8_lossy(&warning.short).into_owned(),
    }
}

/// A protobuf timestamp as a `SystemTime`; one the platform can't represent reads as the epoch, so a step with a
/// time still counts as started or ended.
fn time(timestamp: Timestamp) -> SystemTime {
    let nanos = i128::from(timestamp.seconds) * 1_000_000_000 + i128::from(timestamp.nanos);
    let magnitude = nanos.unsigned_abs();
    let offset = Duration::new(
        u64::try_from(magnitude / 1_000_000_000).unwrap_or(u64::MAX),
        u32::try_from(magnitude % 1_000_000_000).unwrap_or(0),
    );
    let time = if nanos >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(offset)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(offset)
    };
    time.unwrap_or(SystemTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_step_is_found_with_its_exit_code_and_last_lines() {
        let mut trail = StepTrail::default();
        let output: String = (1..=12).map(|n| format!("line {n}\n")).collect();
        trail.record(&StatusResponse {
            logs: vec![VertexLog {
                vertex: "sha256:aa".to_owned(),
                stream: 1,
                msg: output.into_bytes(),
                ..VertexLog::default()
            }],
            ..StatusResponse::default()
        });
        assert_eq!(trail.failed(), None);
        trail.record(&StatusResponse {
            vertexes: vec![
                Vertex {
                    digest: "sha256:aa".to_owned(),
                    name: "api run[2]: make".to_owned(),
                    error:
                        "process \"/bin/sh -c make\" did not complete successfully: exit code: 3"
                            .to_owned(),
                    ..Vertex::default()
                },
                Vertex {
                    digest: "sha256:bb".to_owned(),
                    name: "copy binary and files".to_owned(),
                    error: "canceled".to_owned(),
                    ..Vertex::default()
                },
            ],
            ..StatusResponse::default()
        });
        let failed = trail.failed().unwrap();
        assert_eq!((failed.image.as_str(), failed.index), ("api", 2));
        assert_eq!(failed.exit_code, Some(3));
        assert_eq!(failed.last_lines.len(), TRAIL_LINES);
        assert_eq!(failed.last_lines.last().unwrap(), "line 12");
        assert_eq!(failed.last_lines[0], "line 3");
    }

    fn at(seconds: i64, nanos: i32) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos })
    }

    fn epoch_plus(seconds: u64, nanos: u32) -> Option<SystemTime> {
        Some(SystemTime::UNIX_EPOCH + Duration::new(seconds, nanos))
    }

    #[test]
    fn every_field_progress_uses_is_converted() {
        let response = StatusResponse {
            vertexes: vec![
                Vertex {
                    digest: "sha256:aa".to_owned(),
                    name: "exec /worker".to_owned(),
                    inputs: vec!["sha256:bb".to_owned()],
                    started: at(1_700_000_000, 250_000_000),
                    completed: at(1_700_000_002, 0),
                    error: "exit code: 1".to_owned(),
                    ..Vertex::default()
                },
                Vertex {
                    digest: "sha256:bb".to_owned(),
                    name: "docker-image://busybox".to_owned(),
                    cached: true,
                    started: at(5, 0),
                    completed: at(5, 0),
                    ..Vertex::default()
                },
                Vertex {
                    digest: "sha256:cc".to_owned(),
                    ..Vertex::default()
                },
            ],
            statuses: vec![
                VertexStatus {
                    id: "transferring hello:".to_owned(),
                    vertex: "sha256:cc".to_owned(),
                    name: "ignored".to_owned(),
                    current: 1000,
                    total: 4096,
                    started: at(3, 0),
                    completed: at(4, 0),
                    ..VertexStatus::default()
                },
                VertexStatus {
                    id: "resolve".to_owned(),
                    vertex: "sha256:cc".to_owned(),
                    current: -1,
                    total: 0,
                    ..VertexStatus::default()
                },
            ],
            logs: vec![
                VertexLog {
                    vertex: "sha256:aa".to_owned(),
                    stream: 1,
                    msg: b"out\n".to_vec(),
                    timestamp: at(1, 0),
                },
                VertexLog {
                    vertex: "sha256:aa".to_owned(),
                    stream: 2,
                    msg: b"err\xff".to_vec(),
                    timestamp: None,
                },
            ],
            warnings: vec![VertexWarning {
                vertex: "sha256:aa".to_owned(),
                level: 1,
                short: b"running as root \xff".to_vec(),
                detail: vec![b"the detail".to_vec()],
                url: "https://example.com".to_owned(),
                ..VertexWarning::default()
            }],
        };
        let expected = StatusBatch {
            steps: vec![
                StepStatus {
                    digest: "sha256:aa".to_owned(),
                    name: "exec /worker".to_owned(),
                    started: epoch_plus(1_700_000_000, 250_000_000),
                    completed: epoch_plus(1_700_000_002, 0),
                    cached: false,
                    error: Some("exit code: 1".to_owned()),
                },
                StepStatus {
                    digest: "sha256:bb".to_owned(),
                    name: "docker-image://busybox".to_owned(),
                    started: epoch_plus(5, 0),
                    completed: epoch_plus(5, 0),
                    cached: true,
                    error: None,
                },
                StepStatus {
                    digest: "sha256:cc".to_owned(),
                    name: String::new(),
                    started: None,
                    completed: None,
                    cached: false,
                    error: None,
                },
            ],
            tasks: vec![
                TaskStatus {
                    id: "transferring hello:".to_owned(),
                    step: "sha256:cc".to_owned(),
                    current: 1000,
                    total: Some(4096),
                    completed: true,
                },
                TaskStatus {
                    id: "resolve".to_owned(),
                    step: "sha256:cc".to_owned(),
                    current: 0,
                    total: None,
                    completed: false,
                },
            ],
            logs: vec![
                StepLog {
                    step: "sha256:aa".to_owned(),
                    stream: LogStream::Stdout,
                    data: b"out\n".to_vec(),
                },
                StepLog {
                    step: "sha256:aa".to_owned(),
                    stream: LogStream::Stderr,
                    data: b"err\xff".to_vec(),
                },
            ],
            warnings: vec![StepWarning {
                step: "sha256:aa".to_owned(),
                message: "running as root \u{fffd}".to_owned(),
            }],
        };
        assert_eq!(batch(response), expected);
    }

    #[test]
    fn an_empty_message_is_an_empty_batch() {
        assert_eq!(batch(StatusResponse::default()), StatusBatch::default());
    }

    #[test]
    fn timestamps_before_the_epoch_and_out_of_range() {
        assert_eq!(
            Some(time(Timestamp {
                seconds: -2,
                nanos: 500_000_000
            })),
            SystemTime::UNIX_EPOCH.checked_sub(Duration::from_millis(1500))
        );
        let far = time(Timestamp {
            seconds: i64::MAX,
            nanos: 999_999_999,
        });
        assert!(far > time(Timestamp::default()));
        // Before the earliest time the platform holds: the epoch, not a panic.
        let before_all = Timestamp {
            seconds: i64::MIN,
            nanos: -1,
        };
        assert_eq!(time(before_all), SystemTime::UNIX_EPOCH);
    }
}
