//! Reads `[workspace.metadata.hive]` and `[package.metadata.hive]` from a manifest's text, keeping the span of every
//! key and value. cargo_metadata hands over the same data without spans, so the text is parsed here with toml's
//! span-preserving `DeTable`; every mistake is collected, the walk goes on past it.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use hive_build::schema::{self, FILE_KEYS, KEYS, SECRET_KEYS, Scope};
use hive_build::{FileSpec, ImageDef, Mode, Port, SecretSource};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::config::diagnostic::{ConfigError, Diagnostics, did_you_mean};
use crate::config::source::{Place, SourceFile};

mod compression;
mod run;

/// One layer of definitions (a defaults table, an image table, or a build script's image) with the place of each
/// value, keyed by path: `tags`, `tags[1]`, `env.RUST_LOG`, `files[0].src`.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub(crate) def: ImageDef,
    /// `registry`, only in the defaults tables.
    pub(crate) registry: Option<String>,
    places: BTreeMap<String, Place>,
    /// The place of the layer as a whole: its table's key, or the build script.
    pub(crate) whole: Place,
    /// The target triple a build script ran for: its layer applies to the platforms built for it only.
    /// `None` for the manifest's tables, which apply to every platform.
    pub(crate) target: Option<String>,
}

impl Layer {
    pub(crate) fn new(whole: Place) -> Layer {
        Layer {
            def: ImageDef::default(),
            registry: None,
            places: BTreeMap::new(),
            whole,
            target: None,
        }
    }

    /// A build script's image, as the script emitted it when cargo ran it for `target`: every value's place is the
    /// build script.
    pub(crate) fn from_build_script(
        package: &str,
        image: &str,
        def: ImageDef,
        target: &str,
    ) -> Layer {
        Layer {
            def,
            target: Some(target.to_owned()),
            ..Layer::new(Place::BuildScript {
                package: package.to_owned(),
                image: image.to_owned(),
            })
        }
    }

    /// The place of the value at `path`, else of its parent (`tags` for `tags[1]`), else of the layer.
    pub(crate) fn place(&self, path: &str) -> Place {
        let mut path = path;
        loop {
            if let Some(place) = self.places.get(path) {
                return place.clone();
            }
            match path.rfind(['[', '.', '#']) {
                Some(end) => path = &path[..end],
                None => return self.whole.clone(),
            }
        }
    }
}

/// An image table: `[package.metadata.hive.images.<name>]`.
#[derive(Debug, Clone)]
pub(crate) struct ImageTable {
    pub(crate) name: String,
    /// The table's key, where image-level mistakes (an ambiguous bin, a duplicate name) are shown.
    pub(crate) name_place: Place,
    pub(crate) layer: Layer,
    /// `[…images.<name>.variants.<variant>]`, sorted by name.
    pub(crate) variants: Vec<VariantTable>,
}

/// A variant table: `[package.metadata.hive.images.<name>.variants.<variant>]`, an image of its own named
/// `<name>@<variant>` whose layer goes on top of its image's.
#[derive(Debug, Clone)]
pub(crate) struct VariantTable {
    pub(crate) name: String,
    /// The variant's key.
    pub(crate) name_place: Place,
    pub(crate) layer: Layer,
    /// `tag-suffix` and its place, when set.
    pub(crate) tag_suffix: Option<(String, Place)>,
}

/// `[package.metadata.hive]`.
#[derive(Debug, Clone)]
pub(crate) struct PackageHive {
    pub(crate) defaults: Layer,
    pub(crate) images: Vec<ImageTable>,
}

/// What one manifest says.
#[derive(Debug, Default)]
pub(crate) struct ManifestHive {
    pub(crate) workspace: Option<Layer>,
    pub(crate) package: Option<PackageHive>,
    /// The BuildKit connection keys of `[workspace.metadata.hive]` that are strings.
    pub(crate) connection: Vec<ConnectionKey>,
}

/// The connection keys of `[workspace.metadata.hive]`: the same names as `buildctl`'s flags.
pub(crate) const CONNECTION_KEYS: [&str; 5] = [
    "buildkit",
    "tlscacert",
    "tlscert",
    "tlskey",
    "tlsservername",
];

/// One connection key, its string value and the value's place.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionKey {
    pub(crate) name: &'static str,
    pub(crate) value: String,
    pub(crate) place: Place,
}

/// Reads the hive tables of a manifest; `workspace` and `package` say which of them to look for.
pub(crate) fn read_manifest(
    file: &Arc<SourceFile>,
    workspace: bool,
    package: bool,
    diags: &mut Diagnostics,
) -> ManifestHive {
    let text = Arc::clone(&file.text);
    let (root, errors) = DeTable::parse_recoverable(&text);
    let mut walker = Walker {
        file,
        diags,
        connection: Vec::new(),
    };
    for error in errors {
        let span = error.span().unwrap_or(0..0);
        let place = walker.place(span, "");
        walker.diags.push(
            ConfigError::new(
                "toml",
                &place,
                format!("could not parse `{}`", file.display_name),
                error.message(),
            )
            .help("fix the TOML syntax; cargo reports the same problem"),
        );
    }
    let root = root.get_ref();
    let mut manifest = ManifestHive::default();
    if workspace && let Some((hive, whole)) = walker.hive_table(root, "workspace") {
        manifest.workspace = Some(
            walker
                .layer(hive, "workspace.metadata.hive", Scope::Workspace, whole)
                .0,
        );
    }
    if package && let Some((hive, whole)) = walker.hive_table(root, "package") {
        let (defaults, images) = walker.layer(hive, "package.metadata.hive", Scope::Package, whole);
        manifest.package = Some(PackageHive { defaults, images });
    }
    manifest.connection = walker.connection;
    manifest
}

