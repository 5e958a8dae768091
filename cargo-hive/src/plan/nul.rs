//! NUL bytes in values that end up in the image config or manifest. JSON carries them, but the runtime hands these
//! strings to the kernel and libc (exec arguments, the environment, the working directory, the user), where a NUL
//! ends the string: the container would not start, or start with something else than was written.

use std::collections::BTreeMap;

use hive_build::ImageDef;

use crate::config::{ConfigError, Diagnostics, Layer};
use crate::plan::assemble::Layers;

const HELP: &str = "remove it: the runtime hands these values to the kernel and libc as C strings, which end at \
                    the first NUL";

/// Reports every effective value of the image that has a NUL byte (env names are checked with the other name rules).
pub(super) fn check(layers: &Layers<'_>, diags: &mut Diagnostics) {
    let mut report = |layer: &Layer, path: String, what: String| {
        diags.push(
            ConfigError::new(
                "nul-byte",
                &layer.place(&path),
                format!("{what} contains a NUL byte"),
                "NUL byte",
            )
            .help(HELP),
        );
    };
    type List = fn(&ImageDef) -> Option<&Vec<String>>;
    for (field, get) in [
        ("entrypoint", (|def| def.entrypoint.as_ref()) as List),
        ("cmd", |def| def.cmd.as_ref()),
    ] {
        if let Some((args, layer)) = layers.pick(get) {
            for (index, arg) in args.iter().enumerate() {
                if arg.contains('\0') {
                    let path = format!("{field}[{index}]");
                    report(layer, path.clone(), format!("`{path}`"));
                }
            }
        }
    }
    type Single = fn(&ImageDef) -> Option<&str>;
    for (field, get) in [
        ("workdir", (|def| def.workdir.as_deref()) as Single),
        ("user", |def| def.user.as_deref()),
    ] {
        if let Some((value, layer)) = layers.pick(get)
            && value.contains('\0')
        {
            report(layer, field.to_owned(), format!("`{field}`"));
        }
    }
    type Map = fn(&ImageDef) -> &BTreeMap<String, String>;
    for (field, get, keys) in [
        ("env", (|def| &def.env) as Map, false),
        ("labels", |def| &def.labels, true),
        ("annotations", |def| &def.annotations, true),
        // A build argument's name is checked with the other name rules; its value reaches RUN steps' environment.
        ("build-args", |def| &def.build_args, false),
    ] {
        for (key, (value, layer)) in layers.merged(get) {
            let shown = key.escape_debug();
            if keys && key.contains('\0') {
                report(
                    layer,
                    format!("{field}.{key}#key"),
                    format!("the key `{shown}` of `{field}`"),
                );
            }
            if value.contains('\0') {
                report(
                    layer,
                    format!("{field}.{key}"),
                    format!("`{field}.{shown}`"),
                );
            }
        }
    }
    if let Some((specs, layer)) = layers.pick(|def| def.files.as_ref()) {
        for (index, spec) in specs.iter().enumerate() {
            if spec.dst.contains('\0') {
                let path = format!("files[{index}].dst");
                report(layer, path.clone(), format!("`{path}`"));
            }
        }
    }
}
