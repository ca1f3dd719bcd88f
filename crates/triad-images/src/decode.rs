//! From bytes to pixels: [`probe`] reads the header alone (format, size, EXIF orientation,
//! what decoding will cost in memory) so that a bomb is refused and memory is reserved before
//! any pixel is decoded; [`decode`] then decodes, a JPEG shrunk by 2, 4 or 8 inside the
//! decoder when the first operation makes it smaller anyway (libvips's shrink-on-load: the
//! inverse DCT of each 8×8 block yields 4×4, 2×2 or 1×1 pixels, so most of the decoding work
//! and memory is never spent).
//!
//! JPEG goes through `jpeg-decoder` (it offers that DCT-domain scaling); PNG and WebP, and
//! JPEGs it does not take (CMYK, 16-bit lossless), through `image`. A JPEG must end with its
//! end-of-image marker: both decoders fill a file cut short with grey, and that is damage, not
//! a picture.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

use crate::error::{Failure, FailureKind};

/// The formats triad images reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// JPEG.
    Jpeg,
    /// PNG.
    Png,
    /// WebP.
    Webp,
}

impl Kind {
    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Kind::Jpeg => "jpg",
            Kind::Png => "png",
            Kind::Webp => "webp",
        }
    }

    /// The kind a file extension names, if any (case-insensitive).
    pub fn from_extension(extension: &str) -> Option<Kind> {
        match extension.to_ascii_lowercase().as_str() {
            "jpg" | "jpeg" | "jpe" | "jfif" => Some(Kind::Jpeg),
            "png" => Some(Kind::Png),
            "webp" => Some(Kind::Webp),
            _ => None,
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            Kind::Jpeg => ImageFormat::Jpeg,
            Kind::Png => ImageFormat::Png,
            Kind::Webp => ImageFormat::WebP,
        }
    }
}

/// What a file's header says, before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The format, from the file's first bytes (not its name).
    pub kind: Kind,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per decoded pixel.
    pub bytes_per_pixel: u32,
    /// A progressive JPEG, which holds every coefficient of the image while it decodes.
    pub progressive: bool,
    /// The EXIF orientation (none: `NoTransforms`).
    pub orientation: Orientation,
}

impl Header {
    /// Pixels in the full image.
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// The bytes decoding and processing this image may hold at once when it is decoded at
    /// 1/`denominator` of its size: the file, the decoded pixels and one more image of that
    /// size (an operation's output, while its input still lives), and for a progressive JPEG
    /// its coefficients (2 bytes each, at full size).
    pub fn cost(&self, file_bytes: u64, denominator: u32) -> u64 {
        let decoded = self.width.div_ceil(denominator.max(1)) as u64
            * self.height.div_ceil(denominator.max(1)) as u64
            * u64::from(self.bytes_per_pixel);
        let coefficients = if self.progressive {
            self.pixels() * u64::from(self.bytes_per_pixel) * 2
        } else {
            0
        };
        file_bytes + 2 * decoded + coefficients
    }
}

/// Reads the header of `bytes` (the whole file, or enough of its start).
pub fn probe(bytes: &[u8]) -> Result<Header, Failure> {
    if bytes.is_empty() {
        return Err(Failure::new(FailureKind::Empty, "the file is empty"));
    }
    let kind = kind_of(bytes)?;
    match kind {
        Kind::Jpeg => {
            let mut decoder = jpeg_decoder::Decoder::new(bytes);
            decoder.read_info().map_err(corrupt)?;
            let info = decoder.info().ok_or_else(|| corrupt("no frame header"))?;
            let orientation = decoder
                .exif_data()
                .and_then(Orientation::from_exif_chunk)
                .unwrap_or(Orientation::NoTransforms);
            Ok(Header {
                kind,
                width: u32::from(info.width),
                height: u32::from(info.height),
                bytes_per_pixel: info.pixel_format.pixel_bytes().max(1) as u32,
                progressive: info.coding_process == jpeg_decoder::CodingProcess::DctProgressive,
                orientation,
            })
        }
        Kind::Png | Kind::Webp => {
            let mut decoder = ImageReader::with_format(Cursor::new(bytes), kind.image_format())
                .into_decoder()
                .map_err(corrupt)?;
            let (width, height) = decoder.dimensions();
            let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
            Ok(Header {
                kind,
                width,
                height,
                bytes_per_pixel: u32::from(decoder.color_type().bytes_per_pixel()),
                progressive: false,
                orientation,
            })
        }
    }
}

