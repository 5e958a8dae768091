//! SIGINT, SIGTERM and SIGHUP: each cancels the command the same way, from its first instant.
//!
//! [`listen`] takes the three signals over for the whole command. On the first one, the process groups of the
//! children we run (cargo, which runs rustc and build scripts) are killed at once, and whatever awaits [`wait`]
//! wakes: the build drops its gRPC calls (the daemon cancels those solves) and its sessions (temp files go with
//! them). Children run in their own process group so that one kill reaches the whole tree, whichever signal came
//! and whoever sent it: a terminal's Ctrl-C reaches only our own group, `kill`, `timeout` and a CI cancel only us.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use rustix::process::{Pid, Signal as RawSignal, kill_process_group};
use tokio::sync::watch;

use crate::errors::HiveError;

/// A signal that ends the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// SIGINT: Ctrl-C.
    Interrupt,
    /// SIGTERM: `kill`, `timeout`, a CI cancel.
    Terminate,
    /// SIGHUP: the terminal closed.
    Hangup,
}

impl Signal {
    /// The signal's usual name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
            Signal::Hangup => "SIGHUP",
        }
    }

    fn number(self) -> i32 {
        match self {
            Signal::Interrupt => 2,
            Signal::Terminate => 15,
            Signal::Hangup => 1,
        }
    }

    fn from_number(number: i32) -> Option<Signal> {
        [Signal::Interrupt, Signal::Terminate, Signal::Hangup]
            .into_iter()
            .find(|signal| signal.number() == number)
    }
}

/// The first signal received (its number), 0 before any.
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// The process groups of our running children. Held while a signal is recorded, so a child registered at the
/// same moment is either killed by the handler or sees the signal when it registers.
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

fn notifier() -> &'static watch::Sender<Option<Signal>> {
    static NOTIFIER: OnceLock<watch::Sender<Option<Signal>>> = OnceLock::new();
    NOTIFIER.get_or_init(|| watch::Sender::new(None))
}

fn groups() -> MutexGuard<'static, Vec<i32>> {
    // Every update is one push or removal: a panic elsewhere cannot leave the list half-changed.
    GROUPS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Takes SIGINT, SIGTERM and SIGHUP over for the rest of the process (must run inside the runtime).
pub(crate) fn listen() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        let received = tokio::select! {
            _ = interrupt.recv() => Signal::Interrupt,
            _ = terminate.recv() => Signal::Terminate,
            _ = hangup.recv() => Signal::Hangup,
        };
        deliver(received);
        // Later signals are absorbed: the cancellation under way is the quickest way out, and it cleans up.
        loop {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
                _ = hangup.recv() => {}
            }
        }
    });
    Ok(())
}

fn deliver(signal: Signal) {
    let groups = groups();
    RECEIVED.store(signal.number(), Ordering::SeqCst);
    for pgid in groups.iter() {
        kill_group(*pgid);
    }
    drop(groups);
    notifier().send_replace(Some(signal));
}

fn kill_group(pgid: i32) {
    if let Some(pid) = Pid::from_raw(pgid) {
        // ESRCH: the group has ended already.
        let _ = kill_process_group(pid, RawSignal::KILL);
    }
}

/// The signal that interrupted the command, if one did.
pub(crate) fn received() -> Option<Signal> {
    Signal::from_number(RECEIVED.load(Ordering::SeqCst))
}

/// Resolves when a signal arrives (at once if one has).
pub(crate) async fn wait() -> Signal {
    let mut receiver = notifier().subscribe();
    let signal = receiver
        .wait_for(Option::is_some)
        .await
        .expect("the sender lives in a static");
    signal.expect("waited for Some")
}

/// Runs `work` until it ends or a signal arrives; a signal drops it (and everything it owns) at once.
pub(crate) async fn until_signal<T>(
    work: impl Future<Output = Result<T, HiveError>>,
) -> Result<T, HiveError> {
    tokio::select! {
        biased;
        signal = wait() => Err(HiveError::Interrupted(signal)),
        result = work => prefer_signal(result),
    }
}