/// Reads only the connection keys of `[workspace.metadata.hive]` (for `doctor`, which needs no image definitions).
/// TOML syntax errors are left to cargo, which reads the same file first.
pub(crate) fn read_connection(
    file: &Arc<SourceFile>,
    diags: &mut Diagnostics,
) -> Vec<ConnectionKey> {
    let text = Arc::clone(&file.text);
    let (root, _) = DeTable::parse_recoverable(&text);
    let mut walker = Walker {
        file,
        diags,
        connection: Vec::new(),
    };
    if let Some((hive, _)) = walker.hive_table(root.get_ref(), "workspace") {
        for (key, value) in hive {
            if let Some(name) = CONNECTION_KEYS.iter().find(|name| **name == key.get_ref()) {
                walker.connection_key(name, value, "workspace.metadata.hive");
            }
        }
    }
    walker.connection
}

struct Walker<'a> {
    file: &'a Arc<SourceFile>,
    diags: &'a mut Diagnostics,
    connection: Vec<ConnectionKey>,
}

/// "an array", "a string": how a TOML type reads in a sentence.
fn a(value: &DeValue<'_>) -> String {
    let kind = value.type_str();
    let article = if matches!(kind, "array" | "integer") {
        "an"
    } else {
        "a"
    };
    format!("{article} {kind}")
}

