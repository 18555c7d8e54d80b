//! Compressed bodies on the wire, as Kafka compresses record batches: a client with a
//! [`Compression`] sends request bodies with `Content-Encoding` and asks for compressed replies
//! with `Accept-Encoding`; nodes decompress and compress with the same codecs.

use std::io::{Read, Write};
use std::str::FromStr;

use crate::Error;

/// Bodies under this many bytes go as they are: compressing them saves nothing.
pub const MIN_COMPRESSED_BYTES: usize = 256;
/// The most a compressed reply may expand to (a guard against decompression bombs).
const MAX_REPLY_BYTES: u64 = 1 << 30;

/// A body codec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Compression {
    /// Bodies as they are (the default).
    #[default]
    None,
    /// gzip (`Content-Encoding: gzip`), level 6.
    Gzip,
    /// Zstandard (`Content-Encoding: zstd`), level 3.
    Zstd,
}

impl Compression {
    /// The `Content-Encoding` token, `None` for uncompressed bodies.
    pub fn encoding(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Gzip => Some("gzip"),
            Self::Zstd => Some("zstd"),
        }
    }

    /// `body` compressed with this codec.
    ///
    /// # Errors
    /// [`Error::Config`] when the codec fails (it does not on in-memory buffers).
    pub fn compress(self, body: &[u8]) -> Result<Vec<u8>, Error> {
        let fail = |e: std::io::Error| Error::Config(format!("compressing a body: {e}"));
        match self {
            Self::None => Ok(body.to_vec()),
            Self::Gzip => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                enc.write_all(body).map_err(fail)?;
                enc.finish().map_err(fail)
            }
            Self::Zstd => zstd::stream::encode_all(body, 3).map_err(fail),
        }
    }
}

impl FromStr for Compression {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" | "off" => Ok(Self::None),
            "gzip" => Ok(Self::Gzip),
            "zstd" => Ok(Self::Zstd),
            other => Err(format!("unknown compression '{other}': none, gzip or zstd")),
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.encoding().unwrap_or("none"))
    }
}

/// A reply body decoded per its `Content-Encoding` (none, `identity`, `gzip` or `zstd`).
///
/// # Errors
/// [`Error::Decode`] for another encoding, a corrupt body, or one that expands past 1 GiB.
pub fn decode_reply(encoding: Option<&str>, body: bytes::Bytes) -> Result<bytes::Bytes, Error> {
    let fail = |e: std::io::Error| Error::Decode(format!("decompressing the reply: {e}"));
    let mut out = Vec::new();
    match encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
        None | Some("" | "identity") => return Ok(body),
        Some("gzip") => {
            flate2::read::GzDecoder::new(&body[..])
                .take(MAX_REPLY_BYTES + 1)
                .read_to_end(&mut out)
                .map_err(fail)?;
        }
        Some("zstd") => {
            zstd::stream::read::Decoder::new(&body[..])
                .map_err(fail)?
                .take(MAX_REPLY_BYTES + 1)
                .read_to_end(&mut out)
                .map_err(fail)?;
        }
        Some(other) => {
            return Err(Error::Decode(format!(
                "the reply came in Content-Encoding '{other}', which this client does not read"
            )))
        }
    }
    if out.len() as u64 > MAX_REPLY_BYTES {
        return Err(Error::Decode("the reply expands past 1 GiB".into()));
    }
    Ok(bytes::Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let body = br#"{"records":[{"value":"a record that repeats"}]}"#.repeat(40);
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let packed = c.compress(&body).unwrap();
            if c != Compression::None {
                assert!(packed.len() < body.len() / 4, "{c}: {}", packed.len());
            }
            let back = decode_reply(c.encoding(), bytes::Bytes::from(packed)).unwrap();
            assert_eq!(&back[..], &body[..], "{c}");
        }
    }

    #[test]
    fn names_parse_and_bad_bodies_are_decode_errors() {
        assert_eq!("ZSTD".parse::<Compression>(), Ok(Compression::Zstd));
        assert_eq!("none".parse::<Compression>(), Ok(Compression::None));
        assert!("br".parse::<Compression>().is_err());
        let bad = decode_reply(Some("gzip"), bytes::Bytes::from_static(b"not gzip"));
        assert!(matches!(bad, Err(Error::Decode(_))));
        let other = decode_reply(Some("br"), bytes::Bytes::from_static(b"x"));
        assert!(matches!(other, Err(Error::Decode(_))));
    }
}
