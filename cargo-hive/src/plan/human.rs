//! `plan`'s human output: one block per image, a row per value, and where the value came from in a dim column.

use std::fmt::Write;

use hive_build::SecretSource;
use hive_build::plan::{Base, Origin, Plan, PlanImage};
use owo_colors::OwoColorize;

/// Renders the plan as text.
pub(crate) fn render(plan: &Plan, color: bool) -> String {
    let mut out = String::new();
    if plan.images.is_empty() {
        out.push_str("no images: declare one in `[package.metadata.hive.images.<name>]`\n");
        return out;
    }
    for (index, image) in plan.images.iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        render_image(&mut out, image, &plan.workspace_root, color);
    }
    let references: usize = plan.images.iter().map(|image| image.references.len()).sum();
    let count = plan.images.len();
    let _ = writeln!(
        out,
        "\n{count} image{}, {references} reference{} ({} profile)",
        if count == 1 { "" } else { "s" },
        if references == 1 { "" } else { "s" },
        plan.profile
    );
    out
}

struct Row {
    key: &'static str,
    value: String,
    origin: Option<String>,
}

fn origin(image: &PlanImage, key: &str) -> Option<String> {
    image.origins.get(key).map(|origin| match origin {
        Origin::Default => "default".to_owned(),
        other => other.to_string(),
    })
}

fn render_image(out: &mut String, image: &PlanImage, root: &str, color: bool) {
    let mut header = image.name.clone();
    if color {
        header = header.bold().to_string();
    }
    let mut note = format!("package {} {}", image.package.name, image.package.version);
    if !image.selected {
        note.push_str(", base of a selected image");
    }
    let _ = writeln!(out, "{header}  ({note})");
    let mut rows = Rows(Vec::new());
    what_rows(&mut rows, image, root);
    config_rows(&mut rows, image);
    write_rows(out, rows.0, color);
}

/// The rows being collected for one image.
struct Rows(Vec<Row>);

impl Rows {
    fn add(&mut self, key: &'static str, value: String, origin: Option<String>) {
        self.0.push(Row { key, value, origin });
    }
}

/// What goes into the image: references (and aliases), platforms, base, binary, files and the SBOM.
fn what_rows(rows: &mut Rows, image: &PlanImage, root: &str) {
    let mut row = |key, value, origin| rows.add(key, value, origin);
    for (index, reference) in image.references.iter().enumerate() {
        let from = (index == 0).then(|| origin(image, "tags")).flatten();
        row(
            if index == 0 { "references" } else { "" },
            reference.clone(),
            from,
        );
    }
    // Off is the default and says nothing; on changes what a release pushes.
    if image.aliases {
        row("aliases", "true".to_owned(), origin(image, "aliases"));
    }
    row(
        "platforms",
        image.platforms.join(", "),
        origin(image, "platforms"),
    );
    per_platform_rows(&mut row, image);
    row(
        "binary",
        format!("{} → {}", image.binary.target, image.binary.path),
        origin(image, "bin"),
    );
    for file in &image.files {
        let mode = file
            .mode
            .map(|mode| format!(" ({mode})"))
            .unwrap_or_default();
        // Relative to the workspace: shorter, and what the user wrote.
        let source = file
            .source
            .strip_prefix(root)
            .map_or(file.source.as_str(), |rest| rest.trim_start_matches('/'));
        row(
            "file",
            format!("{source} → {}{mode}", file.destination),
            origin(image, "files"),
        );
    }
    if image.sbom {
        row("sbom", "true".to_owned(), origin(image, "sbom"));
    }
    // Where each secret is read from, never its value (the plan holds no value to show).
    for (id, source) in &image.secrets {
        let shown = match source {
            SecretSource::File(path) => SecretSource::File(
                path.strip_prefix(root)
                    .map_or(path.as_str(), |rest| rest.trim_start_matches('/'))
                    .to_owned(),
            ),
            SecretSource::Env(_) => source.clone(),
        };
        row(
            "secret",
            format!("{id} ← {shown}"),
            origin(image, &format!("secrets.{id}")),
        );
    }
}

