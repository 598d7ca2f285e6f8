//! A hand-written SVG scatter plot of latency against parameters, on
//! log–log axes (BERT sizes span three decades in both). One marker per
//! point, shaped and coloured by series (precision); each model's name is
//! written once, at the first spot near one of its markers that overlaps no
//! other text or marker — or left out, never drawn over something.

use std::fmt::Write;

/// One measured configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotPoint {
    /// The model's name, written next to its marker.
    pub label: String,
    /// The series (precision) picking the marker's shape and colour.
    pub series: String,
    pub parameters_millions: f64,
    pub latency_ms: f64,
}

const WIDTH: f64 = 850.0;
const HEIGHT: f64 = 500.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 620.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 430.0;
const FONT: f64 = 12.0;
/// Advance of one character of the monospace font, as a fraction of its size
/// (DejaVu Sans Mono and most monospace fonts: 0.6).
const CHAR_WIDTH: f64 = 0.6 * FONT;
const MARKER: f64 = 5.0;
const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// Series whose style is fixed: the precisions a sweep plots.
const FIXED_SERIES: [&str; 3] = ["fp32", "fp16", "int8"];

#[derive(Debug, Clone, Copy)]
struct Rect {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

impl Rect {
    fn overlaps(&self, o: &Rect) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }

    fn inside(&self, o: &Rect) -> bool {
        self.x0 >= o.x0 && self.x1 <= o.x1 && self.y0 >= o.y0 && self.y1 <= o.y1
    }

    /// Distance from the rectangle to a point (0 inside).
    fn distance(&self, (x, y): (f64, f64)) -> f64 {
        let dx = (self.x0 - x).max(x - self.x1).max(0.0);
        let dy = (self.y0 - y).max(y - self.y1).max(0.0);
        dx.hypot(dy)
    }
}

/// A log10 axis from a power-of-ten-aligned range covering the values.
struct LogAxis {
    lo: f64,
    hi: f64,
}

impl LogAxis {
    fn covering(values: impl Iterator<Item = f64>) -> LogAxis {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite() && *v > 0.0) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !lo.is_finite() {
            (lo, hi) = (1.0, 10.0);
        }
        // Bounds on the 1-2-5 sequence, with a margin so that no marker
        // sits on the frame.
        let (lo, mut hi) = (step_at_or_below(lo / 1.15), step_at_or_above(hi * 1.15));
        if hi <= lo {
            hi = lo * 10.0;
        }
        LogAxis { lo, hi }
    }

    /// 0..1 along the axis.
    fn fraction(&self, v: f64) -> f64 {
        (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
    }

    /// Tick values: 1, 2, 5 per decade when few decades, else decades only.
    fn ticks(&self) -> Vec<f64> {
        let decades = (self.hi / self.lo).log10();
        let steps: &[f64] = if decades <= 3.5 { &[1.0, 2.0, 5.0] } else { &[1.0] };
        let mut ticks = Vec::new();
        let mut d = 10f64.powf(self.lo.log10().floor());
        while d <= self.hi * 1.0001 {
            for s in steps {
                let t = d * s;
                if t >= self.lo * 0.9999 && t <= self.hi * 1.0001 {
                    ticks.push(t);
                }
            }
            d *= 10.0;
        }
        ticks
    }
}

/// The largest of …, 0.5, 1, 2, 5, 10, … at or below `v`.
fn step_at_or_below(v: f64) -> f64 {
    let decade = 10f64.powf(v.log10().floor());
    [5.0, 2.0, 1.0]
        .iter()
        .map(|s| s * decade)
        .find(|&t| t <= v * (1.0 + 1e-9))
        .unwrap_or(decade)
}

/// The smallest of …, 0.5, 1, 2, 5, 10, … at or above `v`.
fn step_at_or_above(v: f64) -> f64 {
    let decade = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|s| s * decade)
        .find(|&t| t >= v * (1.0 - 1e-9))
        .unwrap_or(10.0 * decade)
}

