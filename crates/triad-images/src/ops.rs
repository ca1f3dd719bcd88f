//! The operations, as the command line spells them (`resize=800x600:fill`, `rotate=90`), and
//! what each does to an image.
//!
//! [`Op::parse`] reads one spec and [`Op`]'s `Display` writes it back, so that a spec always
//! reads back as the same operation. `Op::apply` runs one on a decoded image; the geometry of
//! the size-changing ones ([`Op::output_size`]) is a pure function of the input size, which
//! lets the decoder shrink a JPEG while it decodes it (see `decode`) and the first resize still
//! land on exactly the size it would have from the full image.

use std::fmt;

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, GenericImageView, metadata::Orientation};

/// How `resize=WxH` fits the image into the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Fit {
    /// Keep the aspect ratio; the largest size that fits inside the box (the default).
    Fit,
    /// Keep the aspect ratio; cover the box, then cut the overflow off both sides evenly.
    Fill,
    /// Exactly the box, stretching if the aspect ratio differs.
    Exact,
}

/// A flip's axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Axis {
    /// Left to right (a mirror image).
    Horizontal,
    /// Top to bottom.
    Vertical,
}

/// One operation of the list, applied in the order given (the seed's `operations`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Op {
    /// `resize=WxH[:fit|fill|exact]`: to the box, Lanczos3.
    Resize {
        /// The box's width.
        width: u32,
        /// The box's height.
        height: u32,
        /// How the image fits it.
        fit: Fit,
    },
    /// `thumbnail=N`: fit inside N×N, never enlarging.
    Thumbnail(u32),
    /// `rotate=DEG`: clockwise (as EXIF, vips and ImageMagick). Multiples of 90 are exact pixel
    /// moves; other angles resample bilinearly onto a canvas that holds the whole image, the
    /// corners transparent (or black without alpha).
    Rotate(f32),
    /// `flip=h|v`.
    Flip(Axis),
    /// `crop=x,y,w,h`: the rectangle must lie inside the image.
    Crop {
        /// Left edge.
        x: u32,
        /// Top edge.
        y: u32,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// `blur=SIGMA`: Gaussian blur.
    Blur(f32),
    /// `sharpen=SIGMA`: unsharp mask of that radius.
    Sharpen(f32),
    /// `grayscale`.
    Grayscale,
    /// `brightness=N`: add N (−255 to 255) to every channel.
    Brightness(i32),
    /// `contrast=N`: percent (−100 to 100); negative lowers it.
    Contrast(f32),
    /// `auto-orient`: apply the EXIF orientation, so that the pixels stand as the camera meant.
    AutoOrient,
}

/// A spec that does not parse: which, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad operation `{spec}`: {reason}")]
pub struct OpSpecError {
    /// The spec as given.
    pub spec: String,
    /// What is wrong with it, and what is expected.
    pub reason: String,
}

/// An operation that cannot run on this image (a crop outside it, say).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OpFailure(pub String);

/// The largest width or height an operation may ask for.
pub const MAX_SIDE: u32 = 1 << 16;

