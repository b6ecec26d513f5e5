//! QR codes, drawn as SVG (pages, letters) or PNG (a picture to download), with the
//! quiet zone of four modules the standard asks for. Error correction level M, as the
//! EPC payment QR code requires (EPC069-12).

use qrcode::{Color, EcLevel, QrCode};

/// The text cannot be put in a QR code (too long).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot make a QR code of this text: {0}")]
pub struct QrError(String);

const QUIET: usize = 4;

fn modules(text: &str) -> Result<(usize, Vec<bool>), QrError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| QrError(e.to_string()))?;
    let width = code.width();
    Ok((
        width,
        code.to_colors()
            .into_iter()
            .map(|c| c == Color::Dark)
            .collect(),
    ))
}

/// `text` as an SVG picture, `size` (a CSS length such as `"45mm"` or `"180"`) wide.
///
/// # Errors
/// A text too long for a QR code.
pub fn svg(text: &str, size: &str) -> Result<String, QrError> {
    let (width, dark) = modules(text)?;
    let side = width + 2 * QUIET;
    // One rectangle per run of dark modules on a row.
    let mut path = String::new();
    for (y, row) in dark.chunks(width).enumerate() {
        let mut x = 0;
        while x < width {
            if row[x] {
                let start = x;
                while x < width && row[x] {
                    x += 1;
                }
                let run = x - start;
                path.push_str(&format!("M{} {}h{run}v1h-{run}z", start + QUIET, y + QUIET));
            } else {
                x += 1;
            }
        }
    }
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" width=\"{size}\" height=\"{size}\" shape-rendering=\"crispEdges\"><rect width=\"{side}\" height=\"{side}\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>"
    ))
}

/// `text` as a PNG picture, `scale` pixels a module.
///
/// # Errors
/// A text too long for a QR code; the picture cannot be encoded.
pub fn png(text: &str, scale: u32) -> Result<Vec<u8>, QrError> {
    use resvg::tiny_skia::{Color as Paint, Pixmap, Rect, Transform};
    let (width, dark) = modules(text)?;
    let scale = scale.clamp(1, 32);
    let side = u32::try_from(width + 2 * QUIET).map_err(|e| QrError(e.to_string()))? * scale;
    let mut pixmap = Pixmap::new(side, side).ok_or_else(|| QrError("empty picture".into()))?;
    pixmap.fill(Paint::WHITE);
    let mut black = resvg::tiny_skia::Paint::default();
    black.set_color(Paint::BLACK);
    black.anti_alias = false;
    let s = scale as f32;
    for (i, d) in dark.iter().enumerate() {
        if *d {
            let (x, y) = ((i % width + QUIET) as f32, (i / width + QUIET) as f32);
            if let Some(r) = Rect::from_xywh(x * s, y * s, s, s) {
                pixmap.fill_rect(r, &black, Transform::identity(), None);
            }
        }
    }
    pixmap.encode_png().map_err(|e| QrError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_qr_code_has_its_quiet_zone_and_refuses_a_text_too_long() {
        let s = svg("BCD\n002\n1\nSCT", "40mm").unwrap();
        assert!(s.starts_with("<svg") && s.contains("width=\"40mm\""));
        let p = png("hello", 4).unwrap();
        assert_eq!(&p[1..4], b"PNG");
        assert!(svg(&"x".repeat(5000), "1").is_err());
    }
}