/// 0.5, 1, 20, 1000 — no trailing zeros.
fn tick_label(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn text_width(s: &str) -> f64 {
    s.chars().count() as f64 * CHAR_WIDTH
}

fn marker(out: &mut String, series: usize, x: f64, y: f64) {
    let color = COLORS[series % COLORS.len()];
    let r = MARKER;
    let _ = match series % 4 {
        0 => writeln!(out, r#"<circle cx="{x:.1}" cy="{y:.1}" r="{r}" fill="{color}"/>"#),
        1 => writeln!(
            out,
            r#"<rect x="{:.1}" y="{:.1}" width="{}" height="{}" fill="{color}"/>"#,
            x - r,
            y - r,
            2.0 * r,
            2.0 * r
        ),
        2 => writeln!(
            out,
            r#"<polygon points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" fill="{color}"/>"#,
            x,
            y - r - 1.0,
            x - r - 1.0,
            y + r,
            x + r + 1.0,
            y + r
        ),
        _ => writeln!(
            out,
            r#"<polygon points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" fill="{color}"/>"#,
            x,
            y - r - 1.0,
            x + r + 1.0,
            y,
            x,
            y + r + 1.0,
            x - r - 1.0,
            y
        ),
    };
}

/// The SVG document: `title` on top, latency (ms) up, parameters (millions) across.
pub fn latency_vs_parameters_svg(points: &[PlotPoint], title: &str) -> String {
    let xa = LogAxis::covering(points.iter().map(|p| p.parameters_millions));
    let ya = LogAxis::covering(points.iter().map(|p| p.latency_ms));
    let px = |v: f64| LEFT + xa.fraction(v) * (RIGHT - LEFT);
    let py = |v: f64| BOTTOM - ya.fraction(v) * (BOTTOM - TOP);
    // Each precision keeps its colour and marker in every plot (fp32,
    // fp16, int8 first, in that order); other series follow as first seen.
    let mut series: Vec<&str> = FIXED_SERIES.to_vec();
    for p in points {
        if !series.contains(&p.series.as_str()) {
            series.push(&p.series);
        }
    }
    let present: Vec<&str> = series
        .iter()
        .copied()
        .filter(|s| points.iter().any(|p| p.series == *s))
        .collect();

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="DejaVu Sans Mono, monospace" font-size="{FONT}">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="28" text-anchor="middle" font-size="14">{}</text>"#,
        (LEFT + RIGHT) / 2.0,
        escape(title)
    );
    // Grid and ticks.
    for t in xa.ticks() {
        let x = px(t);
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{BOTTOM}\" stroke=\"#e4e4e4\"/>"
        );
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            BOTTOM + 18.0,
            tick_label(t)
        );
    }
    for t in ya.ticks() {
        let y = py(t);
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{RIGHT}\" y2=\"{y:.1}\" stroke=\"#e4e4e4\"/>"
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y + 4.0,
            tick_label(t)
        );
    }
    let _ = writeln!(
        out,
        r#"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="black"/>"#,
        RIGHT - LEFT,
        BOTTOM - TOP
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">parameters (millions, log scale)</text>"#,
        (LEFT + RIGHT) / 2.0,
        BOTTOM + 42.0
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(22 {:.1}) rotate(-90)" text-anchor="middle">latency, median (ms, log scale)</text>"#,
        (TOP + BOTTOM) / 2.0
    );

    // Markers first: every label must then avoid all of them.
    let area = Rect {
        x0: LEFT + 2.0,
        y0: TOP + 2.0,
        x1: RIGHT - 2.0,
        y1: BOTTOM - 2.0,
    };
    let mut taken: Vec<Rect> = Vec::new();
    let mut placed_xy: Vec<(f64, f64)> = Vec::new();
    for p in points {
        let (mut x, y) = (px(p.parameters_millions), py(p.latency_ms));
        // A marker that would cover one already drawn moves right until it
        // shows beside it (equal models at equal speed stay visible).
        while placed_xy
            .iter()
            .any(|&(px, py)| (px - x).abs() < 2.0 * MARKER && (py - y).abs() < 2.0 * MARKER)
        {
            x += 2.0 * MARKER + 1.0;
        }
        let s = series.iter().position(|s| *s == p.series).unwrap_or(0);
        marker(&mut out, s, x, y);
        taken.push(Rect {
            x0: x - MARKER - 2.0,
            y0: y - MARKER - 2.0,
            x1: x + MARKER + 2.0,
            y1: y + MARKER + 2.0,
        });
        placed_xy.push((x, y));
    }
    let mut labelled: Vec<&str> = Vec::new();
    for (p, &(x, y)) in points.iter().zip(&placed_xy) {
        if labelled.contains(&p.label.as_str()) {
            continue;
        }
        let w = text_width(&p.label);
        let gap = MARKER + 4.0;
        // (left edge, baseline) candidates: right, left, then above and
        // below — centred, starting at the marker, or ending at it.
        let (above, below) = (y - gap, y + gap + FONT * 0.8);
        let candidates = [
            (x + gap, y + FONT * 0.35),
            (x - gap - w, y + FONT * 0.35),
            (x - w / 2.0, above),
            (x - w / 2.0, below),
            (x - MARKER, above),
            (x - MARKER, below),
            (x + MARKER - w, above),
            (x + MARKER - w, below),
            (x + gap, above),
            (x + gap, below),
            (x - gap - w, above),
            (x - gap - w, below),
        ];
        let fit = candidates.iter().find_map(|&(lx, base)| {
            let r = Rect {
                x0: lx,
                y0: base - FONT * 0.8,
                x1: lx + w,
                y1: base + FONT * 0.25,
            };
            // A label must read as its own marker's: no other model's
            // marker may be as close to it.
            let own = r.distance((x, y));
            let unambiguous = points
                .iter()
                .zip(&placed_xy)
                .filter(|(q, _)| q.label != p.label)
                .all(|(_, &c)| r.distance(c) > own + 4.0);
            (unambiguous && r.inside(&area) && !taken.iter().any(|t| t.overlaps(&r))).then_some((lx, base, r))
        });
        if let Some((lx, base, r)) = fit {
            let _ = writeln!(
                out,
                r#"<text x="{lx:.1}" y="{base:.1}">{}</text>"#,
                escape(&p.label)
            );
            taken.push(r);
            labelled.push(&p.label);
        }
    }
    let mut unlabelled: Vec<&str> = Vec::new();
    for p in points {
        if !labelled.contains(&p.label.as_str()) && !unlabelled.contains(&p.label.as_str()) {
            unlabelled.push(&p.label);
        }
    }

    // Legend, right of the plot area.
    let lx = RIGHT + 20.0;
    let _ = writeln!(out, r#"<text x="{lx}" y="{:.1}">precision</text>"#, TOP + 10.0);
    for (i, s) in present.iter().enumerate() {
        let y = TOP + 32.0 + 22.0 * i as f64;
        let style = series.iter().position(|t| t == s).unwrap_or(0);
        marker(&mut out, style, lx + 6.0, y - 4.0);
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{y:.1}">{}</text>"#,
            lx + 18.0,
            escape(s)
        );
    }
    // Names with no room beside their markers are listed, not drawn over others.
    if !unlabelled.is_empty() {
        let top = TOP + 32.0 + 22.0 * present.len() as f64 + 16.0;
        let small = FONT - 2.0;
        let _ = writeln!(
            out,
            r#"<text x="{lx}" y="{top:.1}" font-size="{small}">too crowded to label:</text>"#
        );
        for (i, name) in unlabelled.iter().enumerate() {
            let _ = writeln!(
                out,
                r#"<text x="{lx}" y="{:.1}" font-size="{small}">{}</text>"#,
                top + 15.0 * (i + 1) as f64,
                escape(name)
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(label: &str, series: &str, x: f64, y: f64) -> PlotPoint {
        PlotPoint {
            label: label.into(),
            series: series.into(),
            parameters_millions: x,
            latency_ms: y,
        }
    }

    /// The fill colours of the markers, in drawing order.
    fn fills(svg: &str) -> Vec<&str> {
        svg.lines()
            .filter_map(|l| l.split("fill=\"").nth(1)?.split('"').next())
            .filter(|c| COLORS.contains(c))
            .collect()
    }

    #[test]
    fn each_precision_keeps_its_colour_whatever_the_order() {
        let a = latency_vs_parameters_svg(
            &[point("m", "fp32", 10.0, 50.0), point("m", "int8", 10.0, 20.0)],
            "t",
        );
        let b = latency_vs_parameters_svg(
            &[point("m", "int8", 10.0, 20.0), point("m", "fp32", 10.0, 50.0)],
            "t",
        );
        let (fa, fb) = (fills(&a), fills(&b));
        // Markers first (in point order), then the legend (in fixed order).
        assert_eq!(fa[..2], [COLORS[0], COLORS[2]]);
        assert_eq!(fb[..2], [COLORS[2], COLORS[0]]);
        assert_eq!(fa[2..], fb[2..], "the legend does not depend on the order");
    }

    #[test]
    fn markers_at_one_spot_are_drawn_side_by_side() {
        let svg = latency_vs_parameters_svg(
            &[point("a", "fp32", 10.0, 50.0), point("b", "fp16", 10.0, 50.0)],
            "t",
        );
        let xs: Vec<f64> = svg
            .lines()
            .filter(|l| COLORS.iter().any(|c| l.contains(c)))
            .take(2)
            .map(|l| {
                // A circle gives its centre, a square its left edge.
                let (key, to_centre) = match l.starts_with("<circle") {
                    true => ("cx=\"", 0.0),
                    false => ("x=\"", MARKER),
                };
                let x: f64 = l
                    .split(key)
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                x + to_centre
            })
            .collect();
        assert!((xs[1] - xs[0]).abs() >= 2.0 * MARKER, "{xs:?}");
    }

    #[test]
    fn axes_cover_the_values_on_one_two_five_steps() {
        let a = LogAxis::covering([4.4, 109.5].into_iter());
        // 4.4 / 1.15 → 2, 109.5 · 1.15 → 200.
        assert_eq!((a.lo, a.hi), (2.0, 200.0));
        assert_eq!(a.ticks(), [2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0]);
        let b = LogAxis::covering([0.3, 4000.0].into_iter());
        assert_eq!((b.lo, b.hi), (0.2, 5000.0));
        assert_eq!(
            b.ticks(),
            [1.0, 10.0, 100.0, 1000.0],
            "decades only over 4+ decades"
        );
        assert_eq!(tick_label(0.5), "0.5");
        assert_eq!(tick_label(200.0), "200");
    }

    #[test]
    fn labels_never_overlap_and_each_name_is_written_once() {
        // Two precisions of one model at nearly the same spot, and a crowd.
        let mut points = vec![
            point("bert-base-uncased", "fp32", 109.5, 390.0),
            point("bert-base-uncased", "int8", 109.5, 150.0),
        ];
        for i in 0..6 {
            points.push(point(&format!("crowd-{i}"), "fp32", 10.0 * 1.5f64.powi(i), 20.0));
        }
        // Markers on top of each other: no label can tell them apart.
        points.push(point("twin-a", "fp32", 3.0, 2.0));
        points.push(point("twin-b", "fp32", 3.0, 2.0));
        let svg = latency_vs_parameters_svg(&points, "test");
        assert_eq!(svg.matches(">bert-base-uncased</text>").count(), 1);
        // Every label's box, recomputed from the SVG, is disjoint from the others.
        let boxes: Vec<Rect> = svg
            .lines()
            .filter(|l| l.starts_with("<text x=") && !l.contains("text-anchor") && !l.contains("font-size"))
            .filter_map(|l| {
                let num = |key: &str| -> f64 {
                    let rest = &l[l.find(key).unwrap() + key.len()..];
                    rest[..rest.find('"').unwrap()].parse().unwrap()
                };
                let text = &l[l.find('>')? + 1..l.rfind("</text>")?];
                let (x, y) = (num("x=\""), num("y=\""));
                (x < RIGHT).then(|| Rect {
                    x0: x,
                    y0: y - FONT * 0.8,
                    x1: x + text_width(text),
                    y1: y + FONT * 0.25,
                })
            })
            .collect();
        assert!(boxes.len() >= 4, "most crowd labels are placed: {boxes:?}");
        // Each name is either beside a marker or listed as too crowded.
        for p in &points {
            let drawn = svg.matches(&format!(">{}</text>", p.label)).count();
            assert_eq!(drawn, 1, "{} is written exactly once", p.label);
        }
        for (i, a) in boxes.iter().enumerate() {
            for b in &boxes[i + 1..] {
                assert!(!a.overlaps(b), "{a:?} overlaps {b:?}");
            }
        }
    }
}