/// The format of `bytes`, from their magic number.
fn kind_of(bytes: &[u8]) -> Result<Kind, Failure> {
    match image::guess_format(bytes) {
        Ok(ImageFormat::Jpeg) => Ok(Kind::Jpeg),
        Ok(ImageFormat::Png) => Ok(Kind::Png),
        Ok(ImageFormat::WebP) => Ok(Kind::Webp),
        Ok(other) => Err(Failure::new(
            FailureKind::Unsupported,
            format!(
                "{} is not a format triad images reads (JPEG, PNG, WebP)",
                other
                    .extensions_str()
                    .first()
                    .unwrap_or(&"this")
                    .to_uppercase()
            ),
        )),
        Err(_) => Err(Failure::new(
            FailureKind::Unsupported,
            "not an image in a format triad images reads (JPEG, PNG, WebP)",
        )),
    }
}

fn corrupt(error: impl std::fmt::Display) -> Failure {
    Failure::new(FailureKind::Corrupt, format!("damaged image: {error}"))
}

/// The largest shrink (1, 2, 4 or 8) the JPEG decoder may apply to a `width`×`height` image
/// so that both sides stay at least `needed`.
pub(crate) fn shrink_for(width: u32, height: u32, needed: (u32, u32)) -> u32 {
    [8, 4, 2]
        .into_iter()
        .find(|&d| width.div_ceil(d) >= needed.0 && height.div_ceil(d) >= needed.1)
        .unwrap_or(1)
}

/// Decodes `bytes`, whose header is `header`, at 1/`shrink` of its size (JPEG only; other
/// formats and JPEGs that `jpeg-decoder` does not take decode at full size). Returns the image
/// and the shrink that was applied.
pub fn decode(bytes: &[u8], header: &Header, shrink: u32) -> Result<(DynamicImage, u32), Failure> {
    if header.kind == Kind::Jpeg {
        check_jpeg_end(bytes)?;
        let mut decoder = jpeg_decoder::Decoder::new(bytes);
        decoder.read_info().map_err(corrupt)?;
        let format = decoder.info().map(|info| info.pixel_format);
        if let Some(format @ (jpeg_decoder::PixelFormat::L8 | jpeg_decoder::PixelFormat::RGB24)) =
            format
        {
            let mut shrink = shrink.max(1);
            if shrink > 1 {
                let wanted = (
                    header.width.div_ceil(shrink),
                    header.height.div_ceil(shrink),
                );
                let got = decoder
                    .scale(wanted.0 as u16, wanted.1 as u16)
                    .map_err(corrupt)?;
                if (u32::from(got.0), u32::from(got.1)) != wanted {
                    // The decoder picks its scale by either axis; for a sliver of an image it
                    // may pick another than asked. Then: full size, from the start.
                    decoder = jpeg_decoder::Decoder::new(bytes);
                    decoder.read_info().map_err(corrupt)?;
                    shrink = 1;
                }
            }
            let (width, height) = (
                header.width.div_ceil(shrink),
                header.height.div_ceil(shrink),
            );
            let pixels = decoder.decode().map_err(corrupt)?;
            let image = match format {
                jpeg_decoder::PixelFormat::L8 => {
                    image::GrayImage::from_raw(width, height, pixels).map(DynamicImage::from)
                }
                _ => image::RgbImage::from_raw(width, height, pixels).map(DynamicImage::from),
            }
            .ok_or_else(|| corrupt("the decoder returned fewer pixels than the header says"))?;
            return Ok((image, shrink));
        }
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), header.kind.image_format());
    reader.no_limits();
    let image = reader.decode().map_err(corrupt)?;
    Ok((image, 1))
}

