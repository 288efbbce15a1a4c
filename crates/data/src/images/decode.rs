//! Encoded image bytes to 8-bit RGB: JPEG (zune-jpeg, strict), PNG and WebP (`image`). The format
//! is sniffed from the magic bytes, not a file extension, because datasets mislabel files.
//!
//! Errors are plain reasons (the caller knows the sample's name and adds it).

use image::{DynamicImage, ImageFormat};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;

/// Largest accepted side, in pixels: a guard against decompression bombs in scraped data.
pub const MAX_SIDE: usize = 16384;

/// An interleaved 8-bit RGB image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    /// `height * width * 3` bytes, row-major, R G B.
    pub data: Vec<u8>,
}

impl RgbImage {
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Result<Self, String> {
        if data.len() != width * height * 3 {
            return Err(format!(
                "{} bytes for a {width}x{height} RGB image (expected {})",
                data.len(),
                width * height * 3
            ));
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }
}

/// What the magic bytes say the file is.
fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageFormat::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageFormat::Png)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(ImageFormat::WebP)
    } else {
        None
    }
}

/// Decodes a JPEG, PNG or WebP file to RGB. Transparent pixels are composited over white (what
/// a viewer shows; the colour stored under alpha 0 is arbitrary, often black).
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage, String> {
    if bytes.is_empty() {
        return Err("empty file".into());
    }
    match sniff(bytes) {
        Some(ImageFormat::Jpeg) => decode_jpeg(bytes),
        Some(format) => decode_other(bytes, format),
        None => {
            let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
            Err(format!(
                "not a JPEG, PNG or WebP file (starts with {})",
                head.join(" ")
            ))
        }
    }
}

fn decode_jpeg(bytes: &[u8]) -> Result<RgbImage, String> {
    // Strict: a truncated or corrupt entropy stream is an error (as in PIL), not grey fill.
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(MAX_SIDE)
        .set_max_height(MAX_SIDE)
        .jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    let data = decoder.decode().map_err(|e| format!("JPEG: {e:?}"))?;
    let info = decoder
        .info()
        .ok_or_else(|| "JPEG: no image header".to_string())?;
    RgbImage::new(usize::from(info.width), usize::from(info.height), data)
        .map_err(|e| format!("JPEG: {e}"))
}

fn decode_other(bytes: &[u8], format: ImageFormat) -> Result<RgbImage, String> {
    let name = format!("{format:?}").to_uppercase();
    let reader = || image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    // The size check reads the header only, so a bomb is refused before its pixels are
    // allocated.
    let (width, height) = reader()
        .into_dimensions()
        .map_err(|e| format!("{name}: {e}"))?;
    let (width, height) = (width as usize, height as usize);
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(format!(
            "{name}: {width}x{height} exceeds the {MAX_SIDE}-pixel limit"
        ));
    }
    let image = reader().decode().map_err(|e| format!("{name}: {e}"))?;
    let data = if image.color().has_alpha() {
        over_white(&image)
    } else {
        image.into_rgb8().into_raw()
    };
    RgbImage::new(width, height, data).map_err(|e| format!("{name}: {e}"))
}

fn over_white(image: &DynamicImage) -> Vec<u8> {
    let rgba = image.to_rgba8();
    let mut out = Vec::with_capacity(rgba.len() / 4 * 3);
    for px in rgba.chunks_exact(4) {
        let a = u32::from(px[3]);
        for &c in &px[..3] {
            // c * a/255 + 255 * (1 - a/255), rounded.
            out.push(((u32::from(c) * a + 255 * (255 - a) + 127) / 255) as u8);
        }
    }
    out
}
