//! `plan`'s human output: one block per image, a row per value, and where the value came from in a dim column.

use std::fmt::Write;

use hive_build::plan::{Base, Origin, Plan, PlanImage};
use hive_build::{Compression, SecretSource};
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
    if !plan.edges.is_empty() {
        render_graph(&mut out, plan);
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

/// The image graph as an indented tree: roots start from a registry image or scratch, children are built on their
/// parent (`base = "hive:<parent>"`). Shown only when some image has a `hive:` base: otherwise it is the list above.
fn render_graph(out: &mut String, plan: &Plan) {
    let dockerfiles = (plan.images.iter()).any(|image| {
        image
            .dockerfile
            .as_ref()
            .is_some_and(|d| !d.hive_images.is_empty())
    });
    out.push_str(if dockerfiles {
        "\nimage graph (`hive:` bases and Dockerfiles' `FROM hive-<name>`)\n"
    } else {
        "\nimage graph (`hive:` bases)\n"
    });
    let roots = plan
        .images
        .iter()
        .filter(|image| !plan.edges.iter().any(|edge| edge.to == image.name));
    for root in roots {
        render_subtree(out, plan, &root.name, 1);
    }
}

fn render_subtree(out: &mut String, plan: &Plan, name: &str, depth: usize) {
    let _ = writeln!(out, "{:indent$}{name}", "", indent = depth * 2);
    // The plan has no cycle (a cycle is an error before it exists); the depth bound only guards that promise.
    if depth > plan.images.len() {
        return;
    }
    for edge in plan.edges.iter().filter(|edge| edge.from == name) {
        render_subtree(out, plan, &edge.to, depth + 1);
    }
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
    if let Some(variant) = &image.variant {
        let suffix = match &variant.tag_suffix {
            Some(suffix) => format!(", tag suffix `{suffix}`"),
            None => ", its own tags".to_owned(),
        };
        rows.add(
            "variant",
            format!("`{}` of `{}`{suffix}", variant.name, variant.image),
            Some(image.declared_in.to_string()),
        );
    }
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
    dockerfile_rows(&mut row, image, root);
    for (index, step) in image.run.iter().enumerate() {
        let key = format!("run[{index}]");
        row("run", run_text(step), origin(image, &key));
    }
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
    // gzip at its default level is what every image gets: shown only when the manifests chose otherwise.
    if image.compression != Compression::Gzip || image.compression_level.is_some() {
        let shown = match image
            .compression_level
            .or(image.compression.default_level())
        {
            Some(level) => format!("{} (level {level})", image.compression),
            None => image.compression.to_string(),
        };
        row("compression", shown, origin(image, "compression"));
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

/// A Dockerfile image's Dockerfile, context, stage, build arguments and the workspace images it is built on.
fn dockerfile_rows(
    row: &mut impl FnMut(&'static str, String, Option<String>),
    image: &PlanImage,
    root: &str,
) {
    let Some(dockerfile) = &image.dockerfile else {
        return;
    };
    // Relative to the workspace: shorter, and what the user wrote.
    let relative = |path: &str| match path.strip_prefix(root) {
        Some("") => ".".to_owned(),
        Some(rest) => rest.trim_start_matches('/').to_owned(),
        None => path.to_owned(),
    };
    row(
        "dockerfile",
        relative(&dockerfile.dockerfile),
        origin(image, "dockerfile"),
    );
    row(
        "context",
        relative(&dockerfile.context),
        origin(image, "context"),
    );
    if let Some(target) = &dockerfile.target {
        row("stage", target.clone(), origin(image, "stage"));
    }
    for (key, value) in &dockerfile.build_args {
        row(
            "build-arg",
            format!("{key}={value}"),
            origin(image, &format!("build-args.{key}")),
        );
    }
    for name in &dockerfile.hive_images {
        row("from", format!("hive-{name}"), origin(image, "dockerfile"));
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
        Base::Dockerfile => "the Dockerfile's FROM".to_owned(),
    }
}

/// The image config.
fn config_rows(rows: &mut Rows, image: &PlanImage) {
    let mut row = |key, value, origin| rows.add(key, value, origin);
    let config = &image.config;
    // A Dockerfile image's entrypoint is its Dockerfile's, unknown until it is built.
    if image.dockerfile.is_none() {
        row(
            "entrypoint",
            json_list(&config.entrypoint),
            origin(image, "entrypoint"),
        );
    }
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

/// A step as written (the shell form's command, else the argument list), then what else it sets.
fn run_text(step: &hive_build::plan::PlanRunStep) -> String {
    let mut text = match &step.args[..] {
        [shell, dash_c, command] if shell == "/bin/sh" && dash_c == "-c" => command.clone(),
        args => json_list(args),
    };
    for mount in &step.cache {
        let sharing = serde_json::to_value(mount.sharing).unwrap_or_default();
        let sharing = sharing.as_str().unwrap_or_default();
        text.push_str(&format!(" [cache {} {sharing}]", mount.target));
    }
    if !step.secrets.is_empty() {
        text.push_str(&format!(" [secrets {}]", step.secrets.join(", ")));
    }
    for (name, id) in &step.secret_env {
        text.push_str(&format!(" [secret {id} as ${name}]"));
    }
    if step.network == hive_build::Network::None {
        text.push_str(" [network none]");
    }
    text
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hive_build::plan::{Binary, ImageConfig, PackageInfo, PlatformPlan};

    use super::*;

    /// A plan of `images` and `edges`, as `plan` would print it for a workspace at `/w`.
    fn plan_of(images: Vec<PlanImage>, edges: Vec<hive_build::plan::Edge>) -> Plan {
        Plan {
            format_version: 1,
            workspace_root: "/w".into(),
            profile: "release".into(),
            images,
            edges,
        }
    }

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
            variant: None,
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
            compression: Default::default(),
            compression_level: None,
            secrets: BTreeMap::new(),
            origins: origins.clone(),
            selected: true,
            dockerfile: None,
            run: Vec::new(),
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
        let plan = plan_of(vec![image(aliases, sbom)], Vec::new());
        render(&plan, false)
    }

    #[test]
    fn the_graph_is_a_tree_of_hive_bases_shown_only_with_an_edge() {
        let named = |name: &str, base: Option<&str>| {
            let mut image = image(false, false);
            image.name = name.into();
            if let Some(base) = base {
                image.base = Base::Hive { image: base.into() };
            }
            image
        };
        let edge = |from: &str, to: &str| hive_build::plan::Edge {
            from: from.into(),
            to: to.into(),
        };
        let mut plan = plan_of(
            vec![
                named("api", Some("runtime")),
                named("api@debug", Some("runtime")),
                named("lone", None),
                named("runtime", None),
                named("tool", Some("api")),
            ],
            vec![
                edge("api", "tool"),
                edge("runtime", "api"),
                edge("runtime", "api@debug"),
            ],
        );
        let text = render(&plan, false);
        let graph = text.split_once("image graph").unwrap().1;
        assert_eq!(
            graph.lines().take(6).collect::<Vec<_>>(),
            [
                " (`hive:` bases)",
                "  lone",
                "  runtime",
                "    api",
                "      tool",
                "    api@debug",
            ]
        );
        plan.edges.clear();
        assert!(!render(&plan, false).contains("image graph"));
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
        assert!(!off.contains("compression"), "gzip is not shown: {off}");
    }

    #[test]
    fn a_chosen_compression_shows_with_its_level() {
        let mut plan_image = image(false, false);
        plan_image.compression = Compression::Zstd;
        let plan = plan_of(vec![plan_image], Vec::new());
        let text = render(&plan, false);
        let line = text
            .lines()
            .find(|line| line.trim_start().starts_with("compression"))
            .expect("a compression row");
        assert!(line.contains("zstd (level 3)"), "{line}");
    }

    #[test]
    fn run_steps_show_in_order_before_the_binary() {
        use hive_build::plan::{PlanCacheMount, PlanRunStep};
        let step = |args: &[&str]| PlanRunStep {
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            env: BTreeMap::new(),
            workdir: None,
            user: None,
            network: hive_build::Network::Default,
            cache: Vec::new(),
            secrets: Vec::new(),
            secret_env: BTreeMap::new(),
        };
        let mut image = image(false, false);
        let mut second = step(&["make", "all"]);
        second.cache.push(PlanCacheMount {
            target: "/c".into(),
            id: "x".into(),
            sharing: hive_build::Sharing::Locked,
        });
        second.secrets.push("npm".into());
        second.network = hive_build::Network::None;
        image.run = vec![step(&["/bin/sh", "-c", "apt-get update"]), second];
        let plan = plan_of(vec![image], Vec::new());
        let text = render(&plan, false);
        let rows: Vec<&str> = (text.lines())
            .filter(|line| {
                let key = line.split_whitespace().next().unwrap_or_default();
                key == "run" || key == "binary"
            })
            .map(str::trim)
            .collect();
        assert_eq!(rows.len(), 3, "{text}");
        assert!(
            rows[0].starts_with("run") && rows[0].contains("apt-get update"),
            "{text}"
        );
        assert!(
            rows[1].contains(r#"["make","all"] [cache /c locked] [secrets npm] [network none]"#),
            "{text}"
        );
        assert!(rows[2].starts_with("binary"), "{text}");
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
        let plan = plan_of(vec![image], Vec::new());
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

    #[test]
    fn a_dockerfile_image_shows_its_dockerfile_not_an_entrypoint() {
        let mut api = image(false, false);
        api.base = Base::Dockerfile;
        api.per_platform[0].base = Base::Dockerfile;
        api.dockerfile = Some(hive_build::plan::PlanDockerfile {
            dockerfile: "/w/docker/api.Dockerfile".into(),
            context: "/w".into(),
            target: Some("runtime".into()),
            build_args: BTreeMap::from([("MODE".into(), "release".into())]),
            hive_images: vec!["base".into()],
        });
        let mut base = image(false, false);
        base.name = "base".into();
        let edge = hive_build::plan::Edge {
            from: "base".into(),
            to: "api".into(),
        };
        let plan = plan_of(vec![api, base], vec![edge]);
        let text = render(&plan, false);
        let api_block = text.split("\n\n").next().unwrap();
        for row in [
            "  base        the Dockerfile's FROM",
            "  dockerfile  docker/api.Dockerfile",
            "  context     .",
            "  stage       runtime",
            "  build-arg   MODE=release",
            "  from        hive-base",
        ] {
            assert!(api_block.contains(row), "{row:?} in:\n{api_block}");
        }
        assert!(!api_block.contains("entrypoint"), "{api_block}");
        assert!(text.contains(
            "image graph (`hive:` bases and Dockerfiles' `FROM hive-<name>`)\n  base\n    api\n"
        ));
    }
}
