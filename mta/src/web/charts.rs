//! Charts drawn on the server as SVG (no script, no library): bars over
//! time, lines of several series over time, and horizontal bars for rankings. Labels go through maud, so they
//! are escaped like any page text.

use maud::{Markup, html};

const W: u32 = 640;
const H: u32 = 200;
const PAD: u32 = 30;

/// A vertical bar per value (oldest first), scaled to the largest; `label`
/// names the x axis ends (`first`, `last`).
pub fn bars(title: &str, values: &[u64], color: &str, ends: (&str, &str)) -> Markup {
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    let n = values.len().max(1) as u32;
    let slot = (W - 2 * PAD) / n;
    let plot = H - 2 * PAD;
    over_time(
        title,
        max,
        ends,
        html! {
            @for (i, v) in values.iter().enumerate() {
                @let h = (*v * u64::from(plot) / max) as u32;
                rect x=(PAD + i as u32 * slot) y=(H - PAD - h) width=(slot.saturating_sub(1).max(1)) height=(h) fill=(color) {
                    title { (v) }
                }
            }
        },
    )
}

/// The frame of a chart over time: title with its largest value, x axis and its ends, around `plot`.
fn over_time(title: &str, max: u64, ends: (&str, &str), plot: Markup) -> Markup {
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(title) {
            title { (title) }
            text x=(PAD) y="18" font-size="14" { (title) " (max " (max) ")" }
            line x1=(PAD) y1=(H - PAD) x2=(W - PAD) y2=(H - PAD) stroke="#888" {}
            (plot)
            text x=(PAD) y=(H - 8) font-size="11" { (ends.0) }
            text x=(W - PAD) y=(H - 8) font-size="11" text-anchor="end" { (ends.1) }
        }
    }
}

/// A series of values over time: its name in the legend, values oldest first, colour.
pub struct Series<'a> {
    pub name: &'a str,
    pub values: &'a [u64],
    pub color: &'a str,
}

/// One line per series, all on the scale of the largest value, with a legend.
pub fn lines(title: &str, series: &[Series<'_>], ends: (&str, &str)) -> Markup {
    let max = series.iter().flat_map(|s| s.values).copied().max().unwrap_or(0).max(1);
    let plot = u64::from(H - 2 * PAD);
    let points = |values: &[u64]| {
        let step = f64::from(W - 2 * PAD) / values.len().saturating_sub(1).max(1) as f64;
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                format!(
                    "{:.1},{}",
                    f64::from(PAD) + i as f64 * step,
                    u64::from(H - PAD) - v * plot / max
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    over_time(
        title,
        max,
        ends,
        html! {
            @for (i, s) in series.iter().enumerate() {
                @let total = s.values.iter().sum::<u64>();
                polyline points=(points(s.values)) fill="none" stroke=(s.color) stroke-width="2" {
                    title { (s.name) ": " (total) }
                }
                text x=(W - PAD - 130) y=(18 + 14 * i as u32) font-size="12" fill=(s.color) { (s.name) " " (total) }
            }
        },
    )
}

/// One horizontal bar per (label, value), largest first as given.
pub fn ranking(title: &str, items: &[(String, u64)], color: &str) -> Markup {
    let max = items.iter().map(|i| i.1).max().unwrap_or(0).max(1);
    let row = 22u32;
    let height = 30 + row * items.len().max(1) as u32;
    let label_w = 220u32;
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {W} {height}")) role="img" aria-label=(title) {
            title { (title) }
            text x="4" y="18" font-size="14" { (title) }
            @if items.is_empty() { text x="4" y="42" font-size="12" { "none" } }
            @for (i, (label, v)) in items.iter().enumerate() {
                @let y = 28 + i as u32 * row;
                @let w = (*v * u64::from(W - label_w - 60) / max) as u32;
                text x="4" y=(y + 15) font-size="12" { (label) }
                rect x=(label_w) y=(y + 3) width=(w.max(1)) height=(row - 6) fill=(color) {}
                text x=(label_w + w + 6) y=(y + 15) font-size="12" { (v) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_value() {
        let svg = bars("Deliveries", &[0, 5, 10], "#36c", ("-2h", "now")).into_string();
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("height=\"140\""), "{svg}");
        assert!(svg.contains("height=\"70\""), "{svg}");
        assert!(svg.contains("(max 10)"));
    }

    #[test]
    fn lines_share_one_scale_and_name_their_totals() {
        let grey = [4, 0, 2];
        let white = [1, 1, 0];
        let series = [
            Series {
                name: "greylisted",
                values: &grey,
                color: "#c63",
            },
            Series {
                name: "promoted",
                values: &white,
                color: "#396",
            },
        ];
        let svg = lines("Funnel", &series, ("-3h", "now")).into_string();
        assert_eq!(svg.matches("<polyline").count(), 2);
        // 4 is the top of the plot (y = 30), 0 its bottom (y = 170), 1 a quarter up.
        assert!(svg.contains(r#"points="30.0,30 320.0,170 610.0,100""#), "{svg}");
        assert!(svg.contains(r#"points="30.0,135 320.0,135 610.0,170""#), "{svg}");
        assert!(svg.contains("greylisted 6") && svg.contains("promoted 2"), "{svg}");
    }

    #[test]
    fn labels_are_escaped() {
        let svg = ranking("Deferred", &[("<script>x</script>".into(), 3)], "#c63").into_string();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"));
    }
}
