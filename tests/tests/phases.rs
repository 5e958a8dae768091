//! The `phase` events of `--progress json` for a real build and for the no-op build after it: which phases come,
//! in which order, how often, and that their durations are numbers (never how large: speed is the benchmarks' to
//! show).

use std::collections::BTreeMap;

use hive_build::progress::{ErrorKind, Event, Phase};
use hive_e2e::fixture::*;

/// The build's phases (image absent) in the order they came, and each image's in the order they came.
struct Phases {
    build: Vec<Phase>,
    images: BTreeMap<String, Vec<Phase>>,
}

/// The `phase` events of a run, checked to be finite, non-negative durations, sent between progress starting and
/// `build-finished`.
fn phases(events: &[Event]) -> Phases {
    let mut phases = Phases {
        build: Vec::new(),
        images: BTreeMap::new(),
    };
    for event in events {
        let Event::Phase {
            phase,
            image,
            duration_secs,
        } = event
        else {
            continue;
        };
        assert!(
            duration_secs.is_finite() && *duration_secs >= 0.0,
            "{phase:?} of {image:?} took {duration_secs} s"
        );
        assert_eq!(phase.per_image(), image.is_some(), "{event:?}");
        match image {
            Some(image) => phases.images.entry(image.clone()).or_default().push(*phase),
            None => phases.build.push(*phase),
        }
    }
    assert!(
        matches!(
            events.last(),
            Some(Event::BuildFinished { success: true, .. })
        ),
        "{events:?}"
    );
    phases
}

/// Where the image's events lie: each of its phases after its `image-started` and before its `image-finished`.
fn assert_inside_image(events: &[Event], image: &str) {
    let position = |wanted: fn(&Event, &str) -> bool| {
        events
            .iter()
            .position(|event| wanted(event, image))
            .unwrap_or_else(|| panic!("{image}: missing event in {events:?}"))
    };
    let started = position(|e, i| matches!(e, Event::ImageStarted { image, .. } if image == i));
    let finished = position(|e, i| matches!(e, Event::ImageFinished { image, .. } if image == i));
    for (at, event) in events.iter().enumerate() {
        if let Event::Phase { image: Some(i), .. } = event
            && i == image
        {
            assert!(
                started < at && at < finished,
                "{event:?} outside {image}'s run"
            );
        }
    }
}

#[test]
fn a_build_and_the_no_op_after_it_report_their_phases() {
    let fixture = Fixture::example("workspace");
    let platform = format!("linux/{}", hive_e2e::host_arch());
    let build = || {
        let result = succeed(
            fixture
                .build()
                .args(["--platform", &platform, "--progress", "json"]),
        );
        events(&result)
    };
    let names = ["acmectl", "api", "worker", "worker-admin"];

    let first = build();
    let built = phases(&first);
    // No build script declares images here: no build-script pass. BuildKit is connected while cargo builds, so
    // those two end in either order.
    assert_eq!(built.build[..2], [Phase::CargoMetadata, Phase::Plan]);
    let mut overlapping = built.build[2..4].to_vec();
    overlapping.sort();
    assert_eq!(overlapping, [Phase::CargoBuild, Phase::Connect]);
    assert_eq!(built.build[4..], [Phase::Bases]);
    assert_eq!(built.images.keys().collect::<Vec<_>>(), names);
    for (image, phases) in &built.images {
        assert_eq!(
            phases,
            &[
                Phase::Layout,
                Phase::Fresh,
                Phase::Solve,
                Phase::Export,
                Phase::Finish
            ],
            "{image}"
        );
        assert_inside_image(&first, image);
    }
    // The planning phases come first, then cargo's run, whose own events they bracket.
    let cargo_started = (first.iter())
        .position(|event| matches!(event, Event::CargoStarted {}))
        .expect("cargo ran");
    let plan_at = (first.iter())
        .position(|event| {
            matches!(
                event,
                Event::Phase {
                    phase: Phase::Plan,
                    ..
                }
            )
        })
        .unwrap();
    assert!(plan_at < cargo_started);

    // Nothing changed: every image is up to date, so none is solved, exported or finished again.
    let again = build();
    let no_op = phases(&again);
    assert_eq!(solved(&again), Default::default());
    assert_eq!(no_op.images.keys().collect::<Vec<_>>(), names);
    for (image, phases) in &no_op.images {
        assert_eq!(phases, &[Phase::Layout, Phase::Fresh], "{image}");
        assert_inside_image(&again, image);
    }
    assert_eq!(no_op.build.first(), Some(&Phase::CargoMetadata));
}

#[test]
fn the_build_script_pass_is_a_phase_when_it_runs() {
    let fixture = Fixture::build_rs_example();
    let platform = format!("linux/{}", hive_e2e::host_arch());
    let result = succeed(
        fixture
            .build()
            .args(["--platform", &platform, "--progress", "json"]),
    );
    let phases = phases(&events(&result));
    assert_eq!(
        &phases.build[..3],
        [Phase::CargoMetadata, Phase::BuildScripts, Phase::Plan]
    );
    assert_eq!(
        (phases.build.iter())
            .filter(|phase| **phase == Phase::BuildScripts)
            .count(),
        1
    );
}

/// BuildKit is connected while cargo builds: when both fail, cargo's failure is still the one reported (as when
/// the daemon was only asked after cargo), and the build's phases stop before `bases`.
#[test]
fn cargo_fails_first_when_the_daemon_is_down_too() {
    let fixture = Fixture::example("hello");
    fixture.edit(
        "src/main.rs",
        "fn main() {",
        "compile_error!(\"on purpose\");\nfn main() {",
    );
    let missing = fixture.scratch("no-buildkitd.sock");
    let addr = format!("unix://{}", missing.display());
    let result = hive_e2e::run(fixture.build_at(&addr).args(["--progress", "json"]));
    assert_eq!(result.code, 1, "{result:#?}");
    let events = events(&result);
    let kinds: Vec<ErrorKind> = (events.iter())
        .filter_map(|event| match event {
            Event::Error { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, [ErrorKind::CargoFailed], "{result:#?}");
    assert!(result.stderr.contains("on purpose"), "{result:#?}");
    assert!(
        !events.iter().any(|event| matches!(
            event,
            Event::Phase {
                phase: Phase::Bases,
                ..
            }
        )),
        "{result:#?}"
    );
}
