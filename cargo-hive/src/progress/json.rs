//! `--progress json`: every event as one [`Record`] per line on stdout, flushed at once so a reader sees it live.
//! Stdout, because the output is data (the end-to-end tests decode it with `hive_build::progress`); cargo's
//! diagnostics and our messages stay on stderr. Values are not redacted: readers compare digests.

use std::io::{self, Write};

use hive_build::progress::{Event as Out, Record};

use super::reporter::Sink;
use super::tracker::Tracker;

/// The JSON renderer.
pub(super) struct Json<W> {
    out: W,
}

impl<W: Write + Send> Json<W> {
    pub(super) fn new(out: W) -> Self {
        Json { out }
    }
}

impl<W: Write + Send> Sink for Json<W> {
    fn event(&mut self, event: &Out, _tracker: &Tracker) -> io::Result<()> {
        let mut line = serde_json::to_vec(&Record::new(event.clone())).map_err(io::Error::other)?;
        line.push(b'\n');
        self.out.write_all(&line)?;
        self.out.flush()
    }

    fn finish(&mut self, _now: std::time::Duration, _tracker: &Tracker) -> io::Result<()> {
        self.out.flush()
    }
}
