//! The one conversion from BuildKit's `Control.Status` messages to progress's own [`StatusBatch`]: the wire's
//! conventions (empty strings for "none", stream numbers, signed counters, protobuf timestamps) end here.

use std::time::{Duration, SystemTime};

use hive_build::progress::LogStream;
use hive_proto::control::{StatusResponse, Vertex, VertexLog, VertexStatus, VertexWarning};
use hive_proto::google::protobuf::Timestamp;

use crate::progress::{StatusBatch, StepLog, StepStatus, StepWarning, TaskStatus};

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
