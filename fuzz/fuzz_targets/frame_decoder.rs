//! The frame reader and both decoders on arbitrary bytes, fed in chunks whose
//! sizes come from the input too. Anything that decodes must re-encode to a
//! frame that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psm::proto::{
    FrameReader, decode_request, decode_server_frame, encode_request, encode_server_frame,
};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else { return };
    let chunk = usize::from(chunk).max(1);
    let mut reader = FrameReader::new();
    for piece in rest.chunks(chunk) {
        reader.push(piece);
        loop {
            match reader.next_frame() {
                Ok(Some(body)) => check(body),
                Ok(None) => break,
                Err(_) => return, // the connection would be closed here
            }
        }
    }
    // Bodies straight from the input, bypassing framing.
    check(rest);
});

fn check(body: &[u8]) {
    if let Ok(req) = decode_request(body) {
        let mut out = Vec::new();
        encode_request(&req, &mut out).expect("a decoded request re-encodes");
        assert_eq!(decode_request(&out[4..]).unwrap(), req);
    }
    if let Ok(frame) = decode_server_frame(body) {
        let mut out = Vec::new();
        encode_server_frame(&frame, &mut out).expect("a decoded frame re-encodes");
        assert_eq!(decode_server_frame(&out[4..]).unwrap(), frame);
    }
}
