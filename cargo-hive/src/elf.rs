//! Just enough ELF to find a binary's program interpreter (`PT_INTERP`): a dynamically linked binary needs that
//! loader in the image, or `docker run` fails with a baffling "no such file or directory".

use std::path::Path;

/// The interpreter of an ELF executable (`/lib64/ld-linux-x86-64.so.2`), `None` for static binaries and non-ELF
/// files.
pub(crate) fn interpreter(path: &Path) -> std::io::Result<Option<String>> {
    let bytes = std::fs::read(path)?;
    Ok(interpreter_of(&bytes))
}

fn interpreter_of(bytes: &[u8]) -> Option<String> {
    if bytes.len() < 52 || &bytes[..4] != b"\x7fELF" {
        return None;
    }
    let is_64 = bytes[4] == 2;
    let little = bytes[5] == 1;
    let read = |offset: usize, size: usize| -> Option<u64> {
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
        (read(0x20, 8)?, read(0x36, 2)?, read(0x38, 2)?)
    } else {
        (read(0x1c, 4)?, read(0x2a, 2)?, read(0x2c, 2)?)
    };
    for index in 0..phnum {
        let header = usize::try_from(phoff + index * phentsize).ok()?;
        if read(header, 4)? != 3 {
            continue; // not PT_INTERP
        }
        let (offset, size) = if is_64 {
            (read(header + 0x08, 8)?, read(header + 0x20, 8)?)
        } else {
            (read(header + 0x04, 4)?, read(header + 0x10, 4)?)
        };
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(size).ok()?)?;
        let raw = bytes.get(start..end)?;
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

    #[test]
    fn non_elf_and_truncated_files_have_none() {
        assert_eq!(interpreter_of(b"#!/bin/sh\necho hi\n"), None);
        assert_eq!(interpreter_of(b"\x7fELF\x02\x01"), None);
        let mut header = vec![0u8; 64];
        header[..4].copy_from_slice(b"\x7fELF");
        header[4] = 2;
        header[5] = 1;
        assert_eq!(interpreter_of(&header), None, "no program headers: static");
    }
}
