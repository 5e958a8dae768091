//! The `run` key: a list of shell commands or step tables, each value kept with its place under `run[<index>]`.

use std::collections::BTreeMap;

use hive_build::schema::{CACHE_KEYS, RUN_KEYS};
use hive_build::{CacheMount, Network, RunCommand, RunStep, Sharing};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::Walker;
use crate::config::diagnostic::{ConfigError, did_you_mean};
use crate::config::source::Place;

impl Walker<'_> {
    /// `run = ["…", { command = … }]`: broken steps are reported and left out (places use the kept index).
    pub(super) fn run_steps(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        table_name: &str,
        places: &mut BTreeMap<String, Place>,
    ) -> Option<Vec<RunStep>> {
        let items = self.array(
            "run",
            value,
            table_name,
            "an array of commands (strings or tables)",
        )?;
        let mut steps = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let path = format!("run[{index}]");
            let kept = format!("run[{}]", steps.len());
            let mut step_places = BTreeMap::new();
            let step = match item.get_ref() {
                DeValue::String(text) => Some(RunStep::shell(text.to_string())),
                DeValue::Table(table) => {
                    let at = item.span();
                    self.run_table(table, at, (&path, &kept), table_name, &mut step_places)
                }
                _ => {
                    self.wrong_type(
                        &path,
                        item,
                        table_name,
                        "a command: a string or a table (`{ command = \"…\" }`)",
                    );
                    None
                }
            };
            if let Some(step) = step {
                places.insert(kept.clone(), self.place(item.span(), table_name));
                places.extend(step_places);
                steps.push(step);
            }
        }
        Some(steps)
    }

    /// One step table; `None` when something in it is wrong (already reported).
    fn run_table(
        &mut self,
        table: &DeTable<'_>,
        at: std::ops::Range<usize>,
        (path, kept): (&str, &str),
        table_name: &str,
        places: &mut BTreeMap<String, Place>,
    ) -> Option<RunStep> {
        let errors_before = self.diags.len();
        let mut step = RunStep::shell(String::new());
        let mut command = None;
        // Values are read under their written path (for messages) and stored under the kept one.
        let mut local = BTreeMap::new();
        for (key, field) in table {
            let field_path = format!("{path}.{}", key.get_ref());
            match key.get_ref().as_ref() {
                "command" => command = self.run_command(&field_path, field, table_name, &mut local),
                "env" => step.env = self.string_map(&field_path, field, table_name, &mut local),
                "workdir" => step.workdir = self.string(&field_path, field, table_name),
                "user" => step.user = self.string(&field_path, field, table_name),
                "network" => step.network = self.network(&field_path, field, table_name),
                "cache" => step.cache = self.caches(&field_path, field, table_name, &mut local),
                "secrets" => {
                    step.secrets = (self.strings(&field_path, field, table_name, &mut local))
                        .unwrap_or_default()
                }
                "secret-env" => {
                    step.secret_env = self.string_map(&field_path, field, table_name, &mut local)
                }
                other => self.unknown_nested_key(key, other, "a `run` table", RUN_KEYS, table_name),
            }
            local.insert(field_path, self.place(field.span(), table_name));
        }
        if command.is_none() && !table.contains_key("command") {
            let place = self.place(at, table_name);
            self.diags.push(
                ConfigError::new("missing-key", &place, "a `run` table has no `command`", "`command` missing")
                    .help("write `{ command = \"apt-get update\" }` or `{ command = [\"/bin/tool\", \"arg\"] }`"),
            );
        }
        places.extend(
            local
                .into_iter()
                .map(|(key, place)| (key.replacen(path, kept, 1), place)),
        );
        step.command = command?;
        (self.diags.len() == errors_before).then_some(step)
    }

    fn run_command(
        &mut self,
        path: &str,
        value: &Spanned<DeValue<'_>>,
        table_name: &str,
        places: &mut BTreeMap<String, Place>,
    ) -> Option<RunCommand> {
        match value.get_ref() {
            DeValue::String(text) => Some(RunCommand::Shell(text.to_string())),
            DeValue::Array(_) => self
                .strings(path, value, table_name, places)
                .map(RunCommand::Exec),
            _ => {
                self.wrong_type(
                    path,
                    value,
                    table_name,
                    "a string (shell form) or an array of strings",
                );
                None
            }
        }
    }

    fn network(
        &mut self,
        path: &str,
        value: &Spanned<DeValue<'_>>,
        table_name: &str,
    ) -> Option<Network> {
        let name = self.string(path, value, table_name)?;
        let network = Network::parse(&name);
        if network.is_none() {
            self.unknown_name(path, value, table_name, &name, Network::NAMES);
        }
        network
    }

    fn caches(
        &mut self,
        path: &str,
        value: &Spanned<DeValue<'_>>,
        table_name: &str,
        places: &mut BTreeMap<String, Place>,
    ) -> Vec<CacheMount> {
        let Some(items) = self.array(path, value, table_name, "an array of tables") else {
            return Vec::new();
        };
        let mut mounts = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            let Some(table) = item.get_ref().as_table() else {
                self.wrong_type(
                    &item_path,
                    item,
                    table_name,
                    "a table (`{ target = \"/var/cache/apt\" }`)",
                );
                continue;
            };
            places.insert(item_path.clone(), self.place(item.span(), table_name));
            let (mut target, mut id, mut sharing) = (None, None, None);
            for (key, field) in table {
                let field_path = format!("{item_path}.{}", key.get_ref());
                match key.get_ref().as_ref() {
                    "target" => target = self.string(&field_path, field, table_name),
                    "id" => id = self.string(&field_path, field, table_name),
                    "sharing" => {
                        let name = self.string(&field_path, field, table_name);
                        sharing = name.as_deref().and_then(Sharing::parse);
                        if let Some(name) = name.filter(|_| sharing.is_none()) {
                            self.unknown_name(
                                &field_path,
                                field,
                                table_name,
                                &name,
                                Sharing::NAMES,
                            );
                        }
                    }
                    other => self.unknown_nested_key(
                        key,
                        other,
                        "a `cache` entry",
                        CACHE_KEYS,
                        table_name,
                    ),
                }
                places.insert(field_path, self.place(field.span(), table_name));
            }
            match target {
                Some(target) => mounts.push(CacheMount {
                    target,
                    id,
                    sharing,
                }),
                None if !table.contains_key("target") => {
                    let place = self.place(item.span(), table_name);
                    self.diags.push(
                        ConfigError::new("missing-key", &place, "a `cache` entry has no `target`", "`target` missing")
                            .help("write `{ target = \"/var/cache/apt\" }`: the absolute path it is mounted at"),
                    );
                }
                None => {}
            }
        }
        mounts
    }

    fn unknown_name(
        &mut self,
        path: &str,
        value: &Spanned<DeValue<'_>>,
        table_name: &str,
        name: &str,
        names: &[&str],
    ) {
        let place = self.place(value.span(), table_name);
        let quoted: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
        self.diags.push(
            ConfigError::new(
                "invalid-value",
                &place,
                format!("`{path}` cannot be `{name}`"),
                "unknown value",
            )
            .help(format!("`{path}` is one of {}", quoted.join(", "))),
        );
    }

    fn unknown_nested_key(
        &mut self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        name: &str,
        what: &str,
        known: &[&str],
        table_name: &str,
    ) {
        let place = self.place(key.span(), table_name);
        let error = ConfigError::new(
            "unknown-key",
            &place,
            format!("unknown key `{name}` in {what}"),
            "unknown key",
        );
        let error = match did_you_mean(name, known.iter().copied()) {
            Some(suggestion) => error.help(format!("did you mean `{suggestion}`?")),
            None => error.help(format!("the keys of {what} are {}", known.join(", "))),
        };
        self.diags.push(error);
    }
}
