//! A scripted build (two images, one failing) played through the tracker and every renderer, with BuildKit status
//! batches written by hand: resends, steps announced before they start, a cached step, a log line split across
//! batches, a step that errors.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hive_build::progress::{Event as Out, LogStream, Record};

use super::display::Display;
use super::json::Json;
use super::plain::Plain;
use super::reporter::Clock;
use super::reporter::{Buffer, Sink};
use super::tracker::Tracker;
use super::tty::Tty;
use super::{EngineEvent, Progress, StatusBatch, StepLog, StepStatus, StepWarning, TaskStatus};

const DEBIAN: &str = "docker.io/library/debian:bookworm-slim";

fn digest(n: u8) -> String {
    format!("sha256:{}", format!("{n:02x}").repeat(32))
}

/// Daemon time: milliseconds after an arbitrary epoch.
fn ts(ms: u64) -> Option<SystemTime> {
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(ms))
}

fn vertex(n: u8, name: &str) -> StepStatus {
    StepStatus {
        digest: digest(n),
        name: name.to_owned(),
        ..StepStatus::default()
    }
}

fn running(n: u8, name: &str, start: u64) -> StepStatus {
    StepStatus {
        started: ts(start),
        ..vertex(n, name)
    }
}

fn done(n: u8, name: &str, start: u64, end: u64) -> StepStatus {
    StepStatus {
        completed: ts(end),
        ..running(n, name, start)
    }
}

fn log(n: u8, stream: LogStream, msg: &str) -> StepLog {
    StepLog {
        step: digest(n),
        stream,
        data: msg.as_bytes().to_vec(),
    }
}

/// A task of step `n` with no known total; `done` when it has finished.
fn task(n: u8, id: &str, current: u64, done: bool) -> TaskStatus {
    TaskStatus {
        id: id.to_owned(),
        step: digest(n),
        current,
        total: None,
        completed: done,
    }
}

fn batch(steps: Vec<StepStatus>) -> StatusBatch {
    StatusBatch {
        steps,
        ..StatusBatch::default()
    }
}

