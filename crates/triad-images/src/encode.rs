//! From pixels to a file: [`encode`] in the output format, and [`write_atomically`], which
//! puts the bytes in place whole or not at all.
//!
//! The bytes go first into an unnamed file in the output directory (`O_TMPFILE`), which is
//! given its name only once it is complete (`linkat`, then `rename` when replacing an older
//! file): a process killed mid-write, even by SIGKILL, leaves nothing behind — no half image,
//! no temporary file. Where the file system has no unnamed files, a hidden temporary name in
//! the same directory is written and renamed instead (a SIGKILL there can leave that hidden
//! file, never a partial output).

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use image::DynamicImage;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use jpeg_encoder::ColorType;
use rustix::fs::{AtFlags, CWD, Mode, OFlags};

use crate::decode::Kind;
use crate::error::{Failure, FailureKind};

/// `image` encoded as `kind`. JPEG takes `quality` (1-100) and has no alpha or 16-bit samples:
/// those become 8-bit RGB or grey (see `jpeg`). WebP is written lossless (the `image` crate's encoder),
/// in 8 bits.
pub fn encode(image: &DynamicImage, kind: Kind, quality: u8) -> Result<Vec<u8>, Failure> {
    let mut bytes = Vec::new();
    let result = match kind {
        Kind::Jpeg => return jpeg(image, quality),
        Kind::Png => image.write_with_encoder(PngEncoder::new(&mut bytes)),
        Kind::Webp => {
            let eight_bits = match image {
                DynamicImage::ImageLuma8(_)
                | DynamicImage::ImageLumaA8(_)
                | DynamicImage::ImageRgb8(_)
                | DynamicImage::ImageRgba8(_) => None,
                other if other.color().has_alpha() => Some(other.to_rgba8().into()),
                other => Some(DynamicImage::from(other.to_rgb8())),
            };
            eight_bits
                .as_ref()
                .unwrap_or(image)
                .write_with_encoder(WebPEncoder::new_lossless(&mut bytes))
        }
    };
    result.map_err(|error| Failure::new(FailureKind::Write, format!("encoding: {error}")))?;
    Ok(bytes)
}

/// JPEG by `jpeg-encoder` (AVX2 where the CPU has it; 4:2:0 below quality 90), from 8-bit grey,
/// RGB or RGBA (whose alpha is dropped) as they are, anything else converted first.
fn jpeg(image: &DynamicImage, quality: u8) -> Result<Vec<u8>, Failure> {
    let (Ok(width), Ok(height)) = (u16::try_from(image.width()), u16::try_from(image.height()))
    else {
        return Err(Failure::new(
            FailureKind::Write,
            format!(
                "a JPEG holds at most 65535 pixels a side, not {}x{}",
                image.width(),
                image.height()
            ),
        ));
    };
    let converted;
    let (pixels, color) = match image {
        DynamicImage::ImageLuma8(grey) => (grey.as_raw(), ColorType::Luma),
        DynamicImage::ImageRgb8(rgb) => (rgb.as_raw(), ColorType::Rgb),
        DynamicImage::ImageRgba8(rgba) => (rgba.as_raw(), ColorType::Rgba),
        other if other.color().channel_count() <= 2 => {
            converted = other.to_luma8().into_raw();
            (&converted, ColorType::Luma)
        }
        other => {
            converted = other.to_rgb8().into_raw();
            (&converted, ColorType::Rgb)
        }
    };
    let mut bytes = Vec::with_capacity(pixels.len() / 8);
    jpeg_encoder::Encoder::new(&mut bytes, quality)
        .encode(pixels, width, height, color)
        .map_err(|error| Failure::new(FailureKind::Write, format!("encoding: {error}")))?;
    Ok(bytes)
}

/// Writes `bytes` to `path` so that `path` is either its old self or the whole new file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    match rustix::fs::openat(
        CWD,
        directory,
        OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o666),
    ) {
        Ok(fd) => {
            let mut file = File::from(fd);
            file.write_all(bytes)?;
            let unnamed = format!("/proc/self/fd/{}", file.as_raw_fd());
            match rustix::fs::linkat(CWD, unnamed.as_str(), CWD, path, AtFlags::SYMLINK_FOLLOW) {
                Ok(()) => Ok(()),
                Err(rustix::io::Errno::EXIST) => {
                    // Replacing: name it beside the target, then rename over it in one step.
                    let hidden = hidden_name(path);
                    rustix::fs::linkat(
                        CWD,
                        unnamed.as_str(),
                        CWD,
                        &hidden,
                        AtFlags::SYMLINK_FOLLOW,
                    )?;
                    std::fs::rename(&hidden, path).inspect_err(|_| {
                        let _ = std::fs::remove_file(&hidden);
                    })
                }
                Err(error) => Err(error.into()),
            }
        }
        // No unnamed files on this file system (or no /proc): a hidden name, then rename.
        Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR | rustix::io::Errno::INVAL) => {
            let hidden = hidden_name(path);
            let written = File::create(&hidden)
                .and_then(|mut file| file.write_all(bytes))
                .and_then(|()| std::fs::rename(&hidden, path));
            if written.is_err() {
                let _ = std::fs::remove_file(&hidden);
            }
            written
        }
        Err(error) => Err(error.into()),
    }
}

/// A name beside `path` that no other writer uses: `.NAME.triad-PID-N.tmp`.
fn hidden_name(path: &Path) -> std::path::PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(
        ".{name}.triad-{}-{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_written_whole_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        write_atomically(&path, b"first").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        write_atomically(&path, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "nothing but the output is left");
    }

    #[test]
    fn a_missing_directory_is_an_error_and_nothing_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing/a.png");
        assert!(write_atomically(&missing, b"x").is_err());
        assert!(!dir.path().join("missing").exists());
    }

    #[test]
    fn each_format_encodes_any_colour_type() {
        let rgba = DynamicImage::ImageRgba16(image::ImageBuffer::new(3, 2));
        let grey = DynamicImage::ImageLumaA8(image::ImageBuffer::new(3, 2));
        for image in [&rgba, &grey] {
            for kind in [Kind::Jpeg, Kind::Png, Kind::Webp] {
                let bytes = encode(image, kind, 85).unwrap();
                let back = image::load_from_memory(&bytes).unwrap();
                assert_eq!((back.width(), back.height()), (3, 2), "{kind:?}");
            }
        }
    }
}