/// Each platform's Rust target and base: one row when every platform has the same, else one per platform.
fn per_platform_rows(
    row: &mut impl FnMut(&'static str, String, Option<String>),
    image: &PlanImage,
) {
    let show = |origin: Option<&Origin>| {
        origin.map(|origin| match origin {
            Origin::Default => "default".to_owned(),
            other => other.to_string(),
        })
    };
    let plans = &image.per_platform;
    for (index, plan) in plans.iter().enumerate() {
        let key = if index == 0 { "target" } else { "" };
        let value = format!("{} → {}", plan.platform, plan.target);
        row(key, value, show(plan.origins.get("target")));
    }
    let same_base = plans.windows(2).all(|pair| {
        pair[0].base == pair[1].base && pair[0].origins.get("base") == pair[1].origins.get("base")
    });
    if same_base {
        row("base", base_text(&image.base), origin(image, "base"));
        return;
    }
    for (index, plan) in plans.iter().enumerate() {
        let key = if index == 0 { "base" } else { "" };
        let value = format!("{} → {}", plan.platform, base_text(&plan.base));
        row(key, value, show(plan.origins.get("base")));
    }
}

fn base_text(base: &Base) -> String {
    match base {
        Base::Scratch => "scratch".to_owned(),
        Base::Image { reference } => reference.clone(),
        Base::Hive { image } => format!("hive:{image}"),
    }
}

/// The image config.
fn config_rows(rows: &mut Rows, image: &PlanImage) {
    let mut row = |key, value, origin| rows.add(key, value, origin);
    let config = &image.config;
    row(
        "entrypoint",
        json_list(&config.entrypoint),
        origin(image, "entrypoint"),
    );
    if !config.cmd.is_empty() {
        row("cmd", json_list(&config.cmd), origin(image, "cmd"));
    }
    for (key, value) in &config.env {
        row(
            "env",
            format!("{key}={value}"),
            origin(image, &format!("env.{key}")),
        );
    }
    if let Some(workdir) = &config.workdir {
        row("workdir", workdir.clone(), origin(image, "workdir"));
    }
    if let Some(user) = &config.user {
        row("user", user.clone(), origin(image, "user"));
    }
    if !config.exposed_ports.is_empty() {
        let ports: Vec<String> = config
            .exposed_ports
            .iter()
            .map(ToString::to_string)
            .collect();
        row("expose", ports.join(", "), origin(image, "expose"));
    }
    for (key, value) in &config.labels {
        row(
            "label",
            format!("{key}={value}"),
            origin(image, &format!("labels.{key}")),
        );
    }
    for (key, value) in &config.annotations {
        row(
            "annotation",
            format!("{key}={value}"),
            origin(image, &format!("annotations.{key}")),
        );
    }
    // What a build script set differently for another platform's triple.
    for plan in image.per_platform.iter().skip(1) {
        let differs = |a: Option<&String>, b: &String| a != Some(b);
        for (key, value) in &plan.config.env {
            if differs(config.env.get(key), value) {
                let origin = plan
                    .origins
                    .get(&format!("env.{key}"))
                    .map(ToString::to_string);
                row(
                    "env",
                    format!("{} only: {key}={value}", plan.platform),
                    origin,
                );
            }
        }
        for (key, value) in &plan.config.labels {
            if differs(config.labels.get(key), value) {
                let origin = plan
                    .origins
                    .get(&format!("labels.{key}"))
                    .map(ToString::to_string);
                row(
                    "label",
                    format!("{} only: {key}={value}", plan.platform),
                    origin,
                );
            }
        }
    }
}

fn write_rows(out: &mut String, rows: Vec<Row>, color: bool) {
    // Origins line up in a column unless a value is too long to bother.
    let width = rows
        .iter()
        .map(|row| row.value.chars().count())
        .filter(|width| *width <= 56)
        .max()
        .unwrap_or(0);
    for Row { key, value, origin } in rows {
        let _ = write!(out, "  {key:<11} {value}");
        if let Some(origin) = origin {
            let pad = width.saturating_sub(value.chars().count());
            let origin = format!("{:pad$}  {origin}", "");
            if color {
                let _ = write!(out, "{}", origin.dimmed());
            } else {
                out.push_str(&origin);
            }
        }
        out.push('\n');
    }
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hive_build::plan::{Binary, ImageConfig, PackageInfo, PlatformPlan};

    use super::*;

    fn image(aliases: bool, sbom: bool) -> PlanImage {
        let manifest = |line| Origin::Manifest {
            file: "Cargo.toml".into(),
            line,
            column: 11,
            table: "workspace.metadata.hive".into(),
        };
        let mut origins = BTreeMap::new();
        if aliases {
            origins.insert("aliases".to_owned(), manifest(7));
        }
        if sbom {
            origins.insert("sbom".to_owned(), manifest(8));
        }
        PlanImage {
            name: "api".into(),
            package: PackageInfo {
                name: "api".into(),
                version: "1.4.2".into(),
                manifest_path: "Cargo.toml".into(),
                description: None,
                license: None,
                repository: None,
                homepage: None,
            },
            declared_in: Origin::Default,
            binary: Binary {
                target: "api".into(),
                path: "/usr/local/bin/api".into(),
            },
            repository: "api".into(),
            tags: vec!["1.4.2".into()],
            references: vec!["api:1.4.2".into()],
            aliases,
            platforms: vec!["linux/amd64".into()],
            base: Base::Scratch,
            files: Vec::new(),
            config: ImageConfig::default(),
            sbom,
            secrets: BTreeMap::new(),
            origins: origins.clone(),
            selected: true,
            per_platform: vec![PlatformPlan {
                platform: "linux/amd64".into(),
                target: "x86_64-unknown-linux-gnu".into(),
                base: Base::Scratch,
                files: Vec::new(),
                config: ImageConfig::default(),
                origins,
            }],
        }
    }

    fn rendered(aliases: bool, sbom: bool) -> String {
        let plan = Plan {
            format_version: 1,
            workspace_root: "/w".into(),
            profile: "release".into(),
            images: vec![image(aliases, sbom)],
        };
        render(&plan, false)
    }

    #[test]
    fn aliases_and_sbom_show_only_when_on_with_their_origin() {
        let on = rendered(true, true);
        let row = |key: &str| {
            on.lines()
                .find(|line| line.trim_start().starts_with(key))
                .map(|line| line.split_whitespace().collect::<Vec<_>>())
        };
        assert_eq!(
            row("aliases"),
            Some(vec!["aliases", "true", "Cargo.toml:7"])
        );
        assert_eq!(row("sbom"), Some(vec!["sbom", "true", "Cargo.toml:8"]));
        let off = rendered(false, false);
        assert!(!off.contains("aliases") && !off.contains("sbom"), "{off}");
    }

    #[test]
    fn secrets_show_their_source_relative_to_the_workspace() {
        let mut image = image(false, false);
        image.secrets = [
            (
                "netrc".to_owned(),
                SecretSource::File("/w/api/netrc".into()),
            ),
            ("token".to_owned(), SecretSource::Env("NPM_TOKEN".into())),
        ]
        .into();
        let plan = Plan {
            format_version: 1,
            workspace_root: "/w".into(),
            profile: "release".into(),
            images: vec![image],
        };
        let text = render(&plan, false);
        let secrets: Vec<Vec<&str>> = text
            .lines()
            .filter(|line| line.trim_start().starts_with("secret"))
            .map(|line| line.split_whitespace().collect())
            .collect();
        assert_eq!(
            secrets,
            [
                vec!["secret", "netrc", "←", "file", "api/netrc"],
                vec!["secret", "token", "←", "env", "NPM_TOKEN"],
            ]
        );
    }
}
