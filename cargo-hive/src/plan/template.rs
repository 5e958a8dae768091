//! Tag templates: `{version}`, `{major}`, `{minor}`, `{patch}`, `{profile}`, `{git.sha}`, `{git.short_sha}`,
//! `{git.branch}` and `{env.NAME}`. Git and environment values come through [`Context`], so tests are deterministic
//! and git only runs when a template needs it.

use cargo_metadata::semver::Version;

use super::git::GitFacts;
use crate::config::did_you_mean;

/// The values a template can use.
pub(crate) struct Context<'a> {
    pub(crate) profile: &'a str,
    pub(crate) git: &'a GitFacts,
    pub(crate) env: &'a dyn Fn(&str) -> Option<String>,
}

/// A problem in a template, at `offset..offset + len` of its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TemplateError {
    pub(crate) offset: usize,
    pub(crate) len: usize,
    pub(crate) message: String,
    pub(crate) label: &'static str,
    pub(crate) help: Option<String>,
}

const VARIABLES: &[&str] = &[
    "version",
    "major",
    "minor",
    "patch",
    "profile",
    "git.sha",
    "git.short_sha",
    "git.branch",
    "env.NAME",
];

/// Renders a template; every problem in it is returned, not only the first.
pub(crate) fn render(
    template: &str,
    version: &Version,
    context: &Context<'_>,
) -> Result<String, Vec<TemplateError>> {
    let mut out = String::with_capacity(template.len());
    let mut errors = Vec::new();
    let mut rest = template;
    let mut offset = 0;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let start = offset + open;
        let Some(close) = rest[open..].find('}') else {
            errors.push(TemplateError {
                offset: start,
                len: template.len() - start,
                message: format!("unclosed `{{` in template `{template}`"),
                label: "no closing `}`",
                help: Some("template variables are written `{version}`".to_owned()),
            });
            rest = "";
            break;
        };
        let name = &rest[open + 1..open + close];
        let len = close + 1;
        match variable(name, version, context) {
            Ok(value) => out.push_str(&value),
            Err((message, label, help)) => {
                errors.push(TemplateError {
                    offset: start,
                    len,
                    message,
                    label,
                    help,
                });
            }
        }
        rest = &rest[open + len..];
        offset = start + len;
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

type VariableError = (String, &'static str, Option<String>);

fn variable(name: &str, version: &Version, context: &Context<'_>) -> Result<String, VariableError> {
    let git = |value: Result<&str, &super::git::GitError>| {
        value.map(str::to_owned).map_err(|reason| {
            (
                format!("`{{{name}}}` needs git: {reason}"),
                "needs git",
                Some(if name == "git.branch" {
                    "run in a git checkout, or set HIVE_GIT_BRANCH".into()
                } else {
                    "run in a git checkout, or set HIVE_GIT_SHA to the commit".into()
                }),
            )
        })
    };
    match name {
        // `+` starts build metadata in a version but cannot appear in a tag.
        "version" => Ok(version.to_string().replace('+', "-")),
        "major" => Ok(version.major.to_string()),
        "minor" => Ok(version.minor.to_string()),
        "patch" => Ok(version.patch.to_string()),
        "profile" => Ok(context.profile.to_owned()),
        "git.sha" => git(context.git.sha()),
        "git.short_sha" => git(context.git.short_sha()),
        // Branches like `feature/x` become `feature-x`: `/` is not allowed in a tag.
        "git.branch" => git(context.git.branch()).map(|branch| {
            branch.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '-' }).collect()
        }),
        _ => match name.strip_prefix("env.") {
            Some("") => Err((
                "`{env.}` names no environment variable".to_owned(),
                "empty name",
                Some("write `{env.NAME}`".into()),
            )),
            Some(var) => (context.env)(var).ok_or_else(|| {
                (
                    format!("environment variable `{var}` is not set"),
                    "not set",
                    Some(format!("set `{var}` when running cargo hive, or remove `{{env.{var}}}` from the tag")),
                )
            }),
            None => {
                let help = match did_you_mean(name, VARIABLES.iter().copied()) {
                    Some(close) => format!("did you mean `{{{close}}}`?"),
                    None => format!(
                        "the variables are {}",
                        VARIABLES.iter().map(|v| format!("`{{{v}}}`")).collect::<Vec<_>>().join(", ")
                    ),
                };
                Err((format!("unknown template variable `{{{name}}}`"), "unknown variable", Some(help)))
            }
        },
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "BUILD").then(|| "42".to_owned())
    }

    fn render_with(template: &str, git: &GitFacts) -> Result<String, Vec<TemplateError>> {
        let version = Version::parse("1.2.3-rc.1+meta").unwrap();
        render(
            template,
            &version,
            &Context {
                profile: "release",
                git,
                env: &env,
            },
        )
    }

    #[test]
    fn renders_every_variable() {
        let git = GitFacts::fixed(
            Some("0123456789abcdef0123456789abcdef01234567"),
            Some("feature/tags"),
            None,
        );
        assert_eq!(render_with("{version}", &git).unwrap(), "1.2.3-rc.1-meta");
        assert_eq!(
            render_with("v{major}.{minor}.{patch}", &git).unwrap(),
            "v1.2.3"
        );
        assert_eq!(
            render_with("{profile}-{env.BUILD}", &git).unwrap(),
            "release-42"
        );
        assert_eq!(render_with("{git.short_sha}", &git).unwrap(), "0123456");
        assert_eq!(render_with("{git.sha}", &git).unwrap().len(), 40);
        assert_eq!(render_with("{git.branch}", &git).unwrap(), "feature-tags");
        assert_eq!(render_with("latest", &git).unwrap(), "latest");
    }

    #[test]
    fn reports_every_error_with_its_offset() {
        let git = GitFacts::fixed(None, None, None);
        let errors = render_with("{verison}-{env.NOPE}-{git.sha}-{env.}-{x", &git).unwrap_err();
        let found: Vec<(usize, usize, &str)> = errors
            .iter()
            .map(|error| (error.offset, error.len, error.message.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (0, 9, "unknown template variable `{verison}`"),
                (10, 10, "environment variable `NOPE` is not set"),
                (21, 9, "`{git.sha}` needs git: not a git repository"),
                (31, 6, "`{env.}` names no environment variable"),
                (
                    38,
                    2,
                    "unclosed `{` in template `{verison}-{env.NOPE}-{git.sha}-{env.}-{x`"
                ),
            ]
        );
        assert_eq!(errors[0].help.as_deref(), Some("did you mean `{version}`?"));
    }
}
