//! Rotation by any angle: each output pixel looks up where it came from (the inverse rotation
//! about the centre) and blends its four nearest source pixels (bilinear). The canvas grows to
//! hold the whole turned image; what lies outside the source is transparent, or black for an
//! image without alpha. Right angles never come here: they are exact pixel moves in `ops`.

use image::{DynamicImage, ImageBuffer, Pixel};

use crate::ops::rotated_canvas;

/// `image` turned clockwise by `degrees`, in 8 bits per channel.
pub(crate) fn rotate(image: &DynamicImage, degrees: f32) -> DynamicImage {
    let color = image.color();
    if color.has_alpha() {
        DynamicImage::ImageRgba8(turn(&image.to_rgba8(), degrees))
    } else if color.channel_count() == 1 {
        DynamicImage::ImageLuma8(turn(&image.to_luma8(), degrees))
    } else {
        DynamicImage::ImageRgb8(turn(&image.to_rgb8(), degrees))
    }
}

fn turn<P>(source: &ImageBuffer<P, Vec<u8>>, degrees: f32) -> ImageBuffer<P, Vec<u8>>
where
    P: Pixel<Subpixel = u8>,
{
    let (width, height) = source.dimensions();
    let (out_w, out_h) = rotated_canvas(width, height, degrees);
    let radians = (degrees as f64).to_radians();
    let (sin, cos) = radians.sin_cos();
    let channels = usize::from(P::CHANNEL_COUNT);
    let pixels = source.as_raw();
    let at = |x: i64, y: i64, channel: usize| -> f64 {
        if x < 0 || y < 0 || x >= i64::from(width) || y >= i64::from(height) {
            return 0.0;
        }
        pixels[(y as usize * width as usize + x as usize) * channels + channel] as f64
    };
    let mut out = vec![0_u8; out_w as usize * out_h as usize * channels];
    let (half_out_w, half_out_h) = (out_w as f64 / 2.0, out_h as f64 / 2.0);
    let (half_w, half_h) = (width as f64 / 2.0, height as f64 / 2.0);
    for (index, pixel) in out.chunks_exact_mut(channels).enumerate() {
        let dx = (index % out_w as usize) as f64 + 0.5 - half_out_w;
        let dy = (index / out_w as usize) as f64 + 0.5 - half_out_h;
        // The inverse of a clockwise turn (y grows downwards).
        let sx = dx * cos + dy * sin + half_w - 0.5;
        let sy = -dx * sin + dy * cos + half_h - 0.5;
        let (x0, y0) = (sx.floor(), sy.floor());
        let (fx, fy) = (sx - x0, sy - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        for (channel, value) in pixel.iter_mut().enumerate() {
            let top = at(x0, y0, channel) * (1.0 - fx) + at(x0 + 1, y0, channel) * fx;
            let bottom = at(x0, y0 + 1, channel) * (1.0 - fx) + at(x0 + 1, y0 + 1, channel) * fx;
            *value = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
        }
    }
    ImageBuffer::from_raw(out_w, out_h, out).expect("the buffer is the canvas's size")
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GenericImageView, Luma, Rgb, Rgba};

    #[test]
    fn a_turn_grows_the_canvas_and_keeps_the_centre() {
        let mut source = image::RgbImage::new(21, 11);
        source.put_pixel(10, 5, Rgb([200, 100, 50]));
        let turned = rotate(&DynamicImage::ImageRgb8(source), 30.0);
        let (w, h) = turned.dimensions();
        assert_eq!((w, h), rotated_canvas(21, 11, 30.0));
        assert!(w > 21 && h > 11);
        // The centre pixel stays at the centre, spread over its neighbours by the resampling
        // but no brighter or darker in all.
        let around: u32 = (w / 2 - 1..=w / 2)
            .flat_map(|x| (h / 2 - 1..=h / 2 + 1).map(move |y| (x, y)))
            .map(|(x, y)| u32::from(turned.get_pixel(x, y)[0]))
            .sum();
        assert!((180..=220).contains(&around), "{around}");
    }

    #[test]
    fn what_lies_outside_the_source_is_transparent() {
        let source = image::RgbaImage::from_pixel(10, 10, Rgba([255, 255, 255, 255]));
        let turned = rotate(&DynamicImage::ImageRgba8(source), 45.0);
        assert_eq!(turned.get_pixel(0, 0)[3], 0);
        let (w, h) = turned.dimensions();
        assert_eq!(turned.get_pixel(w / 2, h / 2), Rgba([255, 255, 255, 255]));
    }

    #[test]
    fn a_small_clockwise_turn_moves_the_right_edge_down() {
        // A bright dot right of centre ends up below the horizontal through the centre.
        let mut source = image::GrayImage::new(41, 41);
        source.put_pixel(38, 20, Luma([255]));
        let turned = rotate(&DynamicImage::ImageLuma8(source), 20.0).to_luma8();
        let (w, h) = turned.dimensions();
        let brightest = turned
            .enumerate_pixels()
            .max_by_key(|(_, _, p)| p[0])
            .map(|(x, y, _)| (x, y))
            .unwrap();
        assert!(brightest.0 > w / 2 && brightest.1 > h / 2, "{brightest:?}");
    }
}
