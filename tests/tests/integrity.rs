//! The image holds exactly what cargo built, end to end against the real daemon: a file rewritten while it is sent
//! fails the image; an artifact that is not an ELF executable, or one for another architecture than the image's
//! platform, is refused right after cargo; an up-to-date record only counts for the outputs this build expects.

use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hive_build::progress::{Event, Record};
use hive_e2e::Run;
use hive_e2e::fixture::*;

/// Rewrites `path` in place (same inode, same size, new bytes) over and over until `stop` is set.
fn rewrite_until(path: std::path::PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let len = file.metadata().unwrap().len();
        let mut writes = 0u64;
        while !stop.load(Ordering::Relaxed) {
            writes += 1;
            let offset = writes.wrapping_mul(7919 * 4096) % (len - 8);
            file.write_all_at(&writes.to_le_bytes(), offset).unwrap();
        }
        writes
    })
}

#[test]
fn a_file_rewritten_while_it_is_sent_fails_the_image() {
    let fixture = hello_with_big_file(400);
    let big = fixture.root().join("big.bin");
    let build = Spawned::start(fixture.build().args(["--progress", "json"]));
    // The daemon reports bytes of big.bin received: its transfer is under way.
    loop {
        let Ok(line) = build.lines.recv() else {
            let (status, stdout, stderr) = build.finish();
            panic!("the build ended ({status}) before big.bin was being sent:\n{stdout}\n{stderr}");
        };
        let record: Record = serde_json::from_str(&line).unwrap();
        if let Event::VertexProgress { id, current, .. } = &record.event
            && id.contains("hello-files-0")
            && *current > 0
        {
            break;
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = rewrite_until(big.clone(), stop.clone());
    let (status, stdout, stderr) = build.finish();
    stop.store(true, Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0);
    let result = Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    };
    fixture.assert_fails(
        &result,
        &[
            &big.display().to_string(),
            "changed while it was being sent",
            "rebuild",
        ],
    );
}
