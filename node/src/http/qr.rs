//! QR codes of links, for phones to scan: as an SVG for the web UI
//! (`GET /api/contact`) and as text for the terminal (`hdp start`).
//!
//! Encoding is the `qrcodegen` crate (pure Rust); this module only draws
//! the modules it produces.

use std::fmt::Write;

use qrcodegen::{QrCode, QrCodeEcc};

/// Light modules around the code in the SVG; the standard asks for 4.
pub const SVG_QUIET: i32 = 4;
/// Light modules around the code on the terminal (smaller, to fit a
/// terminal; phones read it well against the terminal's own margin).
pub const TERMINAL_QUIET: i32 = 2;

/// The text is too long for any QR code.
#[derive(Debug, thiserror::Error)]
#[error("the link is too long for a QR code")]
pub struct QrError;

fn encode(text: &str) -> Result<QrCode, QrError> {
    // Medium error correction: survives a smudged screen, stays small.
    QrCode::encode_text(text, QrCodeEcc::Medium).map_err(|_| QrError)
}

/// `text` as a complete `<svg>` element: dark modules on white, with a
/// quiet zone, scaled by its `viewBox`. Each run of dark modules in a row is
/// one rectangle of the single path.
pub fn svg(text: &str, label: &str) -> Result<String, QrError> {
    let qr = encode(text)?;
    let size = qr.size();
    let full = size + 2 * SVG_QUIET;
    let mut path = String::new();
    for y in 0..size {
        let mut x = 0;
        while x < size {
            if !qr.get_module(x, y) {
                x += 1;
                continue;
            }
            let start = x;
            while x < size && qr.get_module(x, y) {
                x += 1;
            }
            let run = x - start;
            let _ = write!(path, "M{},{}h{run}v1h-{run}z", start + SVG_QUIET, y + SVG_QUIET);
        }
    }
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {full} {full}\" shape-rendering=\"crispEdges\" \
         role=\"img\" aria-label=\"{}\"><rect width=\"{full}\" height=\"{full}\" fill=\"#fff\"/>\
         <path d=\"{path}\" fill=\"#000\"/></svg>",
        escape_attr(label)
    ))
}

fn escape_attr(s: &str) -> String {
    s.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

/// `text` as lines of Unicode half blocks, two module rows per line.
/// Light modules (and the quiet zone) are drawn and dark ones left blank,
/// so the code reads right on the usual light-on-dark terminal.
pub fn terminal(text: &str) -> Result<String, QrError> {
    let qr = encode(text)?;
    let size = qr.size();
    let q = TERMINAL_QUIET;
    // Light, in the drawn area; outside it (below the last row) nothing.
    let light = |x: i32, y: i32| -> Option<bool> {
        if y >= size + q {
            return None;
        }
        let inside = (0..size).contains(&x) && (0..size).contains(&y);
        Some(!(inside && qr.get_module(x, y)))
    };
    let mut out = String::new();
    let mut y = -q;
    while y < size + q {
        for x in -q..size + q {
            let top = light(x, y).unwrap_or(false);
            let bottom = light(x, y + 1).unwrap_or(false);
            out.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
        y += 2;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINK: &str = "http://192.168.1.20:3030/#token=0123456789abcdef0123456789abcdef";

    #[test]
    fn terminal_shape() {
        let text = terminal(LINK).unwrap();
        let size = encode(LINK).unwrap().size();
        let width = (size + 2 * TERMINAL_QUIET) as usize;
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), width.div_ceil(2), "two module rows per line");
        for l in &lines {
            assert_eq!(l.chars().count(), width);
            assert!(l.chars().all(|c| matches!(c, '█' | '▀' | '▄' | ' ')), "{l:?}");
        }
        // The quiet zone is drawn light all round: full blocks on top.
        assert!(lines[0].chars().all(|c| c == '█'));
        // The second line holds module rows 0 and 1: the finder pattern's
        // dark corner is left blank.
        let second: Vec<char> = lines[1].chars().collect();
        assert_eq!(second[TERMINAL_QUIET as usize], ' ', "the finder's corner is dark");
    }

    #[test]
    fn svg_shape() {
        let s = svg("hdp:abc?addr=127.0.0.1:4433", "contact \"link\"").unwrap();
        let size = encode("hdp:abc?addr=127.0.0.1:4433").unwrap().size() + 2 * SVG_QUIET;
        assert!(s.starts_with("<svg ") && s.ends_with("</svg>"), "{s}");
        assert!(s.contains(&format!("viewBox=\"0 0 {size} {size}\"")));
        assert!(s.contains("shape-rendering=\"crispEdges\"") && s.contains("role=\"img\""));
        assert!(s.contains("aria-label=\"contact &quot;link&quot;\""));
        // The top-left finder pattern: a run of 7 dark modules at the quiet zone's edge.
        assert!(s.contains(&format!("M{SVG_QUIET},{SVG_QUIET}h7v1h-7z")), "{s}");
    }

    #[test]
    fn too_long() {
        assert!(svg(&"x".repeat(5000), "x").is_err());
    }
}