impl Walker<'_> {
    fn place(&self, span: Range<usize>, table: &str) -> Place {
        Place::Manifest {
            file: Arc::clone(self.file),
            span,
            table: Arc::from(table),
        }
    }

    fn error(
        &mut self,
        code: &'static str,
        span: Range<usize>,
        table: &str,
        message: String,
        label: &str,
    ) {
        let place = self.place(span, table);
        self.diags
            .push(ConfigError::new(code, &place, message, label));
    }

    /// `<section>.metadata.hive`, when present and a table; its key's place.
    fn hive_table<'t, 'i>(
        &mut self,
        root: &'t DeTable<'i>,
        section: &str,
    ) -> Option<(&'t DeTable<'i>, Place)> {
        let metadata = root
            .get(section)?
            .get_ref()
            .as_table()?
            .get("metadata")?
            .get_ref()
            .as_table()?;
        let (key, value) = metadata.get_key_value("hive")?;
        let table_name = format!("{section}.metadata.hive");
        match value.get_ref().as_table() {
            Some(table) => Some((table, self.place(key.span(), &table_name))),
            None => {
                let message = format!("`{table_name}` must be a table, not {}", a(value.get_ref()));
                self.error(
                    "wrong-type",
                    value.span(),
                    &table_name,
                    message,
                    "expected a table",
                );
                None
            }
        }
    }

    /// Reads one table of keys in `scope`. Returns the layer and, for a package, its image tables.
    fn layer(
        &mut self,
        table: &DeTable<'_>,
        table_name: &str,
        scope: Scope,
        whole: Place,
    ) -> (Layer, Vec<ImageTable>) {
        let mut layer = Layer::new(whole);
        let mut images = Vec::new();
        for (key, value) in table {
            let name: &str = key.get_ref();
            let known = schema::key(name);
            match known {
                Some(known) if known.scopes.contains(&scope) => {}
                Some(known) => {
                    self.misplaced_key(key, table_name, known.scopes);
                    continue;
                }
                None => {
                    self.unknown_key(key, table_name, scope);
                    continue;
                }
            }
            let place = self.place(value.span(), table_name);
            let set = |layer: &mut Layer, path: &str| {
                layer.places.insert(path.to_owned(), place.clone());
            };
            match name {
                "images" => images = self.images(value, table_name),
                "bin" => layer.def.bin = self.string(name, value, table_name),
                "base" => layer.def.base = self.string(name, value, table_name),
                "workdir" => layer.def.workdir = self.string(name, value, table_name),
                "user" => layer.def.user = self.string(name, value, table_name),
                "repository" => layer.def.repository = self.string(name, value, table_name),
                "dockerfile" => layer.def.dockerfile = self.string(name, value, table_name),
                "context" => layer.def.context = self.string(name, value, table_name),
                "target" if value.get_ref().is_table() => {
                    // `target` (a Dockerfile stage) one letter away from `targets` (Rust triples per platform).
                    let place = self.place(value.span(), table_name);
                    self.diags.push(
                        ConfigError::new(
                            "wrong-type",
                            &place,
                            "`target` must be a string (a Dockerfile stage), not a table",
                            "expected a string",
                        )
                        .help("did you mean `targets`? It maps platforms to Rust target triples"),
                    );
                }
                "target" => layer.def.target = self.string(name, value, table_name),
                "build-args" => {
                    layer.def.build_args =
                        self.string_map(name, value, table_name, &mut layer.places)
                }
                "registry" => layer.registry = self.string(name, value, table_name),
                "aliases" => layer.def.aliases = self.boolean(name, value, table_name),
                "sbom" => layer.def.sbom = self.boolean(name, value, table_name),
                "compression" => layer.def.compression = self.compression(value, table_name),
                "compression-level" => {
                    layer.def.compression_level = self.compression_level(value, table_name)
                }
                "buildkit" | "tlscacert" | "tlscert" | "tlskey" | "tlsservername" => {
                    let name = CONNECTION_KEYS
                        .iter()
                        .find(|key| **key == name)
                        .expect("listed");
                    self.connection_key(name, value, table_name);
                }
                "entrypoint" => {
                    layer.def.entrypoint = self.strings(name, value, table_name, &mut layer.places)
                }
                "cmd" => layer.def.cmd = self.strings(name, value, table_name, &mut layer.places),
                "tags" => layer.def.tags = self.strings(name, value, table_name, &mut layer.places),
                "platforms" => {
                    layer.def.platforms = self.strings(name, value, table_name, &mut layer.places)
                }
                "env" => {
                    layer.def.env = self.string_map(name, value, table_name, &mut layer.places)
                }
                "labels" => {
                    layer.def.labels = self.string_map(name, value, table_name, &mut layer.places)
                }
                "annotations" => {
                    layer.def.annotations =
                        self.string_map(name, value, table_name, &mut layer.places)
                }
                "targets" => {
                    layer.def.targets = self.string_map(name, value, table_name, &mut layer.places)
                }
                "expose" => layer.def.expose = self.ports(value, table_name, &mut layer.places),
                "files" => layer.def.files = self.files(value, table_name, &mut layer.places),
                "run" => layer.def.run = self.run_steps(value, table_name, &mut layer.places),
                "secrets" => layer.def.secrets = self.secrets(value, table_name, &mut layer.places),
                other => unreachable!("schema key `{other}` has no reader"),
            }
            set(&mut layer, name);
        }
        (layer, images)
    }

    /// A connection key: a string, kept with its place for `config::settings` to check and resolve.
    fn connection_key(
        &mut self,
        name: &'static str,
        value: &Spanned<DeValue<'_>>,
        table_name: &str,
    ) {
        if let Some(text) = self.string(name, value, table_name) {
            let place = self.place(value.span(), table_name);
            self.connection.push(ConnectionKey {
                name,
                value: text,
                place,
            });
        }
    }

    fn unknown_key(
        &mut self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        table_name: &str,
        scope: Scope,
    ) {
        let name: &str = key.get_ref();
        // An image table also takes `variants`, a variant table `tag-suffix`.
        let extra = match scope {
            Scope::Image if table_name.contains(".variants.") => Some(TAG_SUFFIX),
            Scope::Image => Some(VARIANTS),
            _ => None,
        };
        let allowed = KEYS
            .iter()
            .filter(|known| known.scopes.contains(&scope))
            .map(|known| known.name)
            .chain(extra);
        let place = self.place(key.span(), table_name);
        let mut error = ConfigError::new(
            "unknown-key",
            &place,
            format!("unknown key `{name}` in `[{table_name}]`"),
            "unknown key",
        );
        error = match did_you_mean(name, allowed) {
            Some(suggestion) => error.help(format!("did you mean `{suggestion}`?")),
            None => error.help(format!(
                "the keys of `[{table_name}]` are listed in the README's schema section"
            )),
        };
        self.diags.push(error);
    }

    fn misplaced_key(
        &mut self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        table_name: &str,
        scopes: &[Scope],
    ) {
        let name: &str = key.get_ref();
        let place = self.place(key.span(), table_name);
        let tables: Vec<&str> = scopes
            .iter()
            .map(|scope| match scope {
                Scope::Workspace => "`[workspace.metadata.hive]`",
                Scope::Package => "`[package.metadata.hive]`",
                Scope::Image => "`[package.metadata.hive.images.<name>]`",
            })
            .collect();
        let message = format!("`{name}` cannot be set in `[{table_name}]`");
        self.diags.push(
            ConfigError::new("misplaced-key", &place, message, "not allowed here")
                .help(format!("`{name}` belongs in {}", tables.join(" or "))),
        );
    }

    fn wrong_type(
        &mut self,
        path: &str,
        value: &Spanned<DeValue<'_>>,
        table_name: &str,
        expected: &str,
    ) {
        let message = format!("`{path}` must be {expected}, not {}", a(value.get_ref()));
        let place = self.place(value.span(), table_name);
        let mut error = ConfigError::new(
            "wrong-type",
            &place,
            message,
            format!("expected {expected}"),
        );
        if expected.starts_with("an array") && value.get_ref().is_str() {
            error = error.help(format!("write one value as a list: `{path} = [\"…\"]`"));
        } else if expected == "a string"
            && !value.get_ref().is_array()
            && !value.get_ref().is_table()
        {
            error = error.help("quote the value to make it a string");
        } else if expected == "a boolean" {
            let unquote = if value.get_ref().is_str() {
                ", without quotes"
            } else {
                ""
            };
            error = error.help(format!(
                "write `{path} = true` or `{path} = false`{unquote}"
            ));
        }
        self.diags.push(error);
    }

    fn string(
        &mut self,
        path: &str,
        value: &Spanned<DeValue<'_>>,
        table_name: &str,
    ) -> Option<String> {
        match value.get_ref() {
            DeValue::String(text) => Some(text.to_string()),
            _ => {
                self.wrong_type(path, value, table_name, "a string");
                None
            }
        }
    }

    fn boolean(
        &mut self,
        path: &str,
        value: &Spanned<DeValue<'_>>,
        table_name: &str,
    ) -> Option<bool> {
        match value.get_ref() {
            DeValue::Boolean(flag) => Some(*flag),
            _ => {
                self.wrong_type(path, value, table_name, "a boolean");
                None
            }
        }
    }

    fn array<'t, 'i>(
        &mut self,
        path: &str,
        value: &'t Spanned<DeValue<'i>>,
        table_name: &str,
        expected: &str,
    ) -> Option<&'t [Spanned<DeValue<'i>>]> {
        match value.get_ref() {
            DeValue::Array(items) => Some(items),
            _ => {
                self.wrong_type(path, value, table_name, expected);
                None
            }
        }
    }

    fn strings(
        &mut self,
        path: &str,
        value: &Spanned<DeValue<'_>>,
        table_name: &str,
        places: &mut BTreeMap<String, Place>,
    ) -> Option<Vec<String>> {
        let items = self.array(path, value, table_name, "an array of strings")?;
        let mut strings = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            if let Some(text) = self.string(&item_path, item, table_name) {
                places.insert(item_path, self.place(item.span(), table_name));
                strings.push(text);
            }
        }
        Some(strings)
    }

    fn string_map(
        &mut self,
        path: &str,
        value: &Spanned<DeValue<'_>>,
        table_name: &str,
        places: &mut BTreeMap<String, Place>,
    ) -> BTreeMap<String, String> {
        let mut map = BTreeMap::new();
        let Some(table) = value.get_ref().as_table() else {
            self.wrong_type(path, value, table_name, "a table of strings");
            return map;
        };
        for (key, item) in table {
            let item_path = format!("{path}.{}", key.get_ref());
            if let Some(text) = self.string(&item_path, item, table_name) {
                places.insert(
                    format!("{item_path}#key"),
                    self.place(key.span(), table_name),
                );
                places.insert(item_path, self.place(item.span(), table_name));
                map.insert(key.get_ref().to_string(), text);
            }
        }
        map
    }

    fn ports(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        table_name: &str,
        places: &mut BTreeMap<String, Place>,
    ) -> Option<Vec<Port>> {
        let items = self.array("expose", value, table_name, "an array of ports")?;
        let mut ports = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let path = format!("expose[{index}]");
            let parsed = match item.get_ref() {
                DeValue::Integer(number) => {
                    let text = number.as_str();
                    let value = u16::from_str_radix(text, number.radix())
                        .ok()
                        .filter(|n| *n != 0);
                    value
                        .map(Port::tcp)
                        .ok_or_else(|| format!("`{text}` is not a port number (1 to 65535)"))
                }
                DeValue::String(text) => text.parse::<Port>().map_err(|err| err.to_string()),
                _ => {
                    self.wrong_type(
                        &path,
                        item,
                        table_name,
                        "a port (an integer or a string like \"53/udp\")",
                    );
                    continue;
                }
            };
            match parsed {
                Ok(port) => {
                    places.insert(path, self.place(item.span(), table_name));
                    ports.push(port);
                }
                Err(reason) => {
                    let place = self.place(item.span(), table_name);
                    self.diags.push(
                        ConfigError::new("invalid-port", &place, format!("invalid port in `expose`: {reason}"), "here")
                            .help("a port is a number from 1 to 65535, optionally with /tcp, /udp or /sctp"),
                    );
                }
            }
        }
        Some(ports)
    }

    fn files(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        table_name: &str,
        places: &mut BTreeMap<String, Place>,
    ) -> Option<Vec<FileSpec>> {
        let items = self.array("files", value, table_name, "an array of tables")?;
        let mut files = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let path = format!("files[{index}]");
            let Some(table) = item.get_ref().as_table() else {
                self.wrong_type(
                    &path,
                    item,
                    table_name,
                    "a table (`{ src = \"…\", dst = \"…\" }`)",
                );
                continue;
            };
            // Places are keyed by the index in the list that is kept, which skips broken entries.
            let kept = format!("files[{}]", files.len());
            let mut entry_places = vec![(kept.clone(), self.place(item.span(), table_name))];
            let (mut src, mut dst, mut mode, mut complete) = (None, None, None, true);
            for (key, field) in table {
                let field_path = format!("{path}.{}", key.get_ref());
                match key.get_ref().as_ref() {
                    "src" => src = self.string(&field_path, field, table_name),
                    "dst" => dst = self.string(&field_path, field, table_name),
                    "mode" => mode = self.mode(&field_path, field, table_name),
                    other => {
                        let place = self.place(key.span(), table_name);
                        let mut error = ConfigError::new(
                            "unknown-key",
                            &place,
                            format!("unknown key `{other}` in an entry of `files`"),
                            "unknown key",
                        );
                        error = match did_you_mean(other, FILE_KEYS.iter().copied()) {
                            Some(suggestion) => error.help(format!("did you mean `{suggestion}`?")),
                            None => error
                                .help("an entry of `files` has the keys `src`, `dst` and `mode`"),
                        };
                        self.diags.push(error);
                        complete = false;
                    }
                }
                entry_places.push((
                    format!("{kept}.{}", key.get_ref()),
                    self.place(field.span(), table_name),
                ));
            }
            for (required, present) in [("src", src.is_some()), ("dst", dst.is_some())] {
                if !present && !table.contains_key(required) {
                    let place = self.place(item.span(), table_name);
                    self.diags.push(
                        ConfigError::new(
                            "missing-key",
                            &place,
                            format!("an entry of `files` has no `{required}`"),
                            format!("`{required}` missing"),
                        )
                        .help("write each entry as `{ src = \"path/in/package\", dst = \"/path/in/image\" }`"),
                    );
                }
            }
            if let (Some(src), Some(dst), true) = (src, dst, complete) {
                places.extend(entry_places);
                files.push(FileSpec { src, dst, mode });
            }
        }
        Some(files)
    }

    /// `secrets = { id = { env = "NAME" } | { file = "path" } }`: each entry a table with exactly one source.
    fn secrets(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        table_name: &str,
        places: &mut BTreeMap<String, Place>,
    ) -> BTreeMap<String, SecretSource> {
        let mut secrets = BTreeMap::new();
        let Some(table) = value.get_ref().as_table() else {
            self.wrong_type("secrets", value, table_name, "a table of secret sources");
            return secrets;
        };
        for (key, entry) in table {
            let path = format!("secrets.{}", key.get_ref());
            if let Some(source) = self.secret_source(&path, entry, table_name) {
                places.insert(format!("{path}#key"), self.place(key.span(), table_name));
                places.insert(path, self.place(entry.span(), table_name));
                secrets.insert(key.get_ref().to_string(), source);
            }
        }
        secrets
    }

    /// One secret's source; every mistake in it is reported.
    fn secret_source(
        &mut self,
        path: &str,
        entry: &Spanned<DeValue<'_>>,
        table_name: &str,
    ) -> Option<SecretSource> {
        const EXPECTED: &str = "a table (`{ env = \"NAME\" }` or `{ file = \"path\" }`)";
        let Some(table) = entry.get_ref().as_table() else {
            self.wrong_type(path, entry, table_name, EXPECTED);
            return None;
        };
        let mut sources = Vec::new();
        let mut complete = true;
        for (key, field) in table {
            let field_path = format!("{path}.{}", key.get_ref());
            match key.get_ref().as_ref() {
                "env" => match self.string(&field_path, field, table_name) {
                    Some(name) => sources.push(SecretSource::Env(name)),
                    None => complete = false,
                },
                "file" => match self.string(&field_path, field, table_name) {
                    Some(file) => sources.push(SecretSource::File(file)),
                    None => complete = false,
                },
                other => {
                    let place = self.place(key.span(), table_name);
                    let mut error = ConfigError::new(
                        "unknown-key",
                        &place,
                        format!("unknown key `{other}` in the secret `{path}`"),
                        "unknown key",
                    );
                    error = match did_you_mean(other, SECRET_KEYS.iter().copied()) {
                        Some(suggestion) => error.help(format!("did you mean `{suggestion}`?")),
                        None => error.help(
                            "a secret is read from `env` (a variable's name) or `file` (a path)",
                        ),
                    };
                    self.diags.push(error);
                    complete = false;
                }
            }
        }
        if !complete {
            return None;
        }
        if sources.len() == 1 {
            return sources.pop();
        }
        let place = self.place(entry.span(), table_name);
        let (message, label) = if sources.is_empty() {
            (
                format!("the secret `{path}` has no source"),
                "no `env` or `file`",
            )
        } else {
            (
                format!("the secret `{path}` has both `env` and `file`"),
                "two sources",
            )
        };
        self.diags.push(
            ConfigError::new("invalid-secret", &place, message, label).help(
                "write exactly one source: `{ env = \"NPM_TOKEN\" }` or `{ file = \"~/.netrc\" }`",
            ),
        );
        None
    }

    fn mode(&mut self, path: &str, value: &Spanned<DeValue<'_>>, table_name: &str) -> Option<Mode> {
        let (parsed, shown) = match value.get_ref() {
            DeValue::Integer(number) => (
                u32::from_str_radix(number.as_str(), number.radix())
                    .ok()
                    .filter(|mode| *mode <= Mode::MAX)
                    .map(Mode),
                number.as_str().to_owned(),
            ),
            DeValue::String(text) => (Mode::parse_octal(text), text.to_string()),
            _ => {
                self.wrong_type(path, value, table_name, "a mode (`0o644` or \"0644\")");
                return None;
            }
        };
        if parsed.is_none() {
            let place = self.place(value.span(), table_name);
            self.diags.push(
                ConfigError::new("invalid-mode", &place, format!("`{shown}` is not a file mode"), "not a mode")
                    .help("write permission bits in octal, up to 0o7777: `mode = 0o755` or `mode = \"0755\"`"),
            );
        } else if let DeValue::Integer(number) = value.get_ref()
            && number.radix() == 10
            && number.as_str().len() >= 3
        {
            // `mode = 755` is decimal 755 (0o1363): almost certainly meant as octal.
            let place = self.place(value.span(), table_name);
            self.diags.push(
                ConfigError::new(
                    "invalid-mode",
                    &place,
                    format!("`mode = {}` is a decimal number", number.as_str()),
                    "decimal, not octal",
                )
                .help(format!(
                    "write it in octal: `mode = 0o{}` or `mode = \"{}\"`",
                    number.as_str(),
                    number.as_str()
                )),
            );
            return None;
        }
        parsed
    }

    fn images(&mut self, value: &Spanned<DeValue<'_>>, table_name: &str) -> Vec<ImageTable> {
        let mut images = Vec::new();
        let Some(table) = value.get_ref().as_table() else {
            self.wrong_type("images", value, table_name, "a table of image tables");
            return images;
        };
        for (key, image) in table {
            let name = key.get_ref().to_string();
            let image_table_name = format!("{table_name}.images.{name}");
            let name_place = self.place(key.span(), &image_table_name);
            if let Err(reason) = check_image_name(&name) {
                self.diags.push(
                    ConfigError::new("invalid-image-name", &name_place, format!("invalid image name `{name}`"), reason)
                        .help("image names become repository names: use lowercase letters, digits, `.`, `_` and `-`"),
                );
                continue;
            }
            let Some(fields) = image.get_ref().as_table() else {
                self.wrong_type(&format!("images.{name}"), image, table_name, "a table");
                continue;
            };
            // `variants` is not an image key (a variant cannot have variants): it is taken out before the keys are read.
            let mut fields = fields.clone();
            let variants = match fields.remove_entry(VARIANTS) {
                Some((_, value)) => self.variants(&value, &image_table_name),
                None => Vec::new(),
            };
            let (layer, _) =
                self.layer(&fields, &image_table_name, Scope::Image, name_place.clone());
            images.push(ImageTable {
                name,
                name_place,
                layer,
                variants,
            });
        }
        images
    }
}