/// `result`, unless a signal arrived meanwhile: killed children make work fail in their own words, and the signal
/// is the real cause.
pub(crate) fn prefer_signal<T>(result: Result<T, HiveError>) -> Result<T, HiveError> {
    match received() {
        Some(signal) => Err(HiveError::Interrupted(signal)),
        None => result,
    }
}

/// A running child's process group (the child leads it): killed with the whole tree on a signal, and when dropped
/// before [`ChildGroup::reaped`] (a cancelled build drops its cargo).
#[derive(Debug)]
pub(crate) struct ChildGroup {
    pgid: i32,
    reaped: bool,
}

impl ChildGroup {
    /// Registers the group of a child spawned with `process_group(0)`.
    fn register(pid: Option<u32>) -> ChildGroup {
        let pgid = pid.and_then(|pid| i32::try_from(pid).ok()).unwrap_or(0);
        if pgid > 0 {
            let mut groups = groups();
            groups.push(pgid);
            if received().is_some() {
                // The signal came between the spawn and now: the handler did not know this group.
                kill_group(pgid);
            }
        }
        ChildGroup {
            pgid,
            reaped: false,
        }
    }

    /// The child has been waited for: its group is no longer ours to kill (its id may be reused).
    pub(crate) fn reaped(mut self) {
        self.reaped = true;
    }
}

impl Drop for ChildGroup {
    fn drop(&mut self) {
        if self.pgid <= 0 {
            return;
        }
        let mut groups = groups();
        groups.retain(|pgid| *pgid != self.pgid);
        if !self.reaped {
            kill_group(self.pgid);
        }
    }
}

/// Spawns `command` as the leader of a new process group, registered for killing on a signal.
pub(crate) fn spawn_async(
    command: &mut tokio::process::Command,
) -> std::io::Result<(tokio::process::Child, ChildGroup)> {
    let child = command.process_group(0).spawn()?;
    let group = ChildGroup::register(child.id());
    Ok((child, group))
}

/// [`spawn_async`] for a blocking `std` command.
pub(crate) fn spawn_blocking(
    command: &mut std::process::Command,
) -> std::io::Result<(std::process::Child, ChildGroup)> {
    use std::os::unix::process::CommandExt;
    let child = command.process_group(0).spawn()?;
    let group = ChildGroup::register(Some(child.id()));
    Ok((child, group))
}

/// Runs a blocking `std` command to completion in its own process group, capturing its output (as
/// `Command::output` does).
pub(crate) fn output(command: &mut std::process::Command) -> std::io::Result<std::process::Output> {
    use std::process::Stdio;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (child, group) = spawn_blocking(command)?;
    let output = child.wait_with_output()?;
    group.reaped();
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_have_their_numbers() {
        for signal in [Signal::Interrupt, Signal::Terminate, Signal::Hangup] {
            assert_eq!(Signal::from_number(signal.number()), Some(signal));
        }
        assert_eq!(Signal::from_number(0), None);
        assert_eq!(Signal::Terminate.name(), "SIGTERM");
    }

    #[test]
    fn a_dropped_group_is_killed_with_its_whole_tree() {
        // A shell leading its group, with a grandchild: dropping the group without reaping kills both.
        let mut command = std::process::Command::new("sh");
        command.args(["-c", "sleep 60 & echo $!; wait"]);
        command.stdout(std::process::Stdio::piped());
        let (mut child, group) = spawn_blocking(&mut command).unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let grandchild: i32 = line.trim().parse().unwrap();
        drop(group);
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        // The grandchild's parent is gone; it is dead (or a zombie awaiting init) once the kill has landed.
        let gone = |pid: i32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
                stat.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
        };
        for _ in 0..2000 {
            if gone(grandchild) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        panic!("the grandchild {grandchild} survived its group's kill");
    }
}
