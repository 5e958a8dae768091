//! Just enough ELF to tell what cargo's artifact is: an executable for which machine (its class, byte order and
//! `e_machine`, so an image never holds a binary its platform cannot run), and its program interpreter
//! (`PT_INTERP`: a dynamically linked binary needs that loader in the image, or `docker run` fails with a baffling
//! "no such file or directory"). Anything else at the artifact path is named for what it is.

use std::fmt;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Longest interpreter path we read (Linux allows `PATH_MAX`).
const MAX_INTERPRETER: u64 = 4096;
/// How much of a script's `#!` line an error shows.
const MAX_SHEBANG: usize = 80;

/// An ELF executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Binary {
    /// The machine it runs on.
    pub(crate) machine: Machine,
    /// Its program interpreter (`/lib64/ld-linux-x86-64.so.2`), `None` when statically linked.
    pub(crate) interpreter: Option<String>,
}

/// The machine an ELF file is for: `EI_CLASS`, `EI_DATA` and `e_machine` of its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Machine {
    /// `EI_CLASS`: 1 for 32-bit, 2 for 64-bit.
    pub(crate) class: u8,
    /// `EI_DATA`: 1 for little-endian, 2 for big-endian.
    pub(crate) data: u8,
    /// `e_machine`.
    pub(crate) machine: u16,
}

/// `e_machine` values, their names and the OCI architecture each runs as, with the class and byte order it needs.
const MACHINES: &[(u16, &str, u8, u8, &str)] = &[
    (62, "x86-64", 2, 1, "amd64"),
    (183, "AArch64", 2, 1, "arm64"),
    (40, "ARM", 1, 1, "arm"),
    (3, "x86 (i386)", 1, 1, "386"),
    (21, "PowerPC64", 2, 1, "ppc64le"),
    (22, "s390", 2, 2, "s390x"),
    (243, "RISC-V", 2, 1, "riscv64"),
    (8, "MIPS", 2, 1, "mips64le"),
    (258, "LoongArch", 2, 1, "loong64"),
];

impl Machine {
    /// The OCI architecture (`amd64`, `arm64`, ...) that runs this, if any does.
    pub(crate) fn architecture(&self) -> Option<&'static str> {
        MACHINES
            .iter()
            .find(|(machine, _, class, data, _)| {
                (*machine, *class, *data) == (self.machine, self.class, self.data)
            })
            .map(|(.., architecture)| *architecture)
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = MACHINES
            .iter()
            .find(|(machine, ..)| *machine == self.machine)
            .map_or_else(
                || format!("machine {}", self.machine),
                |entry| entry.1.to_owned(),
            );
        let bits = if self.class == 1 { "32-bit" } else { "64-bit" };
        let order = if self.data == 1 {
            "little-endian"
        } else {
            "big-endian"
        };
        write!(f, "{name} ({bits}, {order})")
    }
}

/// What is at an artifact path instead of an executable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NotABinary {
    /// Nothing.
    #[error("missing")]
    Missing,
    /// A 0-byte file.
    #[error("an empty file")]
    Empty,
    /// A directory.
    #[error("a directory")]
    Directory,
    /// A symlink (sent as a link, it would point at nothing in the image).
    #[error("a symlink to {target}, not the file itself")]
    Symlink {
        /// Where it points.
        target: PathBuf,
    },
    /// A symlink to nothing.
    #[error("a dangling symlink (to {target}, which does not exist)")]
    DanglingSymlink {
        /// Where it points.
        target: PathBuf,
    },
    /// A socket, pipe or device.
    #[error("not a regular file")]
    Special,
    /// A script.
    #[error("a script (`{shebang}`), not an ELF executable")]
    Script {
        /// Its `#!` line, shortened.
        shebang: String,
    },
    /// Some other file.
    #[error("not an ELF file")]
    NotElf,
    /// An ELF file that is not an executable (an object file, a core dump) or has a broken header.
    #[error("an ELF file that is not an executable ({0})")]
    NotExecutable(String),
}

/// Why an artifact could not be inspected.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InspectError {
    /// It is not an executable.
    #[error("{0}")]
    NotABinary(NotABinary),
    /// Reading it failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// What is at `path`: an ELF executable, or why not. Reads only the ELF header, the program headers and the
/// interpreter path, not the whole binary.
pub(crate) fn inspect(path: &Path) -> Result<Binary, InspectError> {
    let not = |reason| Err(InspectError::NotABinary(reason));
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return not(NotABinary::Missing),
        Err(err) => return Err(err.into()),
    };
    if metadata.is_symlink() {
        let target = std::fs::read_link(path)?;
        return match std::fs::metadata(path) {
            Ok(_) => not(NotABinary::Symlink { target }),
            Err(_) => not(NotABinary::DanglingSymlink { target }),
        };
    }
    if metadata.is_dir() {
        return not(NotABinary::Directory);
    }
    if !metadata.is_file() {
        return not(NotABinary::Special);
    }
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len == 0 {
        return not(NotABinary::Empty);
    }
    let read = |offset: u64, size: u64| -> Option<Vec<u8>> {
        if offset.checked_add(size)? > len {
            return None;
        }
        let mut buffer = vec![0; usize::try_from(size).ok()?];
        file.read_exact_at(&mut buffer, offset).ok()?;
        Some(buffer)
    };
    let mut start = vec![0; usize::try_from(len.min(512)).unwrap_or(512)];
    file.read_exact_at(&mut start, 0)?;
    let machine = machine_of(&start).map_err(InspectError::NotABinary)?;
    Ok(Binary {
        machine,
        interpreter: interpreter_of(&read),
    })
}

