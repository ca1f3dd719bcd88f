//! `triad images`' handling of outside bytes: the header probe and the decoder (with and
//! without the JPEG shrink-on-load) over arbitrary bytes as a file, and the operation parser
//! over arbitrary text. None may panic; a decoded image has the size its header promised; an
//! operation that parses reads back from its own spec.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_images::decode::{self, Kind};
use triad_images::ops::Op;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(op) = Op::parse(text)
    {
        assert_eq!(Op::parse(&op.to_string()), Ok(op));
    }
    let Ok(header) = decode::probe(data) else {
        return;
    };
    // Above a few megapixels a decode costs the fuzzer more time than it teaches.
    if header.pixels() > 4_000_000 {
        return;
    }
    let _ = header.cost(data.len() as u64, 8);
    for shrink in [1, 2, 8] {
        if let Ok((image, applied)) = decode::decode(data, &header, shrink) {
            let expected = if header.kind == Kind::Jpeg && applied > 1 {
                (header.width.div_ceil(applied), header.height.div_ceil(applied))
            } else {
                (header.width, header.height)
            };
            assert_eq!((image.width(), image.height()), expected, "shrink {shrink}");
        }
    }
});
