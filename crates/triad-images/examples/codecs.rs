//! How long each JPEG codec on offer takes on one file, so that the choice in `decode` and
//! `encode` rests on a measurement: `cargo run --release -p triad-images --example codecs --
//! photo.jpg`. Prints the median of several runs of each, in milliseconds.

use std::time::Instant;

fn median_ms(runs: usize, mut work: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            work();
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: codecs FILE.jpg");
    let bytes = std::fs::read(&path).expect("a readable file");
    let runs = 7;
    let zune = median_ms(runs, || {
        image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).unwrap();
    });
    println!("zune-jpeg (image), full size:  {zune:7.1} ms");
    for shrink in [1_u16, 2, 4, 8] {
        let ms = median_ms(runs, || {
            let mut decoder = jpeg_decoder::Decoder::new(&bytes[..]);
            decoder.read_info().unwrap();
            let info = decoder.info().unwrap();
            decoder
                .scale(info.width.div_ceil(shrink), info.height.div_ceil(shrink))
                .unwrap();
            decoder.decode().unwrap();
        });
        println!("jpeg-decoder, 1/{shrink}:            {ms:7.1} ms");
    }
    let small = image::load_from_memory(&bytes)
        .unwrap()
        .resize_exact(800, 600, image::imageops::FilterType::Triangle)
        .to_rgb8();
    let encode = median_ms(runs, || {
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
            .encode_image(&small)
            .unwrap();
    });
    println!("image's JPEG encoder, 800x600: {encode:7.1} ms");
    let encode = median_ms(runs, || {
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, 85)
            .encode(small.as_raw(), 800, 600, jpeg_encoder::ColorType::Rgb)
            .unwrap();
    });
    println!("jpeg-encoder (AVX2), 800x600:  {encode:7.1} ms");
}
