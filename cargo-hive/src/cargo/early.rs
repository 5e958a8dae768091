//! The cargo build started before the plan says what to build: with the arguments the last successful build ran
//! cargo with in this directory (remembered in `target/hive/.fresh/.cargo-run.json`), while `cargo metadata` reads
//! the workspace. The build uses it only when the plan asks for exactly that run; any other run is killed (with
//! rustc and build scripts) and waited for, and the plan's own run starts. Its output is held until then: nothing
//! of a run that is not used is shown.
//!
//! Started only when stderr is not a terminal, where cargo draws no progress bar that a pipe would take away.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

use super::Cargo;
use crate::interrupt::ChildGroup;

/// The last successful build's cargo run in a directory.
#[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct LastRun {
    program: PathBuf,
    dir: PathBuf,
    args: Vec<String>,
}

/// A running cargo whose stdout lines and stderr are taken as they come (so it never waits on a full pipe, even
/// while the plan's own cargo runs wait on its lock), held until it is used.
pub(crate) struct CargoRun {
    child: Child,
    group: ChildGroup,
    lines: mpsc::UnboundedReceiver<String>,
    /// Lets the held stderr through, and everything after it as it comes; `None` once sent or when stderr is
    /// inherited.
    release: Option<oneshot::Sender<()>>,
    stderr: Option<tokio::task::JoinHandle<()>>,
}

impl CargoRun {
    /// Starts `program args` in `dir`, in a process group of its own; stderr is held (`hold_stderr`) or inherited.
    pub(crate) fn start(
        program: &OsString,
        dir: &Path,
        args: &[String],
        hold_stderr: bool,
    ) -> std::io::Result<CargoRun> {
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if hold_stderr {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .kill_on_drop(true);
        let (mut child, group) = crate::interrupt::spawn_async(&mut command)?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (send, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let (release, stderr) = match child.stderr.take() {
            Some(stderr) => {
                let (release, released) = oneshot::channel();
                (
                    Some(release),
                    Some(tokio::spawn(hold_then_forward(stderr, released))),
                )
            }
            None => (None, None),
        };
        Ok(CargoRun {
            child,
            group,
            lines,
            release,
            stderr,
        })
    }

    /// The next line cargo wrote to stdout; `None` at its end. Held stderr is let through from the first call.
    pub(crate) async fn next_line(&mut self) -> Option<String> {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
        self.lines.recv().await
    }

    /// Waits for cargo to exit, and for its held stderr to be written out.
    pub(crate) async fn wait(mut self) -> std::io::Result<std::process::ExitStatus> {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
        let status = self.child.wait().await?;
        self.group.reaped();
        if let Some(stderr) = self.stderr.take() {
            let _ = stderr.await;
        }
        Ok(status)
    }

    /// Kills the run with everything it started, and waits for it to be gone (so its lock on the build directory
    /// is released before another cargo takes it). Its held output is dropped.
    async fn abandon(self) {
        let CargoRun {
            mut child,
            group,
            stderr,
            ..
        } = self;
        drop(group);
        let _ = child.wait().await;
        if let Some(stderr) = stderr {
            stderr.abort();
        }
    }
}

/// Holds what the child writes to stderr until `released`, then writes it to ours, and everything after it as it
/// comes.
async fn hold_then_forward(
    mut stderr: tokio::process::ChildStderr,
    mut released: oneshot::Receiver<()>,
) {
    let mut held = Vec::new();
    let mut chunk = vec![0u8; 8192];
    let mut open = true;
    while open {
        tokio::select! {
            read = stderr.read(&mut chunk) => match read {
                Ok(0) | Err(_) => open = false,
                Ok(n) => held.extend_from_slice(&chunk[..n]),
            },
            result = &mut released => {
                if result.is_err() {
                    // Dropped unreleased: the run was abandoned.
                    return;
                }
                break;
            }
        }
    }
    if !open && released.await.is_err() {
        return;
    }
    // Short writes to our stderr, as cargo's own would have been; a closed stderr stops nothing.
    let write = |bytes: &[u8]| {
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), bytes);
    };
    write(&held);
    while open {
        match stderr.read(&mut chunk).await {
            Ok(0) | Err(_) => open = false,
            Ok(n) => write(&chunk[..n]),
        }
    }
}

/// A cargo build started early, and the run it is.
pub(crate) struct EarlyRun {
    last: LastRun,
    run: CargoRun,
}

impl EarlyRun {
    /// Starts the run remembered in `memory` if it was for this `cargo` program in `dir`.
    pub(crate) fn start(memory: &Path, cargo: &Cargo, dir: &Path) -> Option<EarlyRun> {
        let last: LastRun = serde_json::from_str(&std::fs::read_to_string(memory).ok()?).ok()?;
        if last.program.as_os_str() != cargo.program || last.dir != dir {
            return None;
        }
        let run = CargoRun::start(&cargo.program, dir, &last.args, true).ok()?;
        Some(EarlyRun { last, run })
    }

    /// This run if it is `program args` in `dir`; otherwise it is abandoned and `None` returned.
    pub(crate) async fn take_if(
        self,
        program: &OsString,
        dir: &Path,
        args: &[String],
    ) -> Option<CargoRun> {
        if self.last.program.as_os_str() == program
            && self.last.dir == dir
            && self.last.args == args
        {
            return Some(self.run);
        }
        self.run.abandon().await;
        None
    }
}

/// Remembers a successful build's run for the next build in `dir` (atomically; failing to only costs the next
/// build its early start).
pub(crate) fn remember(memory: &Path, program: &OsString, dir: &Path, args: &[String]) {
    let last = LastRun {
        program: PathBuf::from(program),
        dir: dir.to_path_buf(),
        args: args.to_vec(),
    };
    let text = serde_json::to_string(&last).expect("a cargo run serializes");
    crate::state::keep(memory, &text);
}

/// Where a target dir's last cargo run is remembered: with the up-to-date records (`.cargo-run` cannot be an
/// image's name).
pub(crate) fn run_memory(target_dir: &Path) -> PathBuf {
    target_dir
        .join("hive")
        .join(".fresh")
        .join(".cargo-run.json")
}
