//! Each operation on small generated images, through a whole run: output sizes, exact pixels
//! where the operation is exact, and resizing against a reference within a tolerance.

mod common;

use common::*;
use image::{DynamicImage, GenericImageView, Rgb};
use triad_images::{Op, Options, Row, Status};

/// Runs `ops` on one file, returning its row and the decoded output.
fn process(ops: &[&str], name: &str, bytes: &[u8]) -> (Row, DynamicImage) {
    let dir = tempfile::tempdir().unwrap();
    let input = put(dir.path(), name, bytes);
    let ops = ops.iter().map(|spec| Op::parse(spec).unwrap()).collect();
    let summary =
        triad_images::run(&Options::new(ops, dir.path().join("out"), vec![input])).unwrap();
    let row = summary.rows[0].clone();
    assert_eq!(row.status, Status::Ok, "{row:?}");
    let output = image::open(row.output.as_ref().unwrap()).unwrap();
    (row, output)
}

fn png_pattern(width: u32, height: u32) -> Vec<u8> {
    png(&pattern(width, height), None)
}

#[test]
fn every_operation_gives_its_size() {
    for (spec, expected) in [
        ("resize=20x20", (20, 15)),
        ("resize=20x20:fill", (20, 20)),
        ("resize=20x10:exact", (20, 10)),
        ("resize=80x80", (80, 60)),
        ("thumbnail=16", (16, 12)),
        ("thumbnail=100", (40, 30)),
        ("rotate=90", (30, 40)),
        ("rotate=180", (40, 30)),
        ("rotate=-90", (30, 40)),
        ("rotate=45", (50, 50)),
        ("flip=h", (40, 30)),
        ("crop=5,5,10,8", (10, 8)),
        ("blur=1.5", (40, 30)),
        ("sharpen=1", (40, 30)),
        ("grayscale", (40, 30)),
        ("brightness=20", (40, 30)),
        ("contrast=-30", (40, 30)),
        ("auto-orient", (40, 30)),
    ] {
        for (name, bytes) in [
            ("p.png", png_pattern(40, 30)),
            ("p.jpg", jpeg(&pattern(40, 30), None)),
        ] {
            let (row, output) = process(&[spec], name, &bytes);
            assert_eq!(output.dimensions(), expected, "{spec} on {name}");
            assert_eq!(
                (row.out_width, row.out_height),
                (Some(expected.0), Some(expected.1))
            );
        }
    }
}

#[test]
fn right_angle_rotations_move_every_pixel_exactly() {
    let source = pattern(5, 3);
    for (spec, turns) in [
        ("rotate=90", 1),
        ("rotate=180", 2),
        ("rotate=270", 3),
        ("rotate=-270", 1),
    ] {
        let (_, output) = process(&[spec], "p.png", &png(&source, None));
        let output = output.to_rgb8();
        for (x, y, pixel) in source.enumerate_pixels() {
            // Clockwise quarter turns of a 5x3 image.
            let (w, h) = (5, 3);
            let (ox, oy) = match turns {
                1 => (h - 1 - y, x),
                2 => (w - 1 - x, h - 1 - y),
                _ => (y, w - 1 - x),
            };
            assert_eq!(output.get_pixel(ox, oy), pixel, "{spec} of ({x}, {y})");
        }
    }
}

#[test]
fn crop_flip_and_grayscale_are_exact() {
    let source = pattern(8, 6);
    let (_, cropped) = process(&["crop=2,1,4,3"], "p.png", &png(&source, None));
    let cropped = cropped.to_rgb8();
    for (x, y, pixel) in cropped.enumerate_pixels() {
        assert_eq!(pixel, source.get_pixel(x + 2, y + 1));
    }
    let (_, mirrored) = process(&["flip=h"], "p.png", &png(&source, None));
    let (_, upside_down) = process(&["flip=v"], "p.png", &png(&source, None));
    for (x, y, pixel) in source.enumerate_pixels() {
        assert_eq!(mirrored.to_rgb8().get_pixel(7 - x, y), pixel);
        assert_eq!(upside_down.to_rgb8().get_pixel(x, 5 - y), pixel);
    }
    // Grey pixels stay what they are; colours become their luma; one channel is written.
    let greys = image::RgbImage::from_fn(4, 1, |x, _| {
        [
            Rgb([0, 0, 0]),
            Rgb([77, 77, 77]),
            Rgb([255, 255, 255]),
            Rgb([255, 0, 0]),
        ][x as usize]
    });
    let (_, grey) = process(&["grayscale"], "g.png", &png(&greys, None));
    assert_eq!(grey.color(), image::ColorType::L8);
    let values: Vec<u8> = grey.to_luma8().pixels().map(|p| p[0]).collect();
    assert_eq!(&values[..3], &[0, 77, 255]);
    assert!(
        (50..=60).contains(&values[3]),
        "red's luma (Rec. 709: 54): {}",
        values[3]
    );
}

