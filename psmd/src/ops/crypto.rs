//! Random bytes and digests (inline and streamed).

use crate::channel::ChannelOp;
use crate::session::Outcome;
use psm::proto::{HashAlg, MAX_RANDOM, Reply};
use psm::{Code, Error};
use sha2::Digest as _;

/// Inline digests larger than this run on the worker pool.
const INLINE_DIGEST_ON_LOOP: usize = 64 * 1024;

pub fn random(len: u32) -> Result<Reply, Error> {
    if len > MAX_RANDOM {
        return Err(Error::new(
            Code::PSM_ERR_INVALID_ARGUMENT,
            format!("at most {MAX_RANDOM} random bytes per request"),
        ));
    }
    let mut buf = vec![0u8; len as usize];
    getrandom::fill(&mut buf).map_err(|e| Error::new(Code::PSM_ERR_INTERNAL, format!("getrandom: {e}")))?;
    Ok(Reply::Bytes(buf))
}

pub fn digest(alg: HashAlg, data: Vec<u8>) -> Outcome {
    let small = data.len() <= INLINE_DIGEST_ON_LOOP;
    let run = move || {
        let mut h = Hasher::new(alg);
        h.input(&data);
        h.finish()
    };
    if small { Outcome::Reply(run()) } else { Outcome::Work(Box::new(run)) }
}

pub fn digest_stream(alg: HashAlg) -> Box<dyn ChannelOp> {
    Box::new(Hasher::new(alg))
}

/// One incremental hash of any supported algorithm.
pub enum Hasher {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn new(alg: HashAlg) -> Hasher {
        match alg {
            HashAlg::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            HashAlg::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            HashAlg::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            HashAlg::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
}

impl ChannelOp for Hasher {
    fn input(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    fn finish(&mut self) -> Result<Reply, Error> {
        let out = match self {
            Hasher::Sha1(h) => h.finalize_reset().to_vec(),
            Hasher::Sha256(h) => h.finalize_reset().to_vec(),
            Hasher::Sha384(h) => h.finalize_reset().to_vec(),
            Hasher::Sha512(h) => h.finalize_reset().to_vec(),
        };
        Ok(Reply::Bytes(out))
    }
}
