//! Errors in image definitions as miette diagnostics: one type, a code per kind of mistake, the span of the value
//! in its `Cargo.toml` (or the build script that set it), and every error of a run collected before any is shown.

use std::fmt;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode};

use crate::config::source::Place;
use crate::errors::HiveError;

/// One mistake in the image definitions.
#[derive(Debug)]
pub(crate) struct ConfigError {
    code: &'static str,
    message: String,
    source: Option<NamedSource<std::sync::Arc<str>>>,
    label: Option<LabeledSpan>,
    help: Option<String>,
    sort_key: (u8, String, usize),
}

impl ConfigError {
    /// A mistake at `place`; `label` is shown under the span.
    pub(crate) fn new(
        code: &'static str,
        place: &Place,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Self {
        let mut message = message.into();
        let (source, label) = match place {
            Place::Manifest { file, span, .. } => (
                Some(file.named_source()),
                Some(LabeledSpan::new_primary_with_span(
                    Some(label.into()),
                    span.clone(),
                )),
            ),
            Place::BuildScript { package, image } => {
                message.push_str(&format!(
                    " (image `{image}`, set by the build script of package `{package}`)"
                ));
                (None, None)
            }
            Place::PackageField(_) => (None, None),
        };
        ConfigError {
            code,
            message,
            source,
            label,
            help: None,
            sort_key: place.sort_key(),
        }
    }

    /// Adds a `help:` line.
    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Diagnostic for ConfigError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(format!("hive::{}", self.code)))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|help| Box::new(help) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|source| source as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.label
            .clone()
            .map(|label| Box::new(std::iter::once(label)) as Box<dyn Iterator<Item = LabeledSpan>>)
    }
}

/// Collects every mistake of a run; nothing stops at the first.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    errors: Vec<ConfigError>,
}

impl Diagnostics {
    pub(crate) fn push(&mut self, error: ConfigError) {
        self.errors.push(error);
    }

    pub(crate) fn len(&self) -> usize {
        self.errors.len()
    }

    /// Adds what another pass collected.
    pub(crate) fn extend(&mut self, other: Diagnostics) {
        self.errors.extend(other.errors);
    }

    /// `Ok` when nothing was collected; otherwise every error, in file and position order.
    pub(crate) fn into_result(mut self) -> Result<(), HiveError> {
        if self.errors.is_empty() {
            return Ok(());
        }
        // Stable: errors at one place keep the order they were found in.
        self.errors.sort_by(|a, b| a.sort_key.cmp(&b.sort_key));
        // A shared value (a workspace `registry`) is checked once per image, and an image once per target its
        // build script ran for; show each mistake once.
        let mut seen = std::collections::BTreeSet::new();
        self.errors.retain(|error| {
            seen.insert((error.sort_key.clone(), error.code, error.message.clone()))
        });
        Err(HiveError::Diagnostics(
            self.errors.into_iter().map(miette::Report::new).collect(),
        ))
    }

    #[cfg(test)]
    pub(crate) fn messages(&self) -> Vec<String> {
        self.errors
            .iter()
            .map(|error| format!("{}: {}", error.code, error.message))
            .collect()
    }
}

/// What a file that is not a regular file is, for a message: `a FIFO (named pipe)`, `a socket`, ….
pub(crate) fn file_kind(file_type: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO (named pipe)"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

/// The closest of `candidates` to `word`, if close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::damerau_levenshtein(word, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.len().max(word.len()) / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        let keys = ["tags", "platforms", "base", "entrypoint", "env"];
        assert_eq!(did_you_mean("tgas", keys), Some("tags"));
        assert_eq!(did_you_mean("platform", keys), Some("platforms"));
        assert_eq!(did_you_mean("entry_point", keys), Some("entrypoint"));
        assert_eq!(did_you_mean("envs", keys), Some("env"));
        assert_eq!(did_you_mean("volumes", keys), None);
        assert_eq!(did_you_mean("b", keys), None);
    }
}
