//! Images made by the tests themselves: patterns whose every pixel is known, smooth pictures
//! for tolerance checks, EXIF orientation, and files damaged in each way a batch meets.
#![allow(dead_code)] // each test file uses its own part of these helpers

use std::path::{Path, PathBuf};

use image::{ImageEncoder, Rgb, RgbImage};

/// A `width`×`height` image whose every pixel is distinct: (x, y, x ^ y) scaled.
pub(crate) fn pattern(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        Rgb([
            (x * 37 % 256) as u8,
            (y * 59 % 256) as u8,
            ((x * 7 + y * 13) % 256) as u8,
        ])
    })
}

/// A smooth picture (gradients and a soft disc): what resampling is judged on.
pub(crate) fn smooth(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
        let disc = (((fx - 0.5).powi(2) + (fy - 0.5).powi(2)).sqrt() * 4.0).min(1.0);
        Rgb([(fx * 255.0) as u8, (fy * 255.0) as u8, (disc * 255.0) as u8])
    })
}

/// An EXIF block (TIFF header onwards) holding only the orientation tag.
pub(crate) fn exif_orientation(value: u16) -> Vec<u8> {
    let mut exif = b"II*\0".to_vec();
    exif.extend_from_slice(&8_u32.to_le_bytes()); // the first IFD's offset
    exif.extend_from_slice(&1_u16.to_le_bytes()); // one entry
    exif.extend_from_slice(&0x0112_u16.to_le_bytes()); // Orientation
    exif.extend_from_slice(&3_u16.to_le_bytes()); // SHORT
    exif.extend_from_slice(&1_u32.to_le_bytes()); // one value
    exif.extend_from_slice(&u32::from(value).to_le_bytes());
    exif.extend_from_slice(&0_u32.to_le_bytes()); // no next IFD
    exif
}

/// `image` as JPEG bytes at quality 95, with an EXIF orientation if given.
pub(crate) fn jpeg(image: &RgbImage, orientation: Option<u16>) -> Vec<u8> {
    let mut bytes = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95);
    encode(encoder, image, orientation);
    bytes
}

/// `image` as PNG bytes, with an EXIF orientation if given.
pub(crate) fn png(image: &RgbImage, orientation: Option<u16>) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode(
        image::codecs::png::PngEncoder::new(&mut bytes),
        image,
        orientation,
    );
    bytes
}

fn encode(mut encoder: impl ImageEncoder, image: &RgbImage, orientation: Option<u16>) {
    if let Some(value) = orientation {
        encoder.set_exif_metadata(exif_orientation(value)).unwrap();
    }
    encoder
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
}

/// Writes `bytes` to `dir/name` and gives the path back.
pub(crate) fn put(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A JPEG whose frame header claims `width`×`height` (its data is for a small image): a
/// decompression bomb's header.
pub(crate) fn jpeg_claiming(width: u16, height: u16) -> Vec<u8> {
    let mut bytes = jpeg(&pattern(16, 16), None);
    let sof = bytes
        .windows(2)
        .position(|pair| pair == [0xFF, 0xC0])
        .expect("a baseline JPEG has SOF0");
    // FF C0, length (2), precision (1), height (2), width (2).
    bytes[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    bytes
}

/// The mean absolute difference of two same-sized images, per channel.
pub(crate) fn mean_difference(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let total: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    total as f64 / a.as_raw().len() as f64
}

/// The files under `dir`, relative, sorted (hidden ones included).
pub(crate) fn files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(
                    path.strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    found.sort();
    found
}
