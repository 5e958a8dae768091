//! Manifest texts and places in them: what a diagnostic points at, and what `plan` reports as a value's origin.

use std::ops::Range;
use std::sync::Arc;

use hive_build::plan::Origin;
use miette::NamedSource;

/// One manifest's text, with the name diagnostics show for it.
#[derive(Debug)]
pub(crate) struct SourceFile {
    /// The path diagnostics show: relative to the current directory when the file is under it.
    pub(crate) display_name: String,
    /// The path relative to the workspace root, for origins in `plan`'s output (stable across machines).
    pub(crate) workspace_name: String,
    pub(crate) text: Arc<str>,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub(crate) fn new(display_name: String, workspace_name: String, text: String) -> SourceFile {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(index, _)| index + 1))
            .collect();
        SourceFile {
            display_name,
            workspace_name,
            text: Arc::from(text),
            line_starts,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub(crate) fn line_column(&self, offset: usize) -> (usize, usize) {
        let line = self
            .line_starts
            .partition_point(|start| *start <= offset)
            .max(1);
        let start = self.line_starts[line - 1];
        let column = self
            .text
            .get(start..offset)
            .map_or(1, |prefix| prefix.chars().count() + 1);
        (line, column)
    }

    pub(crate) fn named_source(&self) -> NamedSource<Arc<str>> {
        NamedSource::new(&self.display_name, Arc::clone(&self.text))
    }
}

/// Where a value was set.
#[derive(Debug, Clone)]
pub(crate) enum Place {
    /// A span of a manifest, inside the table `table` (`package.metadata.hive.images.api`).
    Manifest {
        file: Arc<SourceFile>,
        span: Range<usize>,
        table: Arc<str>,
    },
    /// A package's build script, through `hive-build`.
    BuildScript { package: String, image: String },
    /// A field of `[package]` (for the derived OCI labels).
    PackageField(&'static str),
}

impl Place {
    pub(crate) fn origin(&self) -> Origin {
        match self {
            Place::Manifest { file, span, table } => {
                let (line, column) = file.line_column(span.start);
                Origin::Manifest {
                    file: file.workspace_name.clone(),
                    line,
                    column,
                    table: table.to_string(),
                }
            }
            Place::BuildScript { package, .. } => Origin::BuildScript {
                package: package.clone(),
            },
            Place::PackageField(field) => Origin::Package {
                field: (*field).to_owned(),
            },
        }
    }

    /// A narrower place inside this one: `offset..offset + len` of a string value's contents. Only exact when the
    /// TOML string is written without escapes; otherwise the whole value stays the place.
    pub(crate) fn inner(&self, value: &str, offset: usize, len: usize) -> Place {
        let Place::Manifest { file, span, table } = self else {
            return self.clone();
        };
        let literal = file.text.get(span.clone()).unwrap_or_default();
        let quote_len = if literal.starts_with("\"\"\"") || literal.starts_with("'''") {
            3
        } else {
            1
        };
        let contents = literal.get(quote_len..literal.len().saturating_sub(quote_len));
        if contents != Some(value) {
            return self.clone();
        }
        let start = span.start + quote_len + offset;
        Place::Manifest {
            file: Arc::clone(file),
            span: start..start + len,
            table: Arc::clone(table),
        }
    }

    /// Sort key for diagnostics: by file, then position; places without a file last.
    pub(crate) fn sort_key(&self) -> (u8, String, usize) {
        match self {
            Place::Manifest { file, span, .. } => (0, file.display_name.clone(), span.start),
            Place::BuildScript { package, .. } => (1, package.clone(), 0),
            Place::PackageField(_) => (2, String::new(), 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based() {
        let file = SourceFile::new(
            "Cargo.toml".into(),
            "Cargo.toml".into(),
            "a = 1\nbé = \"x\"\n".into(),
        );
        assert_eq!(file.line_column(0), (1, 1));
        assert_eq!(file.line_column(4), (1, 5));
        assert_eq!(file.line_column(6), (2, 1));
        // Columns count characters, not bytes.
        assert_eq!(file.line_column(11), (2, 5));
    }

    #[test]
    fn inner_spans_narrow_only_unescaped_strings() {
        let text = "tags = [\"v{nope}\", \"a\\u0041{nope}\"]\n";
        let file = Arc::new(SourceFile::new("C".into(), "C".into(), text.into()));
        let table: Arc<str> = Arc::from("t");
        let plain = Place::Manifest {
            file: Arc::clone(&file),
            span: 8..17,
            table: Arc::clone(&table),
        };
        let Place::Manifest { span, .. } = plain.inner("v{nope}", 1, 6) else {
            unreachable!()
        };
        assert_eq!(&text[span], "{nope}");
        let escaped = Place::Manifest {
            file,
            span: 19..34,
            table,
        };
        let Place::Manifest { span, .. } = escaped.inner("aA{nope}", 2, 6) else {
            unreachable!()
        };
        assert_eq!(span, 19..34);
    }
}
