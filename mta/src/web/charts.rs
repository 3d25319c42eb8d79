//! Charts drawn on the server as SVG (no script, no library): bars over
//! time, and horizontal bars for rankings. Labels go through maud, so they
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
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(title) {
            title { (title) }
            text x=(PAD) y="18" font-size="14" { (title) " (max " (max) ")" }
            line x1=(PAD) y1=(H - PAD) x2=(W - PAD) y2=(H - PAD) stroke="#888" {}
            @for (i, v) in values.iter().enumerate() {
                @let h = (*v * u64::from(plot) / max) as u32;
                rect x=(PAD + i as u32 * slot) y=(H - PAD - h) width=(slot.saturating_sub(1).max(1)) height=(h) fill=(color) {
                    title { (v) }
                }
            }
            text x=(PAD) y=(H - 8) font-size="11" { (ends.0) }
            text x=(W - PAD) y=(H - 8) font-size="11" text-anchor="end" { (ends.1) }
        }
    }
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
    fn labels_are_escaped() {
        let svg = ranking("Deferred", &[("<script>x</script>".into(), 3)], "#c63").into_string();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"));
    }
}