/// Fails when a JPEG's entropy-coded data, after its first start-of-scan marker, has no
/// end-of-image marker: the file was cut short. (Inside the entropy-coded data a 0xFF byte is
/// always followed by 0x00 or a restart marker, so 0xFF 0xD9 there is the real end.)
fn check_jpeg_end(bytes: &[u8]) -> Result<(), Failure> {
    let after_scan = memchr::memmem::find(bytes, &[0xFF, 0xDA]).map(|at| &bytes[at + 2..]);
    match after_scan {
        Some(scan) if memchr::memmem::rfind(scan, &[0xFF, 0xD9]).is_some() => Ok(()),
        Some(_) => Err(Failure::new(
            FailureKind::Corrupt,
            "the JPEG is cut short: its data ends before the end-of-image marker",
        )),
        None => Err(Failure::new(
            FailureKind::Corrupt,
            "the JPEG is cut short: it has no image data",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8])
        });
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
            .encode_image(&image)
            .unwrap();
        bytes
    }

    #[test]
    fn the_header_is_read_without_decoding() {
        let header = probe(&jpeg(64, 48)).unwrap();
        assert_eq!(
            (header.kind, header.width, header.height),
            (Kind::Jpeg, 64, 48)
        );
        assert_eq!(header.bytes_per_pixel, 3);
        assert_eq!(header.orientation, Orientation::NoTransforms);
    }

    #[test]
    fn a_jpeg_shrinks_while_it_decodes() {
        let bytes = jpeg(640, 480);
        let header = probe(&bytes).unwrap();
        assert_eq!(shrink_for(640, 480, (160, 120)), 4);
        assert_eq!(shrink_for(640, 480, (161, 120)), 2);
        assert_eq!(shrink_for(640, 480, (641, 1)), 1);
        let (image, shrink) = decode(&bytes, &header, 4).unwrap();
        assert_eq!((image.width(), image.height(), shrink), (160, 120, 4));
        let (full, shrink) = decode(&bytes, &header, 1).unwrap();
        assert_eq!((full.width(), full.height(), shrink), (640, 480, 1));
        // A sliver: the decoder would pick 1/8 by its narrow side; it is decoded whole.
        let sliver = jpeg(4, 400);
        let header = probe(&sliver).unwrap();
        let (image, shrink) = decode(&sliver, &header, 4).unwrap();
        assert_eq!((image.width(), image.height(), shrink), (4, 400, 1));
    }

    #[test]
    fn a_cut_jpeg_an_empty_file_and_other_formats_fail_with_their_kind() {
        let bytes = jpeg(64, 64);
        let header = probe(&bytes[..bytes.len() / 2]).unwrap();
        let failure = decode(&bytes[..bytes.len() / 2], &header, 1).unwrap_err();
        assert_eq!(failure.kind, FailureKind::Corrupt);
        assert!(failure.message.contains("cut short"), "{failure}");
        assert_eq!(probe(&[]).unwrap_err().kind, FailureKind::Empty);
        let gif = probe(b"GIF89a\x01\x00\x01\x00").unwrap_err();
        assert_eq!(gif.kind, FailureKind::Unsupported);
        assert!(gif.message.starts_with("GIF"), "{gif}");
        assert_eq!(probe(b"hello").unwrap_err().kind, FailureKind::Unsupported);
        assert_eq!(
            probe(&[0xFF, 0xD8, 0xFF, 0x00]).unwrap_err().kind,
            FailureKind::Corrupt
        );
    }
}