impl Op {
    /// Parses one spec, as the command line gives it.
    ///
    /// ```
    /// use triad_images::ops::{Fit, Op};
    /// assert_eq!(
    ///     Op::parse("resize=800x600:fill").unwrap(),
    ///     Op::Resize { width: 800, height: 600, fit: Fit::Fill }
    /// );
    /// assert_eq!(Op::parse("rotate=90").unwrap().to_string(), "rotate=90");
    /// assert!(Op::parse("resize=800").is_err());
    /// ```
    pub fn parse(spec: &str) -> Result<Op, OpSpecError> {
        let fail = |reason: &str| OpSpecError {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        let (name, value) = match spec.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (spec, None),
        };
        let needs = |what: &str| value.ok_or_else(|| fail(&format!("needs a value: {what}")));
        let op = match name {
            "resize" => {
                let value = needs("resize=WIDTHxHEIGHT[:fit|fill|exact]")?;
                let (size, fit) = match value.split_once(':') {
                    Some((size, fit)) => (size, fit),
                    None => (value, "fit"),
                };
                let fit = match fit {
                    "fit" => Fit::Fit,
                    "fill" => Fit::Fill,
                    "exact" => Fit::Exact,
                    _ => return Err(fail("the mode is one of fit, fill, exact")),
                };
                let (width, height) = size
                    .split_once('x')
                    .ok_or_else(|| fail("expected WIDTHxHEIGHT, such as 800x600"))?;
                Op::Resize {
                    width: side(width).map_err(|reason| fail(&reason))?,
                    height: side(height).map_err(|reason| fail(&reason))?,
                    fit,
                }
            }
            "thumbnail" => Op::Thumbnail(side(needs("thumbnail=SIZE")?).map_err(|r| fail(&r))?),
            "rotate" => {
                let degrees = number(needs("rotate=DEGREES")?).map_err(|r| fail(&r))?;
                if degrees.abs() > 36_000.0 {
                    return Err(fail("degrees between -36000 and 36000"));
                }
                Op::Rotate(degrees)
            }
            "flip" => Op::Flip(match needs("flip=h|v")? {
                "h" => Axis::Horizontal,
                "v" => Axis::Vertical,
                _ => return Err(fail("flip=h (mirror) or flip=v (upside down)")),
            }),
            "crop" => {
                let parts: Vec<&str> = needs("crop=X,Y,WIDTH,HEIGHT")?.split(',').collect();
                let [x, y, width, height] = parts[..] else {
                    return Err(fail("expected X,Y,WIDTH,HEIGHT, such as 10,10,200,100"));
                };
                let offset = |text: &str| {
                    text.parse::<u32>()
                        .ok()
                        .filter(|n| *n < MAX_SIDE)
                        .ok_or_else(|| fail("X and Y are whole numbers from 0 to 65535"))
                };
                Op::Crop {
                    x: offset(x)?,
                    y: offset(y)?,
                    width: side(width).map_err(|r| fail(&r))?,
                    height: side(height).map_err(|r| fail(&r))?,
                }
            }
            "blur" | "sharpen" => {
                let sigma = number(needs("a SIGMA, such as 2.5")?).map_err(|r| fail(&r))?;
                if !(sigma > 0.0 && sigma <= 1000.0) {
                    return Err(fail("SIGMA is above 0 and at most 1000"));
                }
                if name == "blur" {
                    Op::Blur(sigma)
                } else {
                    Op::Sharpen(sigma)
                }
            }
            "brightness" => Op::Brightness(
                needs("brightness=N")?
                    .parse::<i32>()
                    .ok()
                    .filter(|n| (-255..=255).contains(n))
                    .ok_or_else(|| fail("N is a whole number from -255 to 255"))?,
            ),
            "contrast" => {
                let percent = number(needs("contrast=PERCENT")?).map_err(|r| fail(&r))?;
                if !(-100.0..=100.0).contains(&percent) {
                    return Err(fail("PERCENT is from -100 to 100"));
                }
                Op::Contrast(percent)
            }
            "grayscale" | "auto-orient" if value.is_some() => {
                return Err(fail("takes no value"));
            }
            "grayscale" => Op::Grayscale,
            "auto-orient" => Op::AutoOrient,
            _ => {
                return Err(fail(
                    "unknown; the operations are resize, thumbnail, rotate, flip, crop, blur, \
                     sharpen, grayscale, brightness, contrast, auto-orient",
                ));
            }
        };
        Ok(op)
    }

