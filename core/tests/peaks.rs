//! The peak finders against the simulator's truth, on 1M versions of the four frame types of
//! `cargo xtask bench peaks` (issue 6). The thresholds are what the finders reach on these
//! frames, a little lower: a change that loses spots or finds false ones fails here.
use hdrmx_core::peaks::score::{frames, score, Size};
use hdrmx_core::peaks::{DispersionParams, Finder, PeakFinder, RadialParams};
use hdrmx_core::sim::simulate;

/// Least recall on each frame (in the order of `frames`), per finder.
const RECALL: [(&str, [f64; 4]); 3] = [
    ("radial", [0.82, 0.87, 0.98, 0.64]),
    ("dispersion", [0.82, 0.77, 0.87, 0.64]),
    ("dispersion_extended", [0.83, 0.78, 0.90, 0.66]),
];

fn finder(name: &str) -> Finder {
    match name {
        "radial" => Finder::Radial(RadialParams::default()),
        "dispersion" => Finder::Dispersion(DispersionParams::default()),
        _ => Finder::Dispersion(DispersionParams::extended()),
    }
}

#[test]
fn finders_find_the_simulated_spots_and_little_else() {
    let mut failures = Vec::new();
    for (k, (name, spec)) in frames(Size::Small).into_iter().enumerate() {
        let frame = simulate(&spec);
        for (finder_name, recall) in RECALL {
            let mut pf =
                PeakFinder::new(finder(finder_name), frame.nx, frame.ny, Some(&frame.mask))
                    .unwrap();
            let found = pf.search(&frame.pixels).unwrap();
            let s = score(&frame, &found.peaks);
            assert!(s.visible > 100 && s.visible_bright > 50, "{name}: {s:?}");
            if s.precision < 0.99 || s.recall_bright < 1.0 || s.recall < recall[k] {
                failures.push(format!(
                    "{name}, {finder_name}: {s:?}, recall wanted {}",
                    recall[k]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