#[test]
fn a_crop_outside_the_image_fails_that_image() {
    let dir = tempfile::tempdir().unwrap();
    let input = put(dir.path(), "p.png", &png_pattern(10, 10));
    let ops = vec![Op::parse("crop=5,5,10,10").unwrap()];
    let summary =
        triad_images::run(&Options::new(ops, dir.path().join("out"), vec![input])).unwrap();
    let row = &summary.rows[0];
    assert_eq!(row.status, Status::Failed);
    assert!(
        row.reason
            .as_ref()
            .unwrap()
            .contains("outside the 10x10 image"),
        "{row:?}"
    );
    assert_eq!(files(&dir.path().join("out")), Vec::<String>::new());
}

#[test]
fn resizing_matches_a_reference_within_a_tolerance() {
    // The reference: image's own Lanczos3 on the full decoded picture.
    let picture = smooth(800, 600);
    let reference =
        image::imageops::resize(&picture, 200, 150, image::imageops::FilterType::Lanczos3);
    let (row, from_png) = process(&["resize=200x150"], "s.png", &png(&picture, None));
    assert_eq!(row.shrink, Some(1));
    let difference = mean_difference(&from_png.to_rgb8(), &reference);
    assert!(difference < 1.5, "PNG, resized: {difference}");
    // A JPEG is shrunk by 4 in the decoder first, then resized the rest of the way.
    let (row, from_jpeg) = process(&["resize=200x150"], "s.jpg", &jpeg(&picture, None));
    assert_eq!(row.shrink, Some(4));
    let difference = mean_difference(&from_jpeg.to_rgb8(), &reference);
    assert!(
        difference < 4.0,
        "JPEG, shrunk on load then resized: {difference}"
    );
    // Something that is not the picture is far from it: the tolerance means something.
    let other = image::imageops::resize(
        &pattern(800, 600),
        200,
        150,
        image::imageops::FilterType::Lanczos3,
    );
    assert!(mean_difference(&other, &reference) > 20.0);
}

#[test]
fn auto_orient_stands_the_pixels_up_in_png_and_jpeg() {
    // EXIF 6: the camera was turned; the picture is shown turned 90 degrees clockwise.
    let mut source = image::RgbImage::from_pixel(40, 20, Rgb([0, 0, 255]));
    for y in 0..20 {
        for x in 0..10 {
            source.put_pixel(x, y, Rgb([255, 0, 0])); // the left quarter red
        }
    }
    for (name, bytes) in [
        ("o.png", png(&source, Some(6))),
        ("o.jpg", jpeg(&source, Some(6))),
    ] {
        let (_, upright) = process(&["auto-orient"], name, &bytes);
        assert_eq!(upright.dimensions(), (20, 40), "{name}");
        // The left edge is now the top: red above, blue below.
        let top = upright.to_rgb8().get_pixel(10, 3).0;
        let bottom = upright.to_rgb8().get_pixel(10, 36).0;
        assert!(top[0] > 200 && top[2] < 60, "{name}: top {top:?}");
        assert!(
            bottom[2] > 200 && bottom[0] < 60,
            "{name}: bottom {bottom:?}"
        );
        // Without auto-orient the pixels stay as stored.
        let (_, stored) = process(&["flip=h", "flip=h"], name, &bytes);
        assert_eq!(stored.dimensions(), (40, 20), "{name}");
    }
    // Without EXIF, auto-orient changes nothing.
    let (_, plain) = process(&["auto-orient"], "p.png", &png(&source, None));
    assert_eq!(plain.to_rgb8(), source);
}

#[test]
fn a_turned_jpeg_shrinks_on_load_along_the_right_axes() {
    // Stored 800x600 with EXIF 6: upright it is 600x800; fitting it in 150x200 allows 1/4.
    let bytes = jpeg(&smooth(800, 600), Some(6));
    let (row, output) = process(&["auto-orient", "resize=150x200"], "t.jpg", &bytes);
    assert_eq!(output.dimensions(), (150, 200));
    assert_eq!(row.shrink, Some(4));
    let (row, output) = process(&["auto-orient", "resize=300x200"], "t.jpg", &bytes);
    assert_eq!(output.dimensions(), (150, 200));
    assert_eq!(row.shrink, Some(4));
    // Operations in order: a blur before the resize keeps the full size in the decoder.
    let (row, _) = process(&["blur=1", "resize=150x200"], "t.jpg", &bytes);
    assert_eq!(row.shrink, Some(1));
}