    /// The size this operation turns a `width`×`height` image into.
    ///
    /// ```
    /// use triad_images::ops::Op;
    /// assert_eq!(Op::parse("resize=800x800").unwrap().output_size(4000, 3000), (800, 600));
    /// assert_eq!(Op::parse("thumbnail=256").unwrap().output_size(100, 50), (100, 50));
    /// assert_eq!(Op::parse("rotate=90").unwrap().output_size(4, 3), (3, 4));
    /// ```
    pub fn output_size(&self, width: u32, height: u32) -> (u32, u32) {
        match *self {
            Op::Resize {
                width: box_w,
                height: box_h,
                fit,
            } => match fit {
                Fit::Fit => fit_inside(width, height, box_w, box_h),
                Fit::Fill | Fit::Exact => (box_w, box_h),
            },
            Op::Thumbnail(side) if width.max(height) > side => {
                fit_inside(width, height, side, side)
            }
            Op::Thumbnail(_) => (width, height),
            Op::Rotate(degrees) => match quarter_turns(degrees) {
                Some(1 | 3) => (height, width),
                Some(_) => (width, height),
                None => rotated_canvas(width, height, degrees),
            },
            Op::Crop {
                width: w,
                height: h,
                ..
            } => (w, h),
            _ => (width, height),
        }
    }

    /// The smallest size, per axis, that the input of this operation could be shrunk to before
    /// it without losing detail in its output: `Some` only for the resizing operations.
    pub(crate) fn needs_at_most(&self, width: u32, height: u32) -> Option<(u32, u32)> {
        let (out_w, out_h) = self.output_size(width, height);
        match *self {
            Op::Resize { fit: Fit::Fill, .. } => {
                // Fill scales both axes by the larger ratio, then cuts.
                let scale = (out_w as f64 / width as f64).max(out_h as f64 / height as f64);
                Some((
                    (width as f64 * scale).ceil() as u32,
                    (height as f64 * scale).ceil() as u32,
                ))
            }
            Op::Resize { .. } | Op::Thumbnail(_) => Some((out_w, out_h)),
            _ => None,
        }
    }

    /// Runs the operation on `image`. `size` is the size the geometry is computed from: the
    /// image's own, or the full size of a JPEG that was shrunk while decoding (so that the
    /// output is the size it would be from the full image). `orientation` is the file's EXIF
    /// orientation, for `auto-orient`.
    pub(crate) fn apply(
        &self,
        image: DynamicImage,
        size: (u32, u32),
        orientation: Orientation,
        resizer: &mut Resizer,
    ) -> Result<DynamicImage, OpFailure> {
        Ok(match *self {
            Op::Resize { fit, .. } => {
                let (w, h) = self.output_size(size.0, size.1);
                let options =
                    ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
                let options = match fit {
                    Fit::Fill => options.fit_into_destination(None),
                    Fit::Fit | Fit::Exact => options,
                };
                resize(&image, w, h, &options, resizer)?
            }
            Op::Thumbnail(_) => {
                let (w, h) = self.output_size(size.0, size.1);
                if (w, h) == image.dimensions() {
                    image
                } else {
                    let options = ResizeOptions::new()
                        .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
                    resize(&image, w, h, &options, resizer)?
                }
            }
            Op::Rotate(degrees) => match quarter_turns(degrees) {
                Some(0) => image,
                Some(1) => image.rotate90(),
                Some(2) => image.rotate180(),
                Some(_) => image.rotate270(),
                None => crate::rotate::rotate(&image, degrees),
            },
            Op::Flip(Axis::Horizontal) => image.fliph(),
            Op::Flip(Axis::Vertical) => image.flipv(),
            Op::Crop {
                x,
                y,
                width,
                height,
            } => {
                let (w, h) = image.dimensions();
                if u64::from(x) + u64::from(width) > u64::from(w)
                    || u64::from(y) + u64::from(height) > u64::from(h)
                {
                    return Err(OpFailure(format!(
                        "{self} reaches outside the {w}x{h} image"
                    )));
                }
                image.crop_imm(x, y, width, height)
            }
            Op::Blur(sigma) => image.blur(sigma),
            Op::Sharpen(sigma) => image.unsharpen(sigma, 1),
            Op::Grayscale => image.grayscale(),
            Op::Brightness(n) => image.brighten(n),
            Op::Contrast(percent) => image.adjust_contrast(percent),
            Op::AutoOrient => {
                let mut image = image;
                image.apply_orientation(orientation);
                image
            }
        })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Op::Resize { width, height, fit } => {
                let fit = match fit {
                    Fit::Fit => "",
                    Fit::Fill => ":fill",
                    Fit::Exact => ":exact",
                };
                write!(f, "resize={width}x{height}{fit}")
            }
            Op::Thumbnail(side) => write!(f, "thumbnail={side}"),
            Op::Rotate(degrees) => write!(f, "rotate={degrees}"),
            Op::Flip(Axis::Horizontal) => f.write_str("flip=h"),
            Op::Flip(Axis::Vertical) => f.write_str("flip=v"),
            Op::Crop {
                x,
                y,
                width,
                height,
            } => write!(f, "crop={x},{y},{width},{height}"),
            Op::Blur(sigma) => write!(f, "blur={sigma}"),
            Op::Sharpen(sigma) => write!(f, "sharpen={sigma}"),
            Op::Grayscale => f.write_str("grayscale"),
            Op::Brightness(n) => write!(f, "brightness={n}"),
            Op::Contrast(percent) => write!(f, "contrast={percent}"),
            Op::AutoOrient => f.write_str("auto-orient"),
        }
    }
}