enum Step {
    Event(u64, EngineEvent),
    Status(u64, &'static str, StatusBatch),
    /// A tty frame at this time.
    Tick(u64),
}

fn script() -> Vec<Step> {
    let meta = format!("[internal] load metadata for {DEBIAN}");
    let base = format!("docker-image://{DEBIAN}@{}", digest(0xee));
    let copy_hello = "copy /hello /usr/local/bin/hello";
    let exec = "exec /worker --self-test";
    let started = |image: &str| EngineEvent::ImageStarted {
        image: image.to_owned(),
        reference: format!("docker.io/library/{image}:0.1.0"),
        platforms: vec!["linux/amd64".to_owned()],
    };
    vec![
        Step::Event(0, EngineEvent::CargoStarted),
        Step::Event(3000, EngineEvent::CargoFinished { success: true }),
        Step::Event(3000, started("hello")),
        Step::Event(3001, started("worker")),
        // The whole graph, announced before anything runs.
        Step::Status(
            3010,
            "hello",
            batch(vec![
                vertex(1, &meta),
                vertex(2, &base),
                vertex(3, "local://hello"),
                vertex(4, copy_hello),
            ]),
        ),
        Step::Status(3020, "hello", batch(vec![done(1, &meta, 0, 300)])),
        // The same digest in another image's solve is another step.
        Step::Status(3030, "worker", batch(vec![running(1, &meta, 10)])),
        Step::Status(
            3330,
            "hello",
            batch(vec![
                StepStatus {
                    cached: true,
                    ..done(2, &base, 310, 310)
                },
                running(3, "local://hello", 320),
            ]),
        ),
        Step::Status(
            3340,
            "hello",
            StatusBatch {
                tasks: vec![task(3, "transferring hello:", 1000, false)],
                ..StatusBatch::default()
            },
        ),
        Step::Event(
            3350,
            EngineEvent::BytesSent {
                image: "hello".to_owned(),
                bytes_sent: 1000,
            },
        ),
        Step::Tick(3400),
        // A resend of a running step and a finished task: only the task is news.
        Step::Status(
            3450,
            "hello",
            StatusBatch {
                steps: vec![running(3, "local://hello", 320)],
                tasks: vec![task(3, "transferring hello:", 1_200_000, true)],
                ..StatusBatch::default()
            },
        ),
        Step::Status(3460, "worker", batch(vec![done(1, &meta, 10, 450)])),
        Step::Status(
            3470,
            "hello",
            batch(vec![done(3, "local://hello", 320, 450), running(4, copy_hello, 460)]),
        ),
        Step::Status(
            3480,
            "worker",
            StatusBatch {
                steps: vec![running(5, exec, 470)],
                logs: vec![log(5, LogStream::Stdout, "self-test: starting\nself-test: che")],
                warnings: vec![StepWarning {
                    step: digest(5),
                    message: "running as root".to_owned(),
                }],
                ..StatusBatch::default()
            },
        ),
        Step::Status(
            3500,
            "hello",
            StatusBatch {
                steps: vec![done(4, copy_hello, 460, 520), done(1, &meta, 0, 300)],
                ..StatusBatch::default()
            },
        ),
        Step::Tick(3500),
        Step::Status(
            3600,
            "worker",
            StatusBatch {
                steps: vec![StepStatus {
                    error: Some(
                        "process \"/worker --self-test\" did not complete successfully: exit code: 1"
                            .to_owned(),
                    ),
                    ..done(5, exec, 470, 590)
                }],
                logs: vec![
                    log(5, LogStream::Stdout, "cking\r\n"),
                    log(5, LogStream::Stderr, "error: no network"),
                ],
                ..StatusBatch::default()
            },
        ),
        Step::Event(
            3600,
            EngineEvent::BytesSent {
                image: "hello".to_owned(),
                bytes_sent: 1_200_000,
            },
        ),
        Step::Event(
            3620,
            EngineEvent::ImageFinished {
                image: "hello".to_owned(),
                digest: Some(digest(0xab)),
                output: "target/hive/hello.oci.tar".to_owned(),
            },
        ),
        Step::Event(
            3650,
            EngineEvent::ImageFailed {
                image: "worker".to_owned(),
                error: "failed to solve: process \"/worker --self-test\" did not complete successfully: exit code: 1"
                    .to_owned(),
            },
        ),
        Step::Event(3700, EngineEvent::BuildFinished { success: true }),
    ]
}

/// Plays the script through the tracker into `renderer`; returns the events.
fn play(renderer: &mut dyn Sink) -> Vec<Out> {
    let mut tracker = Tracker::default();
    let mut all = Vec::new();
    let mut events = Vec::new();
    let mut now = Duration::ZERO;
    for step in script() {
        match step {
            Step::Event(ms, event) => {
                now = Duration::from_millis(ms);
                tracker.event(now, event, &mut events);
            }
            Step::Status(ms, image, response) => {
                now = Duration::from_millis(ms);
                tracker.status(now, image, response, &mut events);
            }
            Step::Tick(ms) => {
                now = Duration::from_millis(ms);
                renderer.refresh(now, &tracker).unwrap();
                continue;
            }
        }
        for event in events.drain(..) {
            renderer.event(&event, &tracker).unwrap();
            all.push(event);
        }
    }
    renderer.finish(now, &tracker).unwrap();
    all
}

#[test]
fn vertex_transitions_are_emitted_once() {
    struct Discard;
    impl Sink for Discard {
        fn event(&mut self, _: &Out, _: &Tracker) -> std::io::Result<()> {
            Ok(())
        }
        fn finish(&mut self, _: Duration, _: &Tracker) -> std::io::Result<()> {
            Ok(())
        }
    }
    let events = play(&mut Discard);
    let summary: Vec<String> = events
        .iter()
        .filter_map(|event| match event {
            Out::VertexStarted { image, vertex, .. } => Some(format!("{image} #{vertex} started")),
            Out::VertexCached { image, vertex } => Some(format!("{image} #{vertex} cached")),
            Out::VertexCompleted {
                image,
                vertex,
                duration_secs,
            } => Some(format!("{image} #{vertex} completed {duration_secs:.2}")),
            Out::VertexErrored {
                image,
                vertex,
                duration_secs,
                ..
            } => Some(format!("{image} #{vertex} errored {duration_secs:.2?}")),
            Out::VertexLog {
                image,
                vertex,
                stream,
                line,
            } => Some(format!("{image} #{vertex} {stream:?} {line:?}")),
            Out::VertexProgress {
                image,
                vertex,
                current,
                completed,
                ..
            } => Some(format!("{image} #{vertex} task {current} {completed}")),
            Out::VertexWarning { image, vertex, .. } => Some(format!("{image} #{vertex} warning")),
            _ => None,
        })
        .collect();
    assert_eq!(
        summary,
        [
            "hello #1 started",
            "hello #1 completed 0.30",
            "worker #2 started",
            "hello #3 started",
            "hello #3 cached",
            "hello #4 started",
            "hello #4 task 1000 false",
            "hello #4 task 1200000 true",
            "worker #2 completed 0.44",
            "hello #4 completed 0.13",
            "hello #5 started",
            "worker #6 started",
            "worker #6 Stdout \"self-test: starting\"",
            "worker #6 warning",
            "hello #5 completed 0.06",
            "worker #6 Stdout \"self-test: checking\"",
            "worker #6 Stderr \"error: no network\"",
            "worker #6 errored Some(0.12)",
        ]
    );
    // Each byte count once, and the total in the image's result.
    let sent: Vec<u64> = events
        .iter()
        .filter_map(|event| match event {
            Out::BytesSent { bytes_sent, .. } => Some(*bytes_sent),
            _ => None,
        })
        .collect();
    assert_eq!(sent, [1000, 1_200_000]);
    assert!(events.contains(&Out::BuildFinished {
        success: false,
        images_finished: 1,
        images_failed: 1,
        duration_secs: 3.7,
    }));
}

#[test]
fn plain_output() {
    let out = Buffer::default();
    play(&mut Plain::new(out.clone(), Display { redact: false }));
    assert_eq!(
        out.text(),
        r#"cargo build DONE 3.0s
[hello] building docker.io/library/hello:0.1.0 for linux/amd64
[worker] building docker.io/library/worker:0.1.0 for linux/amd64

#1 [hello] [internal] load metadata for docker.io/library/debian:bookworm-slim
#1 DONE 0.3s

#2 [worker] [internal] load metadata for docker.io/library/debian:bookworm-slim

#3 [hello] docker-image://docker.io/library/debian:bookworm-slim@sha256:eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee
#3 CACHED

#4 [hello] local://hello
#4 transferring hello: 1.20MB done

#2 [worker] [internal] load metadata for docker.io/library/debian:bookworm-slim
#2 DONE 0.4s

#4 [hello] local://hello
#4 DONE 0.1s

#5 [hello] copy /hello /usr/local/bin/hello

#6 [worker] exec /worker --self-test
#6 self-test: starting
#6 WARN: running as root

#5 [hello] copy /hello /usr/local/bin/hello
#5 DONE 0.1s

#6 [worker] exec /worker --self-test
#6 self-test: checking
#6 error: no network
#6 ERROR: process "/worker --self-test" did not complete successfully: exit code: 1

[hello] DONE 0.6s -> target/hive/hello.oci.tar, sha256:abababababababababababababababababababababababababababababababab, sent 1.20MB
[worker] ERROR: failed to solve: process "/worker --self-test" did not complete successfully: exit code: 1
build ERROR: 1 of 2 images failed
"#
    );
}

#[test]
fn plain_output_redacted() {
    let out = Buffer::default();
    play(&mut Plain::new(out.clone(), Display { redact: true }));
    let text = out.text();
    assert!(
        text.contains(
            "#3 [hello] docker-image://docker.io/library/debian:bookworm-slim@<digest>\n"
        )
    );
    assert!(text.contains("#1 DONE <dur>\n"));
    assert!(
        text.contains("[hello] DONE <dur> -> target/hive/hello.oci.tar, <digest>, sent 1.20MB\n")
    );
    assert!(!text.contains("sha256:"), "{text}");
    assert!(!text.contains('\x1b'), "plain output has no escapes");
}

#[test]
fn tty_output() {
    let out = Buffer::default();
    play(&mut Tty::new(
        out.clone(),
        Display { redact: false },
        false,
        Some((100, 50)),
    ));
    let text = out.text().replace('\x1b', "ESC").replace('\r', "<CR>");
    assert_eq!(
        text,
        r#"    Building hello    0.4s  [2/4] local://hello 0.1s
    Building worker   0.4s  [0/1] [internal] load metadata for docker.io/library/debian:bookworm-s…
ESC[2A<CR>ESC[Jwarning: [worker] running as root
    Building hello    0.5s  [4/4]
    Building worker   0.5s  [1/2] exec /worker --self-test 0.0s
ESC[2A<CR>ESC[J------
 > [worker] exec /worker --self-test:
   self-test: starting
   self-test: checking
   error: no network
------
       Built hello    0.6s  target/hive/hello.oci.tar, 4 steps, 1 cached
      Failed worker   0.6s  exec /worker --self-test: failed to solve: process "/worker --self-tes…
error: 1 of 2 images failed
"#
    );
}

#[test]
fn tty_colour_and_width() {
    let out = Buffer::default();
    play(&mut Tty::new(
        out.clone(),
        Display { redact: true },
        true,
        Some((40, 50)),
    ));
    let text = out.text();
    assert!(
        text.contains("\x1b[32;1m       Built\x1b[0m hello   <dur>  target/hiv…\n"),
        "{text:?}"
    );
    for line in text.lines() {
        let visible = strip_escapes(line);
        assert!(
            visible.chars().count() < 40,
            "{visible:?} is wider than the terminal"
        );
    }
}

#[test]
fn tty_frame_fits_the_screen() {
    let out = Buffer::default();
    play(&mut Tty::new(
        out.clone(),
        Display { redact: true },
        false,
        Some((80, 3)),
    ));
    let text = out.text();
    let (live, last) = text.rsplit_once("------\n").unwrap();
    assert!(live.starts_with("           … 2 more images\n"), "{text}");
    assert!(
        last.starts_with("       Built hello   <dur>  target/hive/hello.oci.tar"),
        "{text}"
    );
    assert!(last.contains("      Failed worker  <dur>"), "{text}");
}

fn strip_escapes(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters final-byte
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn json_lines_round_trip() {
    let out = Buffer::default();
    let events = play(&mut Json::new(out.clone()));
    let text = out.text();
    let decoded: Vec<Out> = text
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(value["format_version"], 1);
            assert!(value["type"].is_string());
            serde_json::from_str::<Record>(line).unwrap().event
        })
        .collect();
    assert_eq!(decoded, events);
    assert_eq!(
        text.lines().next().unwrap(),
        r#"{"format_version":1,"type":"cargo-started"}"#
    );
    assert!(text.contains(
        r#"{"format_version":1,"type":"vertex-log","image":"worker","vertex":6,"stream":"stderr","line":"error: no network"}"#
    ));
    assert!(events.contains(&Out::VertexLog {
        image: "worker".into(),
        vertex: 6,
        stream: LogStream::Stdout,
        line: "self-test: checking".into(),
    }));
}

/// A clock the test moves by hand.
#[derive(Default)]
struct ManualClock(Mutex<Duration>);

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        *self.0.lock().unwrap()
    }
}

#[tokio::test]
async fn progress_from_many_tasks() {
    let out = Buffer::default();
    let clock = Arc::new(ManualClock::default());
    let (progress, handle) = Progress::with_renderer(
        Box::new(Plain::new(out.clone(), Display { redact: false })),
        clock.clone(),
    );
    *clock.0.lock().unwrap() = Duration::from_millis(1500);
    let tasks: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|image| {
            let progress = progress.clone();
            tokio::spawn(async move {
                progress.event(EngineEvent::ImageStarted {
                    image: image.to_owned(),
                    reference: format!("{image}:latest"),
                    platforms: vec!["linux/arm64".to_owned()],
                });
                progress.status(image, batch(vec![done(7, "copy", 0, 250)]));
                progress.event(EngineEvent::ImageFinished {
                    image: image.to_owned(),
                    digest: None,
                    output: "loaded".to_owned(),
                });
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    progress.event(EngineEvent::BuildFinished { success: true });
    handle.finish().await;
    // After `finish`, nothing more is rendered.
    progress.event(EngineEvent::CargoStarted);
    let text = out.text();
    for image in ["a", "b", "c"] {
        assert!(
            text.contains(&format!("[{image}] DONE 0.0s -> loaded, sent 0B\n")),
            "{text}"
        );
        assert!(text.contains(&format!("[{image}] copy\n")), "{text}");
    }
    assert!(text.ends_with("build DONE 3 images in 1.5s\n"), "{text}");
    assert_eq!(text.matches("DONE 0.2s").count(), 3, "{text}");
    Progress::disabled().event(EngineEvent::CargoStarted);
}

#[test]
fn a_solve_phase_is_split_into_solve_and_the_daemons_export() {
    use hive_build::progress::Phase as Stage;
    let mut tracker = Tracker::default();
    let mut events = Vec::new();
    let phase = |phase, image: Option<&str>, ms| EngineEvent::Phase {
        phase,
        image: image.map(str::to_owned),
        duration: Duration::from_millis(ms),
    };
    tracker.event(Duration::ZERO, phase(Stage::Connect, None, 40), &mut events);
    tracker.event(
        Duration::ZERO,
        EngineEvent::ImageStarted {
            image: "api".into(),
            reference: "api:1".into(),
            platforms: vec!["linux/amd64".into()],
        },
        &mut events,
    );
    tracker.status(
        Duration::ZERO,
        "api",
        batch(vec![
            done(1, "copy /api /usr/local/bin/api", 0, 200),
            done(2, "exporting to image", 200, 500),
            done(3, "exporting to oci image format", 500, 750),
        ]),
        &mut events,
    );
    // Another image's export is not this one's.
    tracker.status(
        Duration::ZERO,
        "web",
        batch(vec![done(4, "exporting to image", 0, 900)]),
        &mut events,
    );
    events.clear();
    tracker.event(
        Duration::ZERO,
        phase(Stage::Solve, Some("api"), 1000),
        &mut events,
    );
    // An image without exporter steps (or with the daemon's clock ahead of ours) never gets a negative solve.
    tracker.event(
        Duration::ZERO,
        phase(Stage::Solve, Some("web"), 500),
        &mut events,
    );
    tracker.event(
        Duration::ZERO,
        phase(Stage::Solve, Some("db"), 300),
        &mut events,
    );
    let phases: Vec<(Stage, Option<&str>, u64)> = (events.iter())
        .map(|event| match event {
            Out::Phase {
                phase,
                image,
                duration_secs,
            } => (
                *phase,
                image.as_deref(),
                (duration_secs * 1000.0).round() as u64,
            ),
            other => panic!("not a phase: {other:?}"),
        })
        .collect();
    assert_eq!(
        phases,
        [
            (Stage::Solve, Some("api"), 450),
            (Stage::Export, Some("api"), 550),
            (Stage::Solve, Some("web"), 0),
            (Stage::Export, Some("web"), 500),
            (Stage::Solve, Some("db"), 300),
            (Stage::Export, Some("db"), 0),
        ]
    );
}

#[test]
fn phases_pass_through_to_json_and_stay_out_of_plain() {
    use hive_build::progress::Phase as Stage;
    let mut tracker = Tracker::default();
    let mut events = Vec::new();
    tracker.event(
        Duration::ZERO,
        EngineEvent::Phase {
            phase: Stage::CargoMetadata,
            image: None,
            duration: Duration::from_millis(25),
        },
        &mut events,
    );
    assert_eq!(
        events,
        [Out::Phase {
            phase: Stage::CargoMetadata,
            image: None,
            duration_secs: 0.025
        }]
    );
    let json = Buffer::default();
    let mut renderer = Json::new(json.clone());
    let plain = Buffer::default();
    let mut human = Plain::new(plain.clone(), Display { redact: false });
    for event in &events {
        renderer.event(event, &tracker).unwrap();
        human.event(event, &tracker).unwrap();
    }
    assert_eq!(
        json.text(),
        "{\"format_version\":1,\"type\":\"phase\",\"phase\":\"cargo-metadata\",\"duration_secs\":0.025}\n"
    );
    assert_eq!(plain.text(), "");
}
