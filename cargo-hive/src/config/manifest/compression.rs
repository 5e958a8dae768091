//! The `compression` and `compression-level` keys: a name of [`Compression::NAMES`], and a level as an integer.
//! Whether the level suits the compression is checked once the layers are merged (`plan::assemble`), where both
//! are known.

use hive_build::Compression;
use toml::Spanned;
use toml::de::DeValue;

use super::Walker;
use crate::config::diagnostic::ConfigError;

impl Walker<'_> {
    /// `compression = "zstd"`.
    pub(super) fn compression(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        table_name: &str,
    ) -> Option<Compression> {
        let name = self.string("compression", value, table_name)?;
        let compression = Compression::parse(&name);
        if compression.is_none() {
            let place = self.place(value.span(), table_name);
            let names: Vec<String> = Compression::NAMES
                .iter()
                .map(|name| format!("`\"{name}\"`"))
                .collect();
            self.diags.push(
                ConfigError::new(
                    "invalid-compression",
                    &place,
                    format!("`compression` cannot be `{name}`"),
                    "unknown compression",
                )
                .help(format!("`compression` is one of {}", names.join(", "))),
            );
        }
        compression
    }

    /// `compression-level = 3`: a whole number; its range depends on the compression.
    pub(super) fn compression_level(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        table_name: &str,
    ) -> Option<u32> {
        let DeValue::Integer(number) = value.get_ref() else {
            self.wrong_type("compression-level", value, table_name, "an integer");
            return None;
        };
        let level = u32::from_str_radix(number.as_str(), number.radix()).ok();
        if level.is_none() {
            let place = self.place(value.span(), table_name);
            self.diags.push(
                ConfigError::new(
                    "invalid-compression-level",
                    &place,
                    format!("`compression-level = {}` is not a level", number.as_str()),
                    "not a level",
                )
                .help("gzip takes 0 to 9 (default 6), zstd 1 to 22 (default 3)"),
            );
        }
        level
    }
}