/// A width or height: 1 to [`MAX_SIDE`].
fn side(text: &str) -> Result<u32, String> {
    text.parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_SIDE).contains(n))
        .ok_or_else(|| format!("sizes are whole numbers from 1 to {MAX_SIDE}, not `{text}`"))
}

/// A finite decimal number.
fn number(text: &str) -> Result<f32, String> {
    text.parse::<f32>()
        .ok()
        .filter(|n| n.is_finite())
        .ok_or_else(|| format!("expected a number, not `{text}`"))
}

/// How many clockwise quarter turns `degrees` is (0 to 3), if it is a whole number of them.
fn quarter_turns(degrees: f32) -> Option<u32> {
    let turns = degrees / 90.0;
    (turns.fract() == 0.0).then(|| turns.rem_euclid(4.0) as u32)
}

/// The largest `width`×`height` scaled with its aspect ratio kept that fits inside the box,
/// each side at least 1.
fn fit_inside(width: u32, height: u32, box_w: u32, box_h: u32) -> (u32, u32) {
    let scale = (box_w as f64 / width as f64).min(box_h as f64 / height as f64);
    let scaled = |side: u32, limit: u32| ((side as f64 * scale).round() as u32).clamp(1, limit);
    (scaled(width, box_w), scaled(height, box_h))
}

/// The canvas that holds a `width`×`height` image turned by `degrees`.
pub(crate) fn rotated_canvas(width: u32, height: u32, degrees: f32) -> (u32, u32) {
    let radians = (degrees as f64).to_radians();
    let (sin, cos) = (radians.sin().abs(), radians.cos().abs());
    let (w, h) = (width as f64, height as f64);
    let side = |value: f64| (value - 1e-6).ceil().max(1.0) as u32;
    (side(w * cos + h * sin), side(w * sin + h * cos))
}

