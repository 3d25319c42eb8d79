//! Message HTML made safe to show: ammonia with a strict allow-list (no
//! script, style, forms, frames, `<base>`, `<meta>`, SVG or event
//! attributes; links only to https/mailto), `cid:` images inlined as data
//! URIs from the message's own parts, and remote images dropped unless the
//! reader asked for them. The result is shown in a sandboxed iframe under
//! [`BODY_CSP`], so a gap in one layer is caught by the next.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The policy of the message frame; `img-src https:` only once the reader allows remote images.
pub fn body_csp(remote_images: bool) -> String {
    let img = if remote_images { "data: https:" } else { "data:" };
    format!(
        "default-src 'none'; img-src {img}; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'self'; sandbox allow-popups allow-popups-to-escape-sandbox"
    )
}

const TAGS: &[&str] = &[
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "caption",
    "center",
    "code",
    "dd",
    "del",
    "div",
    "dl",
    "dt",
    "em",
    "font",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "ins",
    "kbd",
    "li",
    "ol",
    "p",
    "pre",
    "q",
    "s",
    "small",
    "span",
    "strike",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "tt",
    "u",
    "ul",
];

/// Images a message carries for itself: Content-ID (without `<>`) to a `data:` URI.
pub type Inline = HashMap<String, String>;

/// Sanitise `html`; `remote_images` keeps `https:` image sources. Also
/// returns whether a remote image was dropped (to offer showing them).
pub fn clean(html: &str, inline: &Inline, remote_images: bool) -> (String, bool) {
    let blocked = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&blocked);
    let inline = inline.clone();
    let tags: HashSet<&str> = TAGS.iter().copied().collect();
    let generic: HashSet<&str> = ["title", "align", "dir", "lang"].into_iter().collect();
    let mut per_tag: HashMap<&str, HashSet<&str>> = HashMap::new();
    per_tag.insert("a", ["href"].into_iter().collect());
    per_tag.insert("img", ["src", "alt", "width", "height"].into_iter().collect());
    per_tag.insert("td", ["colspan", "rowspan", "valign", "width"].into_iter().collect());
    per_tag.insert("th", ["colspan", "rowspan", "valign", "width"].into_iter().collect());
    per_tag.insert(
        "table",
        ["width", "border", "cellpadding", "cellspacing"].into_iter().collect(),
    );
    per_tag.insert("font", ["color", "size"].into_iter().collect());
    per_tag.insert("ol", ["start"].into_iter().collect());
    let cleaned = ammonia::Builder::default()
        .tags(tags)
        .generic_attributes(generic)
        .tag_attributes(per_tag)
        .url_schemes(["https", "mailto", "cid"].into_iter().collect())
        .url_relative(ammonia::UrlRelative::Deny)
        .link_rel(Some("noopener noreferrer"))
        .set_tag_attribute_value("a", "target", "_blank")
        .attribute_filter(move |element, attribute, value| {
            if element != "img" || attribute != "src" {
                return Some(value.into());
            }
            if let Some(id) = value.strip_prefix("cid:") {
                return inline.get(id).map(|uri| uri.clone().into());
            }
            if value.starts_with("https:") && remote_images {
                return Some(value.into());
            }
            flag.store(true, Ordering::Relaxed);
            None
        })
        .clean(html)
        .to_string();
    (cleaned, blocked.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean_strict(html: &str) -> String {
        clean(html, &Inline::new(), false).0
    }

    #[test]
    fn the_xss_corpus_comes_out_inert() {
        let corpus = [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<svg><animate onbegin=alert(1) attributeName=x dur=1s></svg>",
            "<svg><filter><feImage href=\"https://canary.test/\"/></filter></svg>",
            "<style>@import url(https://canary.test/x.css);</style>",
            "<base href=\"https://canary.test/\">",
            "<meta http-equiv=refresh content=\"0;url=https://canary.test/\">",
            "<form action=https://canary.test/><input name=p></form>",
            "<iframe src=https://canary.test/></iframe>",
            "<p style=\"background:url(https://canary.test/)\">x</p>",
            "<a href=\"data:text/html,<script>alert(1)</script>\">d</a>",
        ];
        for html in corpus {
            let out = clean_strict(html).to_ascii_lowercase();
            for bad in [
                "<script",
                "onerror",
                "onbegin",
                "javascript:",
                "<svg",
                "feimage",
                "@import",
                "<base",
                "<meta",
                "<form",
                "<iframe",
                "canary",
                "style",
                "data:",
            ] {
                assert!(!out.contains(bad), "{html:?} gave {out:?}");
            }
        }
    }

    #[test]
    fn remote_images_wait_until_asked_and_cid_images_are_inlined() {
        let html = "<img src=\"https://img.test/a.png\"><img src=\"cid:logo@x\">";
        let inline: Inline = [("logo@x".to_string(), "data:image/png;base64,AAAA".to_string())].into();
        let (out, blocked) = clean(html, &inline, false);
        assert!(blocked);
        assert!(!out.contains("img.test"), "{out}");
        assert!(out.contains("src=\"data:image/png;base64,AAAA\""), "{out}");
        let (out, blocked) = clean(html, &inline, true);
        assert!(!blocked);
        assert!(out.contains("src=\"https://img.test/a.png\""), "{out}");
    }

    #[test]
    fn links_open_outside_the_frame_without_a_referrer() {
        let out = clean_strict("<a href=\"https://example.test/\">x</a> <a href=\"mailto:a@b\">m</a>");
        assert!(out.contains("rel=\"noopener noreferrer\""), "{out}");
        assert!(out.contains("target=\"_blank\""), "{out}");
        assert!(out.contains("mailto:a@b"), "{out}");
    }
}