/// The key of an image's variant tables.
const VARIANTS: &str = "variants";
/// The key of a variant's tag suffix.
const TAG_SUFFIX: &str = "tag-suffix";

impl Walker<'_> {
    /// The variant tables of an image table.
    fn variants(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        image_table_name: &str,
    ) -> Vec<VariantTable> {
        let mut variants = Vec::new();
        let Some(table) = value.get_ref().as_table() else {
            self.wrong_type(
                VARIANTS,
                value,
                image_table_name,
                "a table of variant tables",
            );
            return variants;
        };
        for (key, variant) in table {
            let name = key.get_ref().to_string();
            let table_name = format!("{image_table_name}.{VARIANTS}.{name}");
            let name_place = self.place(key.span(), &table_name);
            if let Err(reason) = check_variant_name(&name) {
                self.diags.push(
                    ConfigError::new(
                        "invalid-variant-name",
                        &name_place,
                        format!("invalid variant name `{name}`"),
                        reason,
                    )
                    .help("a variant name starts with a lowercase letter or digit, then lowercase letters, digits, `.`, `_` and `-`"),
                );
                continue;
            }
            let Some(fields) = variant.get_ref().as_table() else {
                self.wrong_type(
                    &format!("{VARIANTS}.{name}"),
                    variant,
                    image_table_name,
                    "a table",
                );
                continue;
            };
            let mut fields = fields.clone();
            let tag_suffix = fields.remove_entry(TAG_SUFFIX).and_then(|(_, value)| {
                let text = self.string(TAG_SUFFIX, &value, &table_name)?;
                Some((text, self.place(value.span(), &table_name)))
            });
            if let Some((key, _)) = fields.remove_entry(VARIANTS) {
                let place = self.place(key.span(), &table_name);
                self.diags.push(
                    ConfigError::new(
                        "misplaced-key",
                        &place,
                        format!("`{VARIANTS}` cannot be set in `[{table_name}]`"),
                        "not allowed here",
                    )
                    .help("a variant cannot have variants: declare another variant of the image instead"),
                );
            }
            let (layer, _) = self.layer(&fields, &table_name, Scope::Image, name_place.clone());
            variants.push(VariantTable {
                name,
                name_place,
                layer,
                tag_suffix,
            });
        }
        variants
    }
}