/// `image` resized to `width`×`height` by fast_image_resize (SIMD), in its own pixel type.
fn resize(
    image: &DynamicImage,
    width: u32,
    height: u32,
    options: &ResizeOptions,
    resizer: &mut Resizer,
) -> Result<DynamicImage, OpFailure> {
    let mut out = DynamicImage::new(width, height, image.color());
    resizer
        .resize(image, &mut out, options)
        .map_err(|error| OpFailure(format!("resize to {width}x{height}: {error}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn op() -> impl Strategy<Value = Op> {
        let fit = prop_oneof![Just(Fit::Fit), Just(Fit::Fill), Just(Fit::Exact)];
        let axis = prop_oneof![Just(Axis::Horizontal), Just(Axis::Vertical)];
        let side = 1..=MAX_SIDE;
        prop_oneof![
            (side.clone(), side.clone(), fit).prop_map(|(width, height, fit)| Op::Resize {
                width,
                height,
                fit
            }),
            side.clone().prop_map(Op::Thumbnail),
            (-36_000.0f32..=36_000.0).prop_map(Op::Rotate),
            axis.prop_map(Op::Flip),
            (0..MAX_SIDE, 0..MAX_SIDE, side.clone(), side).prop_map(|(x, y, width, height)| {
                Op::Crop {
                    x,
                    y,
                    width,
                    height,
                }
            }),
            (0.001f32..=1000.0).prop_map(Op::Blur),
            (0.001f32..=1000.0).prop_map(Op::Sharpen),
            Just(Op::Grayscale),
            (-255..=255).prop_map(Op::Brightness),
            (-100.0f32..=100.0).prop_map(Op::Contrast),
            Just(Op::AutoOrient),
        ]
    }

    proptest! {
        #[test]
        fn every_op_reads_back_from_its_spec(op in op()) {
            prop_assert_eq!(Op::parse(&op.to_string()), Ok(op));
        }

        #[test]
        fn any_text_parses_or_says_why_without_panicking(spec in "\\PC{0,40}") {
            if let Err(error) = Op::parse(&spec) {
                prop_assert_eq!(&error.spec, &spec);
                prop_assert!(!error.reason.is_empty());
            }
        }

        #[test]
        fn resizing_sizes_stay_inside_their_box(
            w in 1u32..=MAX_SIDE, h in 1u32..=MAX_SIDE, bw in 1u32..=MAX_SIDE, bh in 1u32..=MAX_SIDE
        ) {
            let (out_w, out_h) = Op::Resize { width: bw, height: bh, fit: Fit::Fit }.output_size(w, h);
            prop_assert!(out_w >= 1 && out_w <= bw && out_h >= 1 && out_h <= bh);
            prop_assert!(out_w == bw || out_h == bh, "{}x{} in {}x{}", out_w, out_h, bw, bh);
            let (tw, th) = Op::Thumbnail(bw).output_size(w, h);
            if w.max(h) > bw {
                prop_assert!(tw <= w && th <= h && tw.max(th) <= bw);
            } else {
                prop_assert_eq!((tw, th), (w, h));
            }
        }
    }

    #[test]
    fn specs_that_are_wrong_say_what_is_expected() {
        for (spec, hint) in [
            ("resize=800", "WIDTHxHEIGHT"),
            ("resize=0x600", "from 1"),
            ("resize=800x600:stretch", "fit, fill, exact"),
            ("rotate", "needs a value"),
            ("rotate=ninety", "a number"),
            ("flip=x", "flip=h"),
            ("crop=1,2,3", "X,Y,WIDTH,HEIGHT"),
            ("blur=0", "above 0"),
            ("blur=NaN", "a number"),
            ("brightness=300", "-255 to 255"),
            ("contrast=101", "-100 to 100"),
            ("grayscale=1", "no value"),
            ("sepia", "unknown"),
        ] {
            let error = Op::parse(spec).unwrap_err();
            assert!(error.to_string().contains(hint), "{spec}: {error}");
        }
    }

    #[test]
    fn sizes_of_each_geometry() {
        let fill = Op::parse("resize=100x100:fill").unwrap();
        assert_eq!(fill.output_size(400, 200), (100, 100));
        assert_eq!(fill.needs_at_most(400, 200), Some((200, 100)));
        let exact = Op::parse("resize=100x10:exact").unwrap();
        assert_eq!(exact.output_size(400, 200), (100, 10));
        assert_eq!(Op::Thumbnail(256).output_size(1000, 500), (256, 128));
        assert_eq!(Op::Rotate(-90.0).output_size(4, 3), (3, 4));
        assert_eq!(Op::Rotate(540.0).output_size(4, 3), (4, 3));
        assert_eq!(Op::Rotate(45.0).output_size(10, 10), (15, 15));
        assert_eq!(Op::Blur(2.0).needs_at_most(10, 10), None);
    }
}
