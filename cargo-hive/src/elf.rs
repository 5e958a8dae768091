//! Just enough ELF to find a binary's program interpreter (`PT_INTERP`): a dynamically linked binary needs that
//! loader in the image, or `docker run` fails with a baffling "no such file or directory".

use std::os::unix::fs::FileExt;
use std::path::Path;

/// Longest interpreter path we read (Linux allows `PATH_MAX`).
const MAX_INTERPRETER: u64 = 4096;

/// The interpreter of an ELF executable (`/lib64/ld-linux-x86-64.so.2`), `None` for static binaries and non-ELF
/// files. Reads only the ELF header, the program headers and the interpreter path, not the whole binary.
pub(crate) fn interpreter(path: &Path) -> std::io::Result<Option<String>> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let read = |offset: u64, size: u64| -> Option<Vec<u8>> {
        if offset.checked_add(size)? > len {
            return None;
        }
        let mut buffer = vec![0; usize::try_from(size).ok()?];
        file.read_exact_at(&mut buffer, offset).ok()?;
        Some(buffer)
    };
    Ok(interpreter_of(&read))
}

/// The interpreter, reading ranges of the file through `read` (`None`: past the end).
fn interpreter_of(read: &dyn Fn(u64, u64) -> Option<Vec<u8>>) -> Option<String> {
    let header = read(0, 52)?;
    if &header[..4] != b"\x7fELF" {
        return None;
    }
    let is_64 = header[4] == 2;
    let little = header[5] == 1;
    let header = if is_64 { read(0, 64)? } else { header };
    let number = |bytes: &[u8], offset: usize, size: usize| -> Option<u64> {
        let slice = bytes.get(offset..offset + size)?;
        let mut value = 0u64;
        for index in 0..size {
            let byte = if little {
                slice[size - 1 - index]
            } else {
                slice[index]
            };
            value = (value << 8) | u64::from(byte);
        }
        Some(value)
    };
    let (phoff, phentsize, phnum) = if is_64 {
        (
            number(&header, 0x20, 8)?,
            number(&header, 0x36, 2)?,
            number(&header, 0x38, 2)?,
        )
    } else {
        (
            number(&header, 0x1c, 4)?,
            number(&header, 0x2a, 2)?,
            number(&header, 0x2c, 2)?,
        )
    };
    let table = read(phoff, phentsize.checked_mul(phnum)?)?;
    let entry = usize::try_from(phentsize).ok()?;
    for index in 0..usize::try_from(phnum).ok()? {
        let start = index * entry;
        if number(&table, start, 4)? != 3 {
            continue; // not PT_INTERP
        }
        let (offset, size) = if is_64 {
            (
                number(&table, start + 0x08, 8)?,
                number(&table, start + 0x20, 8)?,
            )
        } else {
            (
                number(&table, start + 0x04, 4)?,
                number(&table, start + 0x10, 4)?,
            )
        };
        let raw = read(offset, size.min(MAX_INTERPRETER))?;
        let text = raw.split(|byte| *byte == 0).next()?;
        return Some(String::from_utf8_lossy(text).into_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_interpreter_of_a_dynamic_binary() {
        // The test binary itself is dynamically linked on gnu targets.
        let me = std::env::current_exe().unwrap();
        let interp = interpreter(&me).unwrap();
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            let interp = interp.expect("gnu binaries have an interpreter");
            assert!(
                interp.starts_with('/') && interp.contains("ld-"),
                "{interp}"
            );
        }
    }

    /// `interpreter_of` over bytes in memory.
    fn of_bytes(bytes: &[u8]) -> Option<String> {
        interpreter_of(&|offset, size| {
            let start = usize::try_from(offset).ok()?;
            bytes
                .get(start..start.checked_add(usize::try_from(size).ok()?)?)
                .map(<[u8]>::to_vec)
        })
    }

    #[test]
    fn non_elf_and_truncated_files_have_none() {
        assert_eq!(of_bytes(b"#!/bin/sh\necho hi\n"), None);
        assert_eq!(of_bytes(b"\x7fELF\x02\x01"), None);
        let mut header = vec![0u8; 64];
        header[..4].copy_from_slice(b"\x7fELF");
        header[4] = 2;
        header[5] = 1;
        assert_eq!(of_bytes(&header), None, "no program headers: static");
    }
}