/// The machine of an ELF executable from its first bytes, or what the file is instead.
fn machine_of(start: &[u8]) -> Result<Machine, NotABinary> {
    if start.starts_with(b"#!") {
        let line = start
            .split(|byte| *byte == b'\n')
            .next()
            .unwrap_or_default();
        let mut shebang = String::from_utf8_lossy(line).trim_end().to_owned();
        if shebang.chars().count() > MAX_SHEBANG {
            shebang = shebang.chars().take(MAX_SHEBANG).collect::<String>() + "…";
        }
        return Err(NotABinary::Script { shebang });
    }
    if !start.starts_with(b"\x7fELF") {
        return Err(NotABinary::NotElf);
    }
    if start.len() < 20 {
        return Err(NotABinary::NotExecutable("a truncated header".to_owned()));
    }
    let (class, data) = (start[4], start[5]);
    if !matches!(class, 1 | 2) || !matches!(data, 1 | 2) {
        return Err(NotABinary::NotExecutable(format!(
            "unknown class {class} or byte order {data}"
        )));
    }
    let half = |offset: usize| {
        let bytes = [start[offset], start[offset + 1]];
        if data == 1 {
            u16::from_le_bytes(bytes)
        } else {
            u16::from_be_bytes(bytes)
        }
    };
    // ET_EXEC, or ET_DYN for position-independent executables (Rust's default).
    let kind = half(16);
    if !matches!(kind, 2 | 3) {
        return Err(NotABinary::NotExecutable(format!("ELF type {kind}")));
    }
    Ok(Machine {
        class,
        data,
        machine: half(18),
    })
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
    fn inspects_the_test_binary_itself() {
        let me = std::env::current_exe().unwrap();
        let binary = inspect(&me).unwrap();
        assert_eq!(
            binary.machine.architecture(),
            Some(crate::buildkit::host_architecture())
        );
        // The test binary is dynamically linked on gnu targets.
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            let interp = binary
                .interpreter
                .expect("gnu binaries have an interpreter");
            assert!(
                interp.starts_with('/') && interp.contains("ld-"),
                "{interp}"
            );
        }
    }

    /// The first bytes of an ELF header: class, byte order, type, machine.
    fn header(class: u8, data: u8, kind: u16, machine: u16) -> Vec<u8> {
        let mut bytes = vec![0u8; 64];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = class;
        bytes[5] = data;
        let (kind, machine) = if data == 1 {
            (kind.to_le_bytes(), machine.to_le_bytes())
        } else {
            (kind.to_be_bytes(), machine.to_be_bytes())
        };
        bytes[16..18].copy_from_slice(&kind);
        bytes[18..20].copy_from_slice(&machine);
        bytes
    }

    #[test]
    fn machines_and_their_architectures() {
        let arch = |bytes: &[u8]| machine_of(bytes).unwrap().architecture();
        assert_eq!(arch(&header(2, 1, 3, 62)), Some("amd64"));
        assert_eq!(arch(&header(2, 1, 2, 183)), Some("arm64"));
        assert_eq!(arch(&header(1, 1, 2, 40)), Some("arm"));
        assert_eq!(arch(&header(2, 2, 2, 22)), Some("s390x"));
        // Right machine, wrong class or byte order: no platform runs it.
        assert_eq!(arch(&header(1, 1, 2, 62)), None);
        assert_eq!(arch(&header(2, 2, 2, 21)), None);
        assert_eq!(arch(&header(2, 1, 2, 9999)), None);
        assert_eq!(
            machine_of(&header(2, 1, 3, 183)).unwrap().to_string(),
            "AArch64 (64-bit, little-endian)"
        );
    }

    #[test]
    fn what_is_not_an_executable() {
        assert_eq!(
            machine_of(b"#!/bin/sh\necho hi\n"),
            Err(NotABinary::Script {
                shebang: "#!/bin/sh".into()
            })
        );
        assert_eq!(machine_of(b"hello"), Err(NotABinary::NotElf));
        assert!(matches!(
            machine_of(b"\x7fELF\x02\x01"),
            Err(NotABinary::NotExecutable(_))
        ));
        assert!(matches!(
            machine_of(&header(2, 1, 1, 62)),
            Err(NotABinary::NotExecutable(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        let not = |name: &str| match inspect(&dir.path().join(name)) {
            Err(InspectError::NotABinary(reason)) => reason,
            other => panic!("{name}: {other:?}"),
        };
        std::fs::write(dir.path().join("empty"), b"").unwrap();
        std::fs::create_dir(dir.path().join("dir")).unwrap();
        std::os::unix::fs::symlink("nowhere", dir.path().join("dangling")).unwrap();
        std::os::unix::fs::symlink("empty", dir.path().join("link")).unwrap();
        assert_eq!(not("empty"), NotABinary::Empty);
        assert_eq!(not("dir"), NotABinary::Directory);
        assert_eq!(not("missing"), NotABinary::Missing);
        assert_eq!(
            not("dangling"),
            NotABinary::DanglingSymlink {
                target: "nowhere".into()
            }
        );
        assert_eq!(
            not("link"),
            NotABinary::Symlink {
                target: "empty".into()
            }
        );
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