/// Variant names follow `@` in an image's name and make its default tag suffix: `[a-z0-9][a-z0-9._-]*`.
pub(crate) fn check_variant_name(name: &str) -> Result<(), &'static str> {
    let mut bytes = name.bytes();
    match bytes.next() {
        None => return Err("empty name"),
        Some(first) if !(first.is_ascii_lowercase() || first.is_ascii_digit()) => {
            return Err("must start with a lowercase letter or digit");
        }
        Some(_) => {}
    }
    if bytes
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        Ok(())
    } else {
        Err("only lowercase letters, digits, `.`, `_` and `-` are allowed")
    }
}

/// Image names are repository path components (they name the default repository) and `hive:` references:
/// lowercase alphanumerics separated by single `.`, `_`, `-`.
pub(crate) fn check_image_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("uppercase letters are not allowed");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("only lowercase letters, digits, `.`, `_` and `-` are allowed");
    }
    let bytes = name.as_bytes();
    let separator = |b: &u8| matches!(b, b'.' | b'_' | b'-');
    if separator(&bytes[0]) || separator(&bytes[bytes.len() - 1]) {
        return Err("must start and end with a letter or digit");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive_build::{Network, RunCommand, RunStep, Sharing};

    fn read(text: &str) -> (ManifestHive, Vec<String>) {
        let file = Arc::new(SourceFile::new(
            "Cargo.toml".into(),
            "Cargo.toml".into(),
            text.into(),
        ));
        let mut diags = Diagnostics::default();
        let manifest = read_manifest(&file, true, true, &mut diags);
        (manifest, diags.messages())
    }

    #[test]
    fn reads_every_key_with_places() {
        let (manifest, errors) = read(
            r#"
[workspace.metadata.hive]
registry = "ghcr.io/acme"
platforms = ["linux/amd64", "linux/arm64"]
buildkit = "tcp://127.0.0.1:1234"
aliases = true

[package.metadata.hive]
labels = { team = "core" }
sbom = true

[package.metadata.hive.images.api]
bin = "api"
base = "scratch"
entrypoint = ["/usr/local/bin/api"]
cmd = ["--port", "8080"]
env = { RUST_LOG = "info" }
workdir = "/srv"
user = "65532:65532"
expose = [8080, "53/udp"]
annotations = { "org.example/x" = "y" }
files = [{ src = "static", dst = "/srv/static", mode = 0o644 }, { src = "a", dst = "/a", mode = "0755" }]
tags = ["{version}"]
repository = "ghcr.io/acme/the-api"
aliases = false
sbom = false
"#,
        );
        assert_eq!(errors, Vec::<String>::new());
        let workspace = manifest.workspace.unwrap();
        assert_eq!(workspace.registry.as_deref(), Some("ghcr.io/acme"));
        assert_eq!(workspace.def.platforms.as_ref().unwrap().len(), 2);
        assert_eq!(
            (workspace.def.aliases, workspace.def.sbom),
            (Some(true), None)
        );
        let package = manifest.package.unwrap();
        assert_eq!(package.defaults.def.labels["team"], "core");
        assert_eq!(
            (package.defaults.def.aliases, package.defaults.def.sbom),
            (None, Some(true))
        );
        let image = &package.images[0];
        assert_eq!(image.name, "api");
        let def = &image.layer.def;
        assert_eq!((def.aliases, def.sbom), (Some(false), Some(false)));
        let Place::Manifest { span, file, .. } = image.layer.place("aliases") else {
            panic!("no place")
        };
        assert_eq!(&file.text[span], "false");
        assert_eq!(
            def.expose.as_deref(),
            Some(&[Port::tcp(8080), Port::udp(53)][..])
        );
        assert_eq!(def.files.as_ref().unwrap()[0].mode, Some(Mode(0o644)));
        assert_eq!(def.files.as_ref().unwrap()[1].mode, Some(Mode(0o755)));
        let Place::Manifest { span, file, .. } = image.layer.place("cmd[1]") else {
            panic!("no place")
        };
        assert_eq!(&file.text[span], "\"8080\"");
        let Place::Manifest { span, file, .. } = image.layer.place("env.RUST_LOG#key") else {
            panic!("no place")
        };
        assert_eq!(&file.text[span], "RUST_LOG");
    }

    #[test]
    fn compression_keys_read_with_their_mistakes() {
        let (manifest, errors) = read(
            r#"
[workspace.metadata.hive]
compression = "zstd"
compression-level = 19

[package.metadata.hive]
compression = "brotli"
compression-level = -1

[package.metadata.hive.images.api]
compression = "uncompressed"
compression-level = "3"
"#,
        );
        assert_eq!(
            errors,
            [
                "invalid-compression: `compression` cannot be `brotli`",
                "invalid-compression-level: `compression-level = -1` is not a level",
                "wrong-type: `compression-level` must be an integer, not a string",
            ]
        );
        let workspace = manifest.workspace.unwrap();
        assert_eq!(
            (workspace.def.compression, workspace.def.compression_level),
            (Some(hive_build::Compression::Zstd), Some(19))
        );
        let package = manifest.package.unwrap();
        assert_eq!(
            package.images[0].layer.def.compression,
            Some(hive_build::Compression::Uncompressed)
        );
    }

    #[test]
    fn collects_every_mistake() {
        let (_, errors) = read(
            r#"
[workspace.metadata.hive]
bin = "x"
tgas = ["a"]
aliases = "yes"

[package.metadata.hive.images.api]
tags = "latest"
env = { PORT = 8080 }
expose = [0, "80/icmp"]
files = [{ src = "a", dest = "/a" }, { src = "b", dst = "/b", mode = 755 }]

[package.metadata.hive.images.Bad]
"#,
        );
        assert_eq!(
            errors,
            [
                "wrong-type: `aliases` must be a boolean, not a string",
                "misplaced-key: `bin` cannot be set in `[workspace.metadata.hive]`",
                "unknown-key: unknown key `tgas` in `[workspace.metadata.hive]`",
                "invalid-image-name: invalid image name `Bad`",
                "wrong-type: `env.PORT` must be a string, not an integer",
                "invalid-port: invalid port in `expose`: `0` is not a port number (1 to 65535)",
                "invalid-port: invalid port in `expose`: unknown protocol `icmp`: expected tcp, udp or sctp",
                "unknown-key: unknown key `dest` in an entry of `files`",
                "missing-key: an entry of `files` has no `dst`",
                "invalid-mode: `mode = 755` is a decimal number",
                "wrong-type: `tags` must be an array of strings, not a string",
            ]
        );
    }

    #[test]
    fn variant_tables_are_read_with_their_mistakes() {
        let (manifest, errors) = read(
            r#"
[package.metadata.hive.images.api]
bin = "api"

[package.metadata.hive.images.api.variants.debug]
env = { RUST_LOG = "debug" }
tag-suffix = "-dbg"

[package.metadata.hive.images.api.variants.bare]

[package.metadata.hive.images.api.variants.Bad]
[package.metadata.hive.images.api.variants.odd]
colour = "red"
tag-suffix = 1
variants = {}
"#,
        );
        assert_eq!(
            errors,
            [
                "invalid-variant-name: invalid variant name `Bad`",
                "wrong-type: `tag-suffix` must be a string, not an integer",
                "misplaced-key: `variants` cannot be set in `[package.metadata.hive.images.api.variants.odd]`",
                "unknown-key: unknown key `colour` in `[package.metadata.hive.images.api.variants.odd]`",
            ]
        );
        let image = &manifest.package.unwrap().images[0];
        assert_eq!(image.layer.def.bin.as_deref(), Some("api"));
        let names: Vec<&str> = image.variants.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["bare", "debug", "odd"]);
        let debug = &image.variants[1];
        assert_eq!(debug.layer.def.env["RUST_LOG"], "debug");
        assert_eq!(debug.tag_suffix.as_ref().unwrap().0, "-dbg");
        let Place::Manifest { span, file, .. } = debug.layer.place("env.RUST_LOG") else {
            panic!("no place")
        };
        assert_eq!(&file.text[span], "\"debug\"");
        assert!(image.variants[0].tag_suffix.is_none());
    }

    #[test]
    fn variant_names() {
        assert!(check_variant_name("debug").is_ok());
        assert!(check_variant_name("0.musl_x-y").is_ok());
        assert!(check_variant_name("").is_err());
        assert!(check_variant_name("-debug").is_err());
        assert!(check_variant_name("Debug").is_err());
        assert!(check_variant_name("de@bug").is_err());
    }

    #[test]
    fn reads_run_steps_with_places() {
        let (manifest, errors) = read(
            r#"
[workspace.metadata.hive]
run = ["update-ca-certificates"]

[package.metadata.hive.images.api]
run = [
  "apt-get update",
  { command = ["make", "all"], env = { CC = "gcc" }, workdir = "/src", user = "1000", network = "none", cache = [{ target = "/root/.cache", id = "c", sharing = "private" }], secrets = ["npm"] },
]
"#,
        );
        assert_eq!(errors, Vec::<String>::new());
        let workspace = manifest.workspace.unwrap();
        assert_eq!(
            workspace.def.run,
            Some(vec![RunStep::shell("update-ca-certificates")])
        );
        let image = &manifest.package.unwrap().images[0];
        let steps = image.layer.def.run.as_ref().unwrap();
        assert_eq!(steps[0], RunStep::shell("apt-get update"));
        let table = &steps[1];
        assert_eq!(
            table.command,
            RunCommand::Exec(vec!["make".into(), "all".into()])
        );
        assert_eq!(table.env["CC"], "gcc");
        assert_eq!(
            (table.workdir.as_deref(), table.user.as_deref()),
            (Some("/src"), Some("1000"))
        );
        assert_eq!(table.network, Some(Network::None));
        assert_eq!(table.cache[0].sharing, Some(Sharing::Private));
        assert_eq!(table.secrets, ["npm"]);
        let text = |path: &str| {
            let Place::Manifest { span, file, .. } = image.layer.place(path) else {
                panic!("no place for {path}")
            };
            file.text[span].to_owned()
        };
        assert_eq!(text("run[0]"), "\"apt-get update\"");
        assert_eq!(text("run[1].workdir"), "\"/src\"");
        assert_eq!(text("run[1].cache[0].target"), "\"/root/.cache\"");
        assert_eq!(text("run[1].env.CC"), "\"gcc\"");
        assert_eq!(text("run[1].secrets[0]"), "\"npm\"");
    }

    #[test]
    fn image_names() {
        assert!(check_image_name("api").is_ok());
        assert!(check_image_name("api-v2.x_y").is_ok());
        assert!(check_image_name("Api").is_err());
        assert!(check_image_name("-api").is_err());
        assert!(check_image_name("a/b").is_err());
        assert!(check_image_name("").is_err());
    }

    #[test]
    fn reads_dockerfile_keys_with_places() {
        let (manifest, errors) = read(
            r#"
[workspace.metadata.hive]
build-args = { SHARED = "1" }
target = "runtime"

[package.metadata.hive.images.api]
dockerfile = "docker/api.Dockerfile"
context = "."
target = "runtime"
build-args = { MODE = "release", N = 1 }

[package.metadata.hive.images.api.variants.debug]
target = "debug"
build-args = { MODE = "debug" }

[package.metadata.hive.images.tool]
target = { "linux/arm64" = "aarch64-unknown-linux-musl" }
"#,
        );
        assert_eq!(
            errors,
            [
                "misplaced-key: `target` cannot be set in `[workspace.metadata.hive]`",
                "wrong-type: `build-args.N` must be a string, not an integer",
                "wrong-type: `target` must be a string (a Dockerfile stage), not a table",
            ]
        );
        assert_eq!(manifest.workspace.unwrap().def.build_args["SHARED"], "1");
        let image = &manifest.package.unwrap().images[0];
        let def = &image.layer.def;
        assert_eq!(def.dockerfile.as_deref(), Some("docker/api.Dockerfile"));
        assert_eq!(
            (def.context.as_deref(), def.target.as_deref()),
            (Some("."), Some("runtime"))
        );
        assert_eq!(
            def.build_args,
            BTreeMap::from([("MODE".to_owned(), "release".to_owned())])
        );
        let text = |layer: &Layer, path: &str| {
            let Place::Manifest { span, file, .. } = layer.place(path) else {
                panic!("no place for {path}")
            };
            file.text[span].to_owned()
        };
        assert_eq!(
            text(&image.layer, "dockerfile"),
            "\"docker/api.Dockerfile\""
        );
        assert_eq!(text(&image.layer, "build-args.MODE#key"), "MODE");
        let debug = &image.variants[0].layer;
        assert_eq!(debug.def.target.as_deref(), Some("debug"));
        assert_eq!(text(debug, "build-args.MODE"), "\"debug\"");
    }
}
